"""The docs cannot drift: their examples run, and what they show printed is what they print.

README.md and docs/*.md follow the convention of :mod:`tests.doc_blocks`: every ```python
block runs (in file order, one namespace per file) unless marked
``<!-- not run: REASON -->``, and a ```text block marked ``<!-- output -->`` after it must
equal what it printed. Module paths and repository files the prose names must exist.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.doc_blocks import DocError, compare_output, parse_markdown, run_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("shared_router", "langchain_hybrid", "llamaindex_hybrid")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_examples_run_and_print_what_they_show(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = parse_markdown(doc.read_text(encoding="utf-8"), _name(doc))
    if not any(block.runs for block in blocks):
        pytest.skip(f"{_name(doc)} has no python block that runs")
    monkeypatch.chdir(tmp_path)  # files an example writes land in a temporary folder
    mismatches = run_blocks(blocks, doc)
    assert not mismatches, "\n\n".join(map(str, mismatches))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_names_and_files_the_prose_cites_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    prose = re.sub(r"^(```|~~~).*?^\1[ \t]*$", "", text, flags=re.M | re.S)
    spans = re.findall(r"`([^`\n]+)`", prose)
    missing = []
    for span in spans:
        dotted_names = re.findall(rf"\b(?:{'|'.join(PACKAGES)})(?:\.\w+)+", span)
        missing += [name for name in dotted_names if not _resolves(name)]
        if _is_repo_path(span) and not (ROOT / span).exists():
            missing.append(span)
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        local = not re.match(r"[a-z]+:", target) and not target.startswith("#")
        if local and not (doc.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{_name(doc)} cites names or files that do not exist: {missing}"


def _is_repo_path(span: str) -> bool:
    """Whether an inline code span is a path into the repository (`cookbook/x.py`, `docs/`)."""
    top = {*PACKAGES, "cookbook", "benchmarks", "tests", "docs"}
    shaped = re.fullmatch(r"(?:[\w.-]+/)+(?:[\w.-]*\.(?:py|md|json))?", span)
    return bool(shaped) and span.split("/")[0] in top


def _resolves(dotted: str) -> bool:
    """Whether `package.module.attribute` imports and resolves."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


# ---------------------------------------------------------------------------------------
# The checker itself: it must catch drift and malformed markers.
# ---------------------------------------------------------------------------------------

GOOD = """\
Intro.

```python
x = 6 * 7
print(x)
```

<!-- output -->
```text
42
```

```python
print(f"{x} again, took 1.234 ms")  # shares the first block's namespace
```
<!-- output -->
```text
42 again, took ... ms
```

<!-- not run: needs an API key -->
```python
raise RuntimeError("never executed")
```

```bash
echo "bash blocks are not executed"
```
"""


def test_checker_runs_blocks_in_one_namespace_and_skips_marked_ones() -> None:
    blocks = parse_markdown(GOOD)
    assert [(b.language, b.runs) for b in blocks] == [
        ("python", True),
        ("python", True),
        ("python", False),
        ("bash", False),
    ]
    assert blocks[0].expected == "42" and blocks[0].line == 4
    assert blocks[2].not_run == "needs an API key"
    assert run_blocks(blocks, "good.md") == []


def test_checker_reports_a_wrong_output_block() -> None:
    drifted = GOOD.replace("42\n```", "41\n```", 1)
    mismatches = run_blocks(parse_markdown(drifted), "drifted.md")
    assert len(mismatches) == 1
    assert mismatches[0].where.startswith("drifted.md:4 ")
    assert mismatches[0].expected == "41" and mismatches[0].actual == "42\n"
    assert "prints something else" in str(mismatches[0])


def test_checker_rejects_a_not_run_marker_without_a_reason() -> None:
    for marker in ("<!-- not run -->", "<!-- not run: -->", "<!-- not-run:   -->"):
        with pytest.raises(DocError, match="gives no reason"):
            parse_markdown(GOOD.replace("<!-- not run: needs an API key -->", marker))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("```bash\nls\n```\n<!-- output -->\n```text\nREADME.md\n```\n", "must follow an executed"),
        (
            "<!-- not run: why -->\n```python\nx = 1\n```\n<!-- output -->\n```text\n\n```\n",
            "must follow an executed",
        ),
        ("```python\nx = 1\n```\n<!-- output -->\n```json\n{}\n```\n", "must mark a ```text"),
        ("<!-- not run: a reason -->\n```bash\nls\n```\n", "only python blocks run"),
        ("<!-- output -->\nSome prose.\n", "is not before a block"),
        ("```python\nx = 1\n", "never closed"),
    ],
)
def test_checker_rejects_malformed_markers(doc: str, message: str) -> None:
    with pytest.raises(DocError, match=re.escape(message)):
        parse_markdown(doc)


def test_output_comparison_rules() -> None:
    assert compare_output("a\nb", "\na  \nb\n\n")  # trailing spaces, blank edges
    assert not compare_output("a\nb", "a\n\nb")  # inner blank lines count
    assert compare_output("took ... ms", "took 0.41 ms")
    assert not compare_output("took ... ms", "took 0.41 ms\nmore")
    assert not compare_output("took ... ms", "took 0.41 s")


def test_an_example_that_raises_points_at_the_doc_line() -> None:
    blocks = parse_markdown("Text.\n\n```python\nx = 1\nraise ValueError('boom')\n```\n")
    with pytest.raises(ValueError, match="boom") as raised:
        run_blocks(blocks, "broken.md")
    frame = raised.traceback[-1]
    assert (str(frame.path), frame.lineno + 1) == ("broken.md", 5)


def test_citation_check_tells_real_names_and_paths_from_stale_ones() -> None:
    assert _resolves("shared_router.Router.route")
    assert _resolves("shared_router.routing_text")
    assert not _resolves("shared_router.no_such_module.thing")
    assert not _resolves("shared_router.Router.no_such_method")
    assert _is_repo_path("cookbook/llamaindex_rag.py") and (ROOT / "cookbook").is_dir()
    assert _is_repo_path("shared_router/")
    assert not _is_repo_path("my-router/router")  # a user's folder, not the repository's
