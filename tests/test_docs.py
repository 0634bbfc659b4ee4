"""The documentation holds together: every relative link in README.md and docs/**/*.md
points at a file that exists and, with a `#anchor`, at a heading of that file (GitHub's
anchor rules). No network: links with a scheme (https:, mailto:) are not followed."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe.contract.config import AgentConfig, AlertsConfig, Config
from probe.contract.plugin import CheckConfig
from probe.contract.plugins import CHECK_TYPES, NOTIFIER_TYPES, check_config_model, metric_families
from probe.engine.metrics import build_registry
from probe.engine.store import ResultStore
from tests.support import route_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 200

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# [text](target) or [text](<target> "title"); the text may hold one level of brackets.
_INLINE_LINK = re.compile(
    r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)", re.M)
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")
# What GitHub's heading text loses before it becomes an anchor.
_MD_LINK_OR_IMAGE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HTML_TAG = re.compile(r"<[^>]+>")
_NOT_ANCHOR_CHAR = re.compile(r"[^\w\- ]")


@dataclass(frozen=True, slots=True)
class Link:
    source: Path
    line: int
    target: str


@dataclass(frozen=True, slots=True)
class Broken:
    link: Link
    reason: str

    def __str__(self) -> str:
        where = _shown(self.link.source)
        return f"{where}:{self.link.line}: ({self.link.target}) {self.reason}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _without_code_blocks(text: str) -> list[str]:
    """The file's lines, fenced code blocks blanked (line numbers stay)."""
    lines = text.splitlines()
    fence = ""
    for index, line in enumerate(lines):
        match = _FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
            lines[index] = ""
        elif match:
            fence = match.group(1)
            lines[index] = ""
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text, lowercase, punctuation except
    `-` and `_` dropped, each space a `-`."""
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = _MD_LINK_OR_IMAGE.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return _NOT_ANCHOR_CHAR.sub("", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file offers: its headings (duplicates get -1, -2, ...) and
    explicit `<a name=...>` / `id=...` targets."""
    lines = _without_code_blocks(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    seen: dict[str, int] = {}

    def add(heading: str) -> None:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    for index, line in enumerate(lines):
        atx = _ATX.match(line)
        if atx:
            add(atx.group(2) or "")
        elif (
            index > 0
            and _SETEXT.match(line)
            and lines[index - 1].strip()
            and not _ATX.match(lines[index - 1])
            and not lines[index - 1].lstrip().startswith(("|", "-", "*", ">"))
        ):
            add(lines[index - 1].strip())
        found.update(_HTML_ANCHOR.findall(line))
    return found


def links(path: Path) -> list[Link]:
    """Every link target of a Markdown file outside code blocks and code spans."""
    lines = _without_code_blocks(path.read_text(encoding="utf-8"))
    # Blank code spans but keep offsets, so a match's position still gives its line.
    text = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), "\n".join(lines))
    found: list[Link] = []
    for pattern in (_INLINE_LINK, _REFERENCE_DEF):
        for match in pattern.finditer(text):
            target = match.group(1).removeprefix("<").removesuffix(">")
            line = text.count("\n", 0, match.start()) + 1
            found.append(Link(path, line, target))
    return sorted(found, key=lambda link: link.line)


def check_link(link: Link, root: Path = ROOT) -> str:
    """Why a link is broken, or '' when it resolves."""
    target = link.target
    if not target:
        return "empty link"
    if _SCHEME.match(target):
        return ""  # external: not followed (no network in tests)
    raw_path, _, raw_anchor = target.partition("#")
    path_part, anchor = unquote(raw_path), unquote(raw_anchor)
    resolved = (link.source.parent / path_part).resolve() if path_part else link.source
    if not resolved.is_relative_to(root.resolve()):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if not raw_anchor:
        return "" if "#" not in target else "empty #anchor"
    page = resolved / "README.md" if resolved.is_dir() else resolved
    if page.suffix.lower() != ".md" or not page.is_file():
        return f"#{anchor}: only Markdown files have headings to link to"
    if anchor not in anchors(page):
        return f"#{anchor}: no such heading in {_shown(page)}"
    return ""


