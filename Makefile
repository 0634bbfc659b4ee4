# make run   - install into .venv and run the agent with the default config
# make test  - install, make sure PostgreSQL/Redis/promtool/Alertmanager are there, lint, run all tests
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	mkdir -p .probe
	PROBE_HISTORY=$${PROBE_HISTORY:-sqlite://$(CURDIR)/.probe/history.db} $(BIN)/probe run --log-format text

lint: install
	$(BIN)/ruff check probe tests bench
	$(BIN)/ruff format --check probe tests bench
	$(BIN)/mypy

test: install
	scripts/test-services.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q

bench: install
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
