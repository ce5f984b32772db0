"""The LangChain recipe in cookbook/ runs offline from start to end."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "cookbook" / "langchain_chat_hybrid.py"


def test_the_recipe_runs_offline(planted_router: Any, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("langchain_chat_hybrid_recipe", RECIPE)
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)

    stats = recipe.main(planted_router)

    out = capsys.readouterr().out
    assert re.search(r"per call \(threshold=0\.0\) +threshold 0\.0000 -> small", out)
    assert "tool call: multiply({'a': 6, 'b': 7}) -> 42" in out
    assert "The tool says 42." in out
    assert '"router": "planted-test-router"' in out
    assert stats.calls == 11 and stats.small > 0 and stats.large > 0
    assert stats.cost_saved is not None and stats.cost_saved > 0