def broken_links(files: list[Path], root: Path = ROOT) -> list[Broken]:
    broken: list[Broken] = []
    for path in files:
        for link in links(path):
            reason = check_link(link, root)
            if reason:
                broken.append(Broken(link, reason))
    return broken


# ---------------------------------------------------------------- the repository's docs


def test_every_relative_link_resolves() -> None:
    files = doc_files()
    assert all(path.is_file() for path in files)
    broken = broken_links(files)
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(map(str, broken))


def test_readme_is_the_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    first_block = "\n".join(lines[: lines.index("```", 3)])
    assert lines[0].startswith("# "), lines[0]
    assert lines[2].startswith("```"), "README must start with the commands"
    assert first_block.index("make run") < first_block.index("make test"), first_block


def test_every_check_type_has_its_page_in_the_index() -> None:
    index = (DOCS / "checks" / "README.md").read_text(encoding="utf-8")
    missing = [name for name in CHECK_TYPES if not (DOCS / "checks" / f"{name}.md").is_file()]
    unlisted = [name for name in CHECK_TYPES if f"]({name}.md)" not in index]
    assert not missing, f"no docs/checks/<type>.md for: {', '.join(missing)}"
    assert not unlisted, f"docs/checks/README.md does not link: {', '.join(unlisted)}"


# ---------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Choosing `critical`", "choosing-critical"),
        (
            "Why liveness must never point at `/health` (or `/ready`)",
            "why-liveness-must-never-point-at-health-or-ready",
        ),
        ("Fleets: Prometheus and Alertmanager", "fleets-prometheus-and-alertmanager"),
        ("Seeing the app's limits", "seeing-the-apps-limits"),
        ("`probe_check_up` and snake_case", "probe_check_up-and-snake_case"),
        ("Errors: 404 and 405", "errors-404-and-405"),
        ("See [the docs](x.md) now", "see-the-docs-now"),
        ("a  -  b", "a-----b"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_the_checker_reports_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "README.md").write_text(
        "# Top\n\n"
        "[ok](docs/a.md) [ok anchor](docs/a.md#second-heading) [self](#top)\n"
        "[dir](docs/sub) [dir anchor](docs/sub#index) [external](https://example.com/x#y)\n"
        "[missing file](docs/nope.md)\n"
        "[missing anchor](docs/a.md#no-such-heading)\n"
        "[anchor into code](docs/a.md#in-code)\n"
        "[outside](../elsewhere.md)\n"
        "`[in a code span](docs/nope.md)`\n"
        "```\n[in a code block](docs/nope.md)\n```\n"
        "[ref]: docs/gone.md\n",
        encoding="utf-8",
    )
    (tmp_path / "docs" / "a.md").write_text(
        "# A\n\n## Second heading\n\n## A\n\n```\n# in code\n```\n", encoding="utf-8"
    )
    (tmp_path / "docs" / "sub" / "README.md").write_text("# Index\n", encoding="utf-8")
    (tmp_path / "elsewhere.md").write_text("# Elsewhere\n", encoding="utf-8")

    assert anchors(tmp_path / "docs" / "a.md") == {"a", "second-heading", "a-1"}
    broken = broken_links(doc_files(tmp_path), root=tmp_path)
    shown = {(b.link.line, b.link.target): b.reason for b in broken}
    a_md = tmp_path / "docs" / "a.md"
    assert shown == {
        (5, "docs/nope.md"): "no such file",
        (6, "docs/a.md#no-such-heading"): f"#no-such-heading: no such heading in {a_md}",
        (7, "docs/a.md#in-code"): f"#in-code: no such heading in {a_md}",
        (8, "../elsewhere.md"): "points outside the repository",
        (13, "docs/gone.md"): "no such file",
    }


# ---------------------------------------------------------------- names from the registries


def _docs_text() -> str:
    return "\n".join(p.read_text() for p in doc_files() if p.is_relative_to(ROOT / "docs"))


