"""Packaging: the Dockerfile, the wheel it installs, and the deploy/ examples.

No Docker engine runs here, so the Dockerfile is parsed and its install steps are
reproduced: build a wheel from exactly the files the Dockerfile copies, install that wheel
(not the source tree) into a fresh virtualenv, and run `probe` from it. That catches what a
broken image would show first: a default config missing from the wheel, a console script
that does not start. The deploy/ examples are checked against the same contract the agent
serves (port, paths, the variables its config reads), and the probe configs, Prometheus
and Alertmanager files in them are run through `probe validate`, promtool and amtool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

import probe
from probe.contract.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "probe" / "default.yaml"
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"

_VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def config_vars(text: str) -> set[str]:
    """Names of the environment variables a probe config reads (`$$` is a literal `$`)."""
    return set(_VAR_RE.findall(text))


# What probe reads from its environment: its default config's variables, and the CLI's.
PROBE_ENV_VARS = config_vars(DEFAULT_CONFIG.read_text()) | {"PROBE_CONFIG"}
DEFAULT_PORT = load_config(DEFAULT_CONFIG, environ={}).agent.port


# ---------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    name: str
    value: str


def _stages() -> list[list[Instruction]]:
    """The instructions before the first FROM (global ARGs), then one list per stage."""
    with (ROOT / "Dockerfile").open("rb") as fileobj:
        parser = DockerfileParser(fileobj=fileobj, env_replace=False)
        structure: list[dict[str, Any]] = parser.structure
    stages: list[list[Instruction]] = [[]]
    for item in structure:
        instruction = Instruction(item["instruction"], item["value"])
        if instruction.name == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


GLOBAL, *STAGES = _stages()
RUNTIME = STAGES[-1]


def one(stage: list[Instruction], name: str) -> str:
    """The value of the stage's last `name` instruction (the one Docker uses)."""
    values = [i.value for i in stage if i.name == name]
    assert values, f"no {name} in {stage[:1]}"
    return values[-1]


def copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from)."""
    found = []
    for instruction in stage:
        if instruction.name != "COPY" or "--from=" in instruction.value:
            continue
        *sources, destination = instruction.value.split()
        found.append((sources, destination))
    return found


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in (i.value for i in RUNTIME if i.name == "ENV"):
        for key, raw in re.findall(r'(\w+)=("[^"]*"|\S+)', value):
            env[key] = raw.strip('"')
    return env


def image_uid() -> int:
    user = one(RUNTIME, "USER").split(":")[0]
    assert user.isdigit(), f"USER {user!r}: a numeric uid lets Kubernetes check runAsNonRoot"
    return int(user)


def baked_config_path() -> str:
    """Where the Dockerfile puts probe's default config inside the image."""
    for sources, destination in copies(RUNTIME):
        if sources == ["probe/default.yaml"]:
            return destination
    raise AssertionError("the runtime stage does not COPY probe/default.yaml")


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    assert len(STAGES) >= 2, "build the wheel in one stage, run it in another"
    for stage in STAGES:
        assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim AS \w+", stage[0].value)
    assert one(GLOBAL, "ARG") == "PYTHON_VERSION=3.11", "the Python the suite runs on"


def test_image_runs_as_a_non_root_user() -> None:
    assert image_uid() != 0
    # USER comes after the last RUN, so nothing after it runs as root.
    names = [i.name for i in RUNTIME]
    assert names.index("USER") > max(n for n, name in enumerate(names) if name == "RUN")


def test_healthcheck_runs_probe_ping_not_curl() -> None:
    healthcheck = one(RUNTIME, "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD")
    assert json.loads(command) == ["probe", "ping"]
    assert "--interval=30s" in options.split()
    assert "curl" not in (ROOT / "Dockerfile").read_text()


def test_exposed_port_is_the_default_listen_port() -> None:
    assert one(RUNTIME, "EXPOSE") == str(DEFAULT_PORT) == "8080"


def test_entrypoint_cmd_and_stop_signal() -> None:
    assert json.loads(one(RUNTIME, "ENTRYPOINT")) == ["probe"]
    assert json.loads(one(RUNTIME, "CMD")) == ["run"]
    assert one(RUNTIME, "STOPSIGNAL") == "SIGTERM"


