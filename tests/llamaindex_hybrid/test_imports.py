"""The public surface of llamaindex_hybrid and what importing it loads."""

from __future__ import annotations

import json
import subprocess
import sys

import llamaindex_hybrid


def test_all_is_pinned() -> None:
    assert llamaindex_hybrid.__all__ == [
        "HybridLLM",
        "LiveSettings",
        "ModelPrices",
        "RoutingEvent",
        "routing_question",
    ]
    for name in llamaindex_hybrid.__all__:
        assert getattr(llamaindex_hybrid, name).__name__ == name


def test_import_and_construction_load_no_heavy_library_and_no_router() -> None:
    script = """
import json, sys
from llama_index.core.llms import MockLLM
from llamaindex_hybrid import HybridLLM
llm = HybridLLM(MockLLM(), MockLLM(), router="default")  # checked, not loaded
heavy = ("torch", "sentence_transformers", "transformers", "shared_router.routing.router")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