def _metric_names() -> set[str]:
    """Every family a scrape can show: the core ones and those the check types declare."""
    config = Config(source="docs", agent=AgentConfig(), checks=[], alerts=AlertsConfig())
    text = generate_latest(build_registry(ResultStore(config), None)).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    names |= {family.name for family in metric_families()}
    return {n for n in names if n.startswith("probe_")}


def test_every_check_type_measure_and_metric_is_documented() -> None:
    docs = _docs_text()
    missing = [f"check type {t}" for t in CHECK_TYPES if f"`{t}`" not in docs]
    missing += [f"notifier {n}" for n in NOTIFIER_TYPES if f"`{n}`" not in docs]
    for type_name in CHECK_TYPES:
        page = (ROOT / "docs" / "checks" / f"{type_name}.md").read_text()
        # `response_time` and `error_rate` every check takes: documented once, in general.
        own = check_config_model(type_name).measures - CheckConfig.measures
        missing += [f"measure {type_name}.{m}" for m in sorted(own) if f"`{m}`" not in page]
    missing += [f"measure {m}" for m in sorted(CheckConfig.measures) if f"`{m}`" not in docs]
    # Counters are documented with their `_total` sample name or their family name.
    missing += [f"metric {m}" for m in sorted(_metric_names()) if m not in docs]
    assert missing == [], "not in docs/: " + ", ".join(missing)


# ---------------------------------------------------------------- lists that cannot go stale


def _name_lists(text: str, names: list[str]) -> list[tuple[int, set[str]]]:
    """Every run of three or more of `names` written as a list (`a, b and c`, with or
    without backticks or links), with the line it starts on."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    item = rf"\[?`?(?:{alternatives})`?(?:\]\([^)]*\))?"
    sep = r"(?:,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+)"
    found = []
    for match in re.finditer(rf"(?<![\w.-]){item}(?:{sep}{item}){{2,}}(?![\w.-])", text):
        listed = set(re.findall(rf"(?<![\w-])(?:{alternatives})(?![\w-])", match.group(0)))
        found.append((text.count("\n", 0, match.start()) + 1, listed))
    return found


@pytest.mark.parametrize(
    ("what", "registry"), [("check types", CHECK_TYPES), ("notifiers", NOTIFIER_TYPES)]
)
def test_every_list_of_names_in_the_docs_is_the_registry(
    what: str, registry: dict[str, str]
) -> None:
    """A list of check types or notifiers in README.md or docs/ names every one of them."""
    stale = []
    for path in doc_files():
        for line, listed in _name_lists(path.read_text(encoding="utf-8"), list(registry)):
            if listed != set(registry):
                missing = ", ".join(sorted(set(registry) - listed))
                stale.append(f"{_shown(path)}:{line}: lists {len(listed)} {what}, not {missing}")
    assert stale == [], "\n".join(stale)


def test_the_list_finder_finds_lists_and_only_lists() -> None:
    names = ["slack", "webhook", "alertmanager", "pagerduty"]
    text = (
        "per notifier type (`slack`, `alertmanager`, `webhook`)\n"
        "[slack](s.md), [webhook](w.md) and [pagerduty](p.md)\n"
        "`slack: delivered`, `alertmanager: FAILED`\n"
        "slack.py, alertmanager.py, webhook.py\n"
    )
    assert _name_lists(text, names) == [
        (1, {"slack", "alertmanager", "webhook"}),
        (2, {"slack", "webhook", "pagerduty"}),
    ]


def _measure_tables(page: str) -> set[str]:
    """The backticked names in the first column of the page's `| measure | ...` tables."""
    listed: set[str] = set()
    in_table = False
    for line in page.splitlines():
        if re.match(r"^\|\s*measure\s*\|", line):
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            listed.update(re.findall(r"`([a-z_-]+)`", line.split("|")[1]))
        elif not line.startswith("|"):
            in_table = False
    return listed