def test_oci_labels() -> None:
    labels = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", one(RUNTIME, "LABEL")))
    expected = {"title", "description", "version", "revision", "created", "source"}
    assert {f"org.opencontainers.image.{name}" for name in expected} <= labels


def test_config_is_baked_where_probe_config_points() -> None:
    assert runtime_env()["PROBE_CONFIG"] == baked_config_path() == "/etc/probe/probe.yaml"
    # The state file lives in a directory the non-root user owns.
    assert PurePosixPath(runtime_env()["PROBE_STATE_FILE"]).parent == PurePosixPath(
        one(RUNTIME, "WORKDIR")
    )


def test_copied_files_exist_and_pass_dockerignore() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for stage in STAGES:
        for sources, _ in copies(stage):
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"COPY {source}: not in the repository"
                # config/probe.yaml is a symlink; an image needs the file itself.
                assert not path.is_symlink(), f"COPY {source}: a symlink"
                top = source.rstrip("/").split("/")[0]
                assert top in allowed, f"COPY {source}: excluded by .dockerignore"


# ---------------------------------------------------------------- the wheel, installed


def _run(
    args: Sequence[str | Path], cwd: Path, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _clean_env() -> dict[str, str]:
    """The environment without probe's own variables, so lookups fall back to defaults."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in PROBE_ENV_VARS and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }


def _build_context_copy(dest: Path) -> None:
    """The files the builder stage copies, and nothing else (no stale build/ or .egg-info)."""
    for sources, _ in copies(STAGES[0]):
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(
                    path, dest / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(path, dest / source)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with probe installed from a freshly built wheel: its bin/ dir.

    Dependencies come from this test run's own environment through a .pth file, so no
    network is needed for them; probe itself comes only from the wheel.
    """
    work = tmp_path_factory.mktemp("wheel")
    context, wheels, venv = work / "context", work / "wheels", work / "venv"
    context.mkdir()
    _build_context_copy(context)
    env = _clean_env()
    # pip builds in an isolated environment, as `docker build` does: it fetches the
    # build backend (setuptools) from the package index, so allow for a slow one.
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, context],
        work,
        env,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("probe-*.whl")
    assert "probe/default.yaml" in zipfile.ZipFile(wheel).namelist()

    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], work, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    install: list[str | Path] = [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
    done = _run([*install, "--no-deps", "--no-index", wheel], work, env)
    assert done.returncode == 0, done.stderr
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work, env)
    (Path(site.stdout.strip()) / "probe-test-deps.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    yield venv / "bin"


@pytest.mark.timeout(180)  # the module fixture builds the wheel
def test_installed_wheel_reports_its_version(installed: Path, tmp_path: Path) -> None:
    result = _run([installed / "probe", "--version"], tmp_path, _clean_env())
    assert result.returncode == 0, result.stderr
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # One version source: the package's __version__, which the wheel's metadata reads.
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "probe.__version__"}
    version = probe.__version__
    assert result.stdout.strip() == f"probe {version}" == f"probe {probe.__version__}"


@pytest.mark.timeout(180)  # the module fixture builds the wheel
def test_installed_wheel_validates_its_packaged_default(installed: Path, tmp_path: Path) -> None:
    # An empty working directory: no ./config/probe.yaml, no $PROBE_CONFIG.
    result = _run([installed / "probe", "validate"], tmp_path, _clean_env())
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert first_line.startswith("config: ")
    used = Path(first_line.removeprefix("config: "))
    assert used.is_relative_to(installed.parent), f"{used} is not from the installed wheel"
    assert used.parts[-2:] == ("probe", "default.yaml")
    assert used.read_text() == DEFAULT_CONFIG.read_text()


