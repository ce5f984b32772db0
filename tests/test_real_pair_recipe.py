"""cookbook/real_local_pair.py without the weights or llama.cpp: options and clear refusals.

The recipe itself needs two GGUF files and llama-cpp-python (``benchmarks/real_pair``); these
tests check only what a user without them sees, so they run everywhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared_router.errors import ConfigurationError, MissingDependencyError

RECIPE = Path(__file__).resolve().parents[1] / "cookbook" / "real_local_pair.py"


@pytest.fixture
def recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_local_pair_recipe", RECIPE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_weights_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("HYBRID_SMALL_GGUF", "HYBRID_LARGE_GGUF"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HYBRID_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def test_weight_paths_come_from_the_weights_folder(
    recipe: ModuleType, no_weights_env: Path
) -> None:
    args = recipe.parse_args([])
    assert args.small == no_weights_env / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert args.large == no_weights_env / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert args.router == "default" and args.questions == list(recipe.QUESTIONS)


def test_each_file_variable_overrides_the_folder(
    recipe: ModuleType, no_weights_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRID_SMALL_GGUF", "/models/small.gguf")
    args = recipe.parse_args(["--large", "/models/large.gguf", "--max-quality-drop", "0.3", "Hi?"])
    assert (args.small, args.large) == (Path("/models/small.gguf"), Path("/models/large.gguf"))
    assert args.max_quality_drop == 0.3 and args.questions == ["Hi?"]


def _installed(monkeypatch: pytest.MonkeyPatch, missing: set[str]) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in missing else (real(name, *args) or object())

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_llama_cpp_names_the_package_to_install(
    recipe: ModuleType, no_weights_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installed(monkeypatch, {"llama_cpp"})
    with pytest.raises(MissingDependencyError, match=r"pip install llama-cpp-python==0\.3\.36"):
        recipe.check_setup(recipe.parse_args([]))


def test_missing_weights_say_how_to_fetch_them(
    recipe: ModuleType, no_weights_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installed(monkeypatch, set())
    with pytest.raises(ConfigurationError, match="small model's GGUF file is not at") as info:
        recipe.check_setup(recipe.parse_args([]))
    assert "benchmarks.real_pair.weights" in str(info.value)
    assert "HYBRID_WEIGHTS_DIR" in str(info.value)


def test_main_exits_2_with_the_message_and_loads_no_model(
    recipe: ModuleType,
    no_weights_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _installed(monkeypatch, set())
    assert recipe.main(["--small", str(no_weights_env / "absent.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("real_local_pair: the small model's GGUF file is not at")
    assert str(no_weights_env / "absent.gguf") in err