def test_every_measure_table_lists_only_measures_of_its_type() -> None:
    stale = []
    for type_name in CHECK_TYPES:
        model = check_config_model(type_name)
        page = (DOCS / "checks" / f"{type_name}.md").read_text(encoding="utf-8")
        stale += [f"{type_name}.md: `{m}`" for m in sorted(_measure_tables(page) - model.measures)]
    assert stale == [], "measures in docs that the type does not have: " + ", ".join(stale)


# ---------------------------------------------------------------- the map of the code

_ENTRY_COLUMN = 16  # entries start left of this column; their continuations to the right


def _layout_block() -> list[str]:
    text = (DOCS / "development.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout") :]
    block = section[section.index("```\n") + 4 :]
    return block[: block.index("```")].splitlines()


def layout_names(lines: list[str]) -> set[str]:
    """Paths under probe/ the map names: the names an entry starts with (`x/` a folder,
    `y.py` a module), and the `z.py` words of a folder's own description."""
    named: set[str] = set()
    folders: list[str] = []  # the folder at each depth, probe/ itself ("") at depth 0
    describes = ""  # the folder whose description the current line continues, if any
    inside = False
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if line.strip() == "probe/":
            inside, folders = True, [""]
            continue
        if not inside:
            continue
        if indent == 0:
            break
        text = line
        if indent < _ENTRY_COLUMN:
            head, _, text = line.strip().partition("  ")
            folders = folders[: indent // 2]
            describes = ""
            for name in (n.strip() for n in head.split(",")):
                if name.endswith("/"):
                    describes = folders[-1] + name
                    named.add(describes)
                else:
                    named.add(folders[-1] + name)
            if describes:
                folders.append(describes)
        if describes:
            named.update(describes + m for m in re.findall(r"(?<![\w/])(\w+\.py)\b", text))
    return named


def tree_names(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*"):
        if "__pycache__" in path.parts or path.name == "__init__.py":
            continue
        relative = path.relative_to(package).as_posix()
        if path.is_dir():
            found.add(relative + "/")
        elif path.suffix in (".py", ".yaml"):
            found.add(relative)
    return found


def test_the_layout_in_development_md_is_the_tree() -> None:
    named, actual = layout_names(_layout_block()), tree_names(ROOT / "probe")
    assert sorted(actual - named) == [], "in probe/ but not in docs/development.md's Layout"
    assert sorted(named - actual) == [], "in docs/development.md's Layout but not in probe/"


def test_the_layout_reader_reads_entries_and_folders() -> None:
    block = [
        "probe/",
        "  a.py, b.py              two modules",
        "  box/                    one.py (the first), two.py,",
        "                          three.py",
        "    inner/                deep.py",
        "  c.py                    uses one.py words",
        "tests/                    not probe",
    ]
    assert layout_names(block) == {
        "a.py", "b.py", "box/", "box/one.py", "box/two.py", "box/three.py",
        "box/inner/", "box/inner/deep.py", "c.py",
    }  # fmt: skip


def test_every_route_is_on_the_endpoints_page() -> None:
    """The route table (probe.web.routes) against docs/endpoints.md, `{x}` written `<x>`."""
    page = (DOCS / "endpoints.md").read_text(encoding="utf-8")
    paths = {p for route in route_table() for p in route.paths}
    assert len(paths) > 10  # the table was read
    written = {p: "`" + re.sub(r"{(\w+)}", r"<\1>", p) + "`" for p in paths}
    missing = [p for p in sorted(paths) if written[p] not in page]
    assert missing == [], "routes not on docs/endpoints.md: " + ", ".join(missing)


def test_the_project_cites_no_document_outside_it() -> None:
    """Contracts users depend on are stated in docs/; a citation of a design document or
    notes kept beside the repository is one a reader cannot follow."""
    # Spelled in parts, so this test does not cite them itself.
    outside = re.compile("DESIGN" + r"\.md|" + r"\.\./" + "shared/|" + "shared/" + "notes")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".txt", ""):
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        found += [f"{name}:{i}" for i, line in enumerate(lines, 1) if outside.search(line)]
    assert found == [], "cites a document outside the repository: " + ", ".join(found)