@pytest.mark.timeout(180)  # the module fixture builds the wheel
def test_installed_wheel_validates_the_baked_config(installed: Path, tmp_path: Path) -> None:
    # What the image does: the COPY'd file at its destination, found through PROBE_CONFIG.
    baked = tmp_path / baked_config_path().lstrip("/")
    baked.parent.mkdir(parents=True)
    shutil.copy2(DEFAULT_CONFIG, baked)
    env = {**_clean_env(), "PROBE_CONFIG": str(baked)}
    result = _run([installed / "probe", "validate"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"config: {baked}"
    assert result.stdout.splitlines()[-1].startswith("valid: ")


# ---------------------------------------------------------------- deploy/


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"})


def _docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [doc for p in KUBERNETES.glob("*.yaml") for doc in _docs(p) if doc["kind"] == kind]


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_deploy_yaml_parses(path: Path) -> None:
    docs = _docs(path)
    assert docs and all(isinstance(doc, dict) for doc in docs)


def test_deploy_has_every_example_the_readme_names() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.is_file()}
    assert {
        "docker-compose.yml",
        "render.yaml",
        "railway.toml",
        "prometheus.yml",
        "probe-rules.yml",
        "alertmanager.yml",
        "kubernetes/deployment.yaml",
        "kubernetes/probe-config.yaml",
        "kubernetes/secret.example.yaml",
        "kubernetes/service.yaml",
        "kubernetes/servicemonitor.yaml",
    } <= names


# ---- docker compose


COMPOSE = _docs(DEPLOY / "docker-compose.yml")[0]
_COMPOSE_VAR_RE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def compose_value(text: str) -> str:
    """Compose's own ${VAR:-default} interpolation, with nothing set in the shell."""
    return _COMPOSE_VAR_RE.sub(lambda m: m.group(2) or "", text)


def test_compose_runs_the_app_stack_and_probe() -> None:
    services = COMPOSE["services"]
    assert {"app", "worker", "redis", "postgres", "probe"} <= set(services)
    debug = {name for name, service in services.items() if "debug" in service.get("profiles", [])}
    assert "probe-check" in debug
    assert services["probe-check"]["command"][0] == "check"


def test_compose_probe_matches_the_contract() -> None:
    probe_service = COMPOSE["services"]["probe"]
    assert probe_service["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / probe_service["build"]["context"] / "Dockerfile").is_file()
    assert f"{DEFAULT_PORT}:{DEFAULT_PORT}" in probe_service["ports"]
    assert probe_service["healthcheck"]["test"] == ["CMD", "probe", "ping"]
    # probe has to start while the things it checks are down.
    assert "depends_on" not in probe_service
    env = probe_service["environment"]
    assert set(env) <= PROBE_ENV_VARS, f"not read by probe: {set(env) - PROBE_ENV_VARS}"
    assert {"DATABASE_URL", "REDIS_URL", "SLACK_WEBHOOK_URL", "APP_VERSION", "APP_URL"} <= set(env)
    state_dir = str(PurePosixPath(runtime_env()["PROBE_STATE_FILE"]).parent)
    assert any(volume.endswith(f":{state_dir}") for volume in probe_service["volumes"])


def test_compose_probe_reaches_the_compose_services() -> None:
    services = COMPOSE["services"]
    env = {k: compose_value(v) for k, v in services["probe"]["environment"].items()}
    app_env = {k: compose_value(str(v)) for k, v in services["app"]["environment"].items()}
    # probe checks the same database and Redis the app uses.
    assert env["DATABASE_URL"] == app_env["DATABASE_URL"]
    assert env["REDIS_URL"] == app_env["REDIS_URL"]
    assert env["APP_URL"] == f"http://app:{app_env['PORT']}"


# ---- Kubernetes


def _pod_spec() -> dict[str, Any]:
    [deployment] = _kind("Deployment")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _sidecar() -> dict[str, Any]:
    sidecars: list[dict[str, Any]] = [
        c for c in _pod_spec().get("initContainers", []) if c["name"] == "probe"
    ]
    assert len(sidecars) == 1
    return sidecars[0]


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _http_probes(manifest_docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in manifest_docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                if kind in container:
                    yield f"{container['name']}.{kind}", container[kind]["httpGet"]


def test_kubernetes_probe_is_a_native_sidecar() -> None:
    sidecar = _sidecar()
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"] == ["run"]
    assert [p["containerPort"] for p in sidecar["ports"]] == [DEFAULT_PORT]
    assert set(sidecar["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in sidecar["resources"]["limits"]
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == image_uid()


def test_kubernetes_liveness_is_live_and_readiness_is_ready() -> None:
    sidecar = _sidecar()
    live = sidecar["livenessProbe"]["httpGet"]
    assert live["path"] == "/live"
    assert _port_number(sidecar, live["port"]) == DEFAULT_PORT
    [app] = [c for c in _pod_spec()["containers"] if c["name"] == "app"]
    ready = app["readinessProbe"]["httpGet"]
    # A named port would be looked up in the app container; probe's port is a number.
    assert ready == {"path": "/ready", "port": DEFAULT_PORT}


def test_kubernetes_nothing_probes_health() -> None:
    # /health turns 503 on a dependency outage: as a liveness probe it restarts the fleet.
    docs = [doc for p in KUBERNETES.glob("*.yaml") for doc in _docs(p)]
    probes = dict(_http_probes(docs))
    assert probes
    for where, http_get in probes.items():
        assert "health" not in http_get["path"].split("/")[-1], where
        if where.endswith("livenessProbe") or where.endswith("startupProbe"):
            assert http_get["path"].endswith("/live"), where


def test_kubernetes_env_and_secrets() -> None:
    env = {item["name"]: item for item in _sidecar()["env"]}
    assert set(env) <= PROBE_ENV_VARS, f"not read by probe: {set(env) - PROBE_ENV_VARS}"
    [secret] = _kind("Secret")
    for name in ("DATABASE_URL", "REDIS_URL", "SLACK_WEBHOOK_URL", "PROBE_AUTH_TOKEN"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_kubernetes_config_is_mounted_where_probe_config_points() -> None:
    baked = PurePosixPath(baked_config_path())
    [config_map] = _kind("ConfigMap")
    mounts = {m["name"]: m["mountPath"] for m in _sidecar()["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    [config_volume] = [n for n, v in volumes.items() if "configMap" in v]
    assert volumes[config_volume]["configMap"]["name"] == config_map["metadata"]["name"]
    assert mounts[config_volume] == str(baked.parent)
    assert baked.name in config_map["data"]
    state_dir = str(PurePosixPath(runtime_env()["PROBE_STATE_FILE"]).parent)
    assert "emptyDir" in volumes[next(n for n, p in mounts.items() if p == state_dir)]


def test_kubernetes_metrics_discovery() -> None:
    [deployment] = _kind("Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(DEFAULT_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    [monitor] = _kind("ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    selected = [
        s
        for s in _kind("Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert len(selected) == 1
    [port] = [p for p in selected[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert _port_number(_sidecar(), port["targetPort"]) == DEFAULT_PORT


# ---- Render and Railway


def test_render_probe_service() -> None:
    [service] = _docs(DEPLOY / "render.yaml")[0]["services"]
    assert service["healthCheckPath"] == "/live"
    env = {item["key"]: item for item in service["envVars"]}
    assert set(env) - {"PORT"} <= PROBE_ENV_VARS
    assert env["PORT"]["value"] == str(DEFAULT_PORT)
    assert env["PROBE_LISTEN"]["value"].endswith(f":{DEFAULT_PORT}")


def test_railway_probe_service() -> None:
    config = tomllib.loads((DEPLOY / "railway.toml").read_text())
    assert config["build"]["dockerfilePath"] == "Dockerfile"
    assert config["deploy"]["healthcheckPath"] == "/live"
    assert isinstance(config["deploy"]["drainingSeconds"], int)


# ---- probe configs in deploy/ pass `probe validate`


def _kubernetes_pod_env() -> dict[str, str]:
    """The sidecar's environment as the kubelet would set it, from the example Secret."""
    [secret] = _kind("Secret")
    env: dict[str, str] = {}
    for item in _sidecar()["env"]:
        source = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in source:
            env[item["name"]] = secret["stringData"][source["secretKeyRef"]["key"]]
        elif "fieldRef" in source:
            env[item["name"]] = "botflow-api-7d9c5b6f4-x2k8p"
    return env


def _deploy_probe_configs() -> Iterator[tuple[str, str, dict[str, str]]]:
    """(name, config text, environment it runs with) for every probe config in deploy/."""
    for config_map in _kind("ConfigMap"):
        for key, text in config_map["data"].items():
            yield f"configmap/{key}", text, _kubernetes_pod_env()
    compose_env = {
        k: compose_value(v) for k, v in COMPOSE["services"]["probe"]["environment"].items()
    }
    yield "compose (baked default)", DEFAULT_CONFIG.read_text(), compose_env


@pytest.mark.parametrize(
    ("text", "env"),
    [pytest.param(text, env, id=name) for name, text, env in _deploy_probe_configs()],
)
def test_deploy_probe_config_validates(text: str, env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    assert config_vars(text) <= PROBE_ENV_VARS, "a variable the default config does not read"
    result = _run(
        [sys.executable, "-m", "probe", "validate", "-c", path], ROOT, {**_clean_env(), **env}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("valid: ")
    # The targets come from the example's environment, not from localhost fallbacks.
    redis_host = re.sub(r"redis://([^@]*@)?", "", env["REDIS_URL"]).split("/")[0]
    assert redis_host in result.stdout


# ---- Prometheus and Alertmanager


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = _docs(DEPLOY / "prometheus.yml")[0]
    token = tmp_path / "probe-auth-token"
    token.write_text("test-token\n")
    jobs = config["scrape_configs"]
    assert {job["job_name"] for job in jobs} == {"probe", "probe-kubernetes"}
    for job in jobs:
        assert job["authorization"]["type"] == "Bearer"
        job["authorization"]["credentials_file"] = str(token)
    # Debian's promtool is built without Kubernetes service discovery.
    config["scrape_configs"] = [job for job in jobs if "kubernetes_sd_configs" not in job]
    shutil.copy2(DEPLOY / "probe-rules.yml", tmp_path / "probe-rules.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = _run([PROMTOOL, "check", "config", "prometheus.yml"], tmp_path, _clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout


def test_prometheus_rules_watch_metrics_probe_exports() -> None:
    rules = _docs(DEPLOY / "probe-rules.yml")[0]["groups"][0]["rules"]
    exprs = " ".join(rule["expr"] for rule in rules)
    assert "probe_check_last_run_timestamp_seconds" in exprs
    assert all(rule["alert"].startswith("Probe") for rule in rules)


def test_alertmanager_config_routes_probe_alerts_to_slack() -> None:
    result = _run([AMTOOL, "check-config", DEPLOY / "alertmanager.yml"], ROOT, _clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
    config = _docs(DEPLOY / "alertmanager.yml")[0]
    [route] = config["route"]["routes"]
    assert route["matchers"] == ['alertname =~ "Probe.*"']
    assert {"alertname", "check", "severity"} == set(route["group_by"])
    slack_receivers = [r for r in config["receivers"] if "slack_configs" in r]
    assert {r["name"] for r in slack_receivers} == {"slack-probe", "slack-probe-critical"}
    for receiver in slack_receivers:
        [slack] = receiver["slack_configs"]
        assert slack["send_resolved"] is True
        assert "api_url" not in slack, "keep the webhook URL in a file"
    inhibit = config["inhibit_rules"][0]
    assert set(inhibit["equal"]) == {"check", "component", "measure", "agent"}


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("alertname=ProbeCheckFailing check=database severity=critical", "slack-probe-critical"),
        (
            "alertname=ProbeCheckFailing check=queues component=email severity=warning",
            "slack-probe",
        ),
        ("alertname=ProbeAlertTest check=alert-test severity=warning", "slack-probe"),
        ("alertname=ProbeDown check=probe severity=critical", "slack-probe-critical"),
        ("alertname=Watchdog severity=none", "null"),
    ],
)
def test_alertmanager_routes(labels: str, receiver: str) -> None:
    config = f"--config.file={DEPLOY / 'alertmanager.yml'}"
    args = [AMTOOL, "config", "routes", "test", config, *labels.split(), "agent=botflow-probe"]
    result = _run(args, ROOT, _clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


@pytest.mark.parametrize("field", ["color", "title", "text", "fallback"])
def test_alertmanager_slack_templates_render(field: str, tmp_path: Path) -> None:
    config = _docs(DEPLOY / "alertmanager.yml")[0]
    [receiver] = [r for r in config["receivers"] if r["name"] == "slack-probe"]
    template = receiver["slack_configs"][0][field]
    (tmp_path / "none.tmpl").write_text('{{ define "none" }}{{ end }}')
    args = [
        AMTOOL,
        "template",
        "render",
        "--template.glob=none.tmpl",
        f"--template.text={template}",
    ]
    result = _run(args, tmp_path, _clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
