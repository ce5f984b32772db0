"""The packages keep their layers: nothing imports upward (see ``layers.RANKS``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.architecture.layers import RANKS, entry_of, layer_violations

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared_router", "langchain_hybrid", "llamaindex_hybrid")


def test_no_module_imports_upward() -> None:
    assert layer_violations(ROOT, PACKAGES) == []


def test_the_checker_finds_a_planted_upward_import(tmp_path: Path) -> None:
    core = tmp_path / "shared_router"
    for folder in ("model", "routing", "_internal"):
        (core / folder).mkdir(parents=True)
        (core / folder / "__init__.py").write_text('"""x."""\n')
    (core / "__init__.py").write_text('"""x."""\n')
    (core / "routing" / "router.py").write_text("from shared_router.model import head\n")
    # an upward import hidden inside a function, and a relative one
    (core / "model" / "head.py").write_text(
        "def fit():\n    from shared_router.routing.router import Router\n"
    )
    (core / "_internal" / "atomic.py").write_text("from ..model import head\n")
    (core / "model" / "card.py").write_text("import langchain_core\n")
    found = layer_violations(tmp_path, ("shared_router",))
    assert len(found) == 3, found
    assert any("head.py:2: shared_router.model.head (rank 1.2) imports" in f for f in found)
    assert any("atomic.py:1:" in f and "shared_router.model.head" in f for f in found)
    assert any(
        "the core module shared_router.model.card imports langchain_core" in f for f in found
    )


def test_a_module_outside_every_layer_is_reported(tmp_path: Path) -> None:
    (tmp_path / "shared_router").mkdir()
    (tmp_path / "shared_router" / "__init__.py").write_text("")
    (tmp_path / "shared_router" / "stray.py").write_text("")
    assert layer_violations(tmp_path, ("shared_router",), {"shared_router.__init__": 0.0}) != []


def _layer_modules(entry: str) -> list[str]:
    base = ROOT.joinpath(*entry.split("."))
    if base.with_suffix(".py").is_file():
        return [entry]
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in base.rglob("*.py")
    )


CORE_ENTRIES = sorted(e for e in RANKS if e.startswith("shared_router"))


@pytest.mark.parametrize("entry", CORE_ENTRIES)
def test_importing_a_layer_loads_nothing_above_it(entry: str) -> None:
    """In a fresh interpreter, importing every module of a layer loads no higher layer."""
    modules = [m for m in _layer_modules(entry) if not m.endswith("torch_backend")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('shared_router', 'langchain_hybrid', 'llamaindex_hybrid', 'langchain_core', "
        "'llama_index'))))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
    )
    own = RANKS[entry]
    above = [
        m
        for m in loaded
        if (other := entry_of(m, RANKS)) is not None and other != entry and RANKS[other] >= own
    ]
    frameworks = [m for m in loaded if m.split(".")[0] in ("langchain_core", "llama_index")]
    assert above == [] and frameworks == []
