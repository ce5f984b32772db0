"""The LlamaIndex recipe in cookbook/ runs offline from start to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "cookbook" / "llamaindex_rag.py"


async def test_the_recipe_runs_offline(
    planted_router: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("llamaindex_rag_recipe", RECIPE)
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)

    stats = await recipe.main(planted_router)

    out = capsys.readouterr().out
    assert "<small model's answer>" in out and "<large model's answer>" in out
    assert "<small model's answer (the tool said 42)>" in out
    assert "sticky: this conversation already went to the large model" in out
    assert out.count("ms to decide") == 8  # one record per HybridLLM answer, streams included
    assert stats.calls == 6 and stats.small > 0 and stats.large > 0
