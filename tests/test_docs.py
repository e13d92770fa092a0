"""The documentation in docs/: every registered name is documented, no file points to notes
outside the repository, and every relative link resolves. Fast: imports only, no JAX compute."""

import re
from pathlib import Path

import pytest

from diffusion_rates import metrics, process, records, samplers, schedules, score_error, targets

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Built from pieces so that this file does not match itself.
FORBIDDEN = ("DESIGN" + ".md", ".." + "/shared", "/work" + "/shared")
SCANNED = ("README.md", "docs", "src", "experiments", "scripts", "configs", "tests")
GENERATED = {"__pycache__", ".pytest_cache", ".ruff_cache"}  # and *.egg-info


def _stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


REGISTRIES = {
    "samplers.SAMPLERS": list(samplers.SAMPLERS),
    "schedules.SCHEDULES": list(schedules.SCHEDULES),
    "targets.TARGETS": list(targets.TARGETS),
    "configs/target/*.yaml": sorted(p.stem for p in (ROOT / "configs" / "target").glob("*.yaml")),
    "process.PROCESSES": list(process.PROCESSES),
    "score_error.MODELS": list(score_error.MODELS),
    "metrics.ESTIMATORS": list(metrics.ESTIMATORS),
    "metrics.METRICS": list(metrics.METRICS),
    "records.COLUMNS": list(records.COLUMNS),
    "experiments/*.py": _stems(ROOT / "experiments"),
}


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))


def undocumented(names, text: str) -> list[str]:
    """The names that do not appear in `text` as `name` in backticks."""
    return [n for n in names if f"`{n}`" not in text]


@pytest.mark.parametrize("registry", REGISTRIES)
def test_every_registered_name_is_documented(registry):
    names = REGISTRIES[registry]
    assert names, f"{registry} is empty: the test would check nothing"
    missing = undocumented(names, _docs_text())
    assert not missing, f"{registry}: not in docs/ as `name`: {', '.join(missing)}"


def test_a_name_removed_from_the_docs_is_reported():
    text = _docs_text()
    assert undocumented(["ei"], text) == []
    assert undocumented(["ei"], text.replace("`ei`", "ei")) == ["ei"]


def _scanned_files():
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            yield path
            continue
        for p in sorted(path.rglob("*")):
            parts = set(p.relative_to(ROOT).parts)
            if (
                p.is_file()
                and not parts & GENERATED
                and not any(part.endswith(".egg-info") for part in parts)
            ):
                yield p


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in _scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary files (figures, data) hold no references
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(word in line for word in FORBIDDEN):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, f"mentions of notes outside the repository: {', '.join(offenders)}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _links(text: str) -> list[str]:
    """The targets of the Markdown links of `text`, code blocks and inline code left out."""
    return LINK.findall(INLINE_CODE.sub("", FENCE.sub("", text)))


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -,
    repeats numbered."""
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for link in _links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto: ...
            continue
        file, _, anchor = link.partition("#")
        target = (page.parent / file).resolve() if file else page
        if not target.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target.read_text()):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = [p.name for p in DOCS.glob("*.md") if p.name != "README.md"]
    assert pages
    missing = [name for name in pages if f"]({name})" not in index]
    assert not missing, f"docs/README.md does not link {', '.join(missing)}"
