"""The public names of langchain_hybrid, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import langchain_hybrid


def test_public_names_are_pinned() -> None:
    assert langchain_hybrid.__all__ == ["ChatHybrid", "LiveSettings", "ModelPrices"]
    assert all(hasattr(langchain_hybrid, name) for name in langchain_hybrid.__all__)


def test_import_loads_no_torch_no_sentence_transformers_and_no_router() -> None:
    code = (
        "import json, sys, langchain_hybrid; "
        "print(json.dumps([m for m in ('torch', 'sentence_transformers', 'transformers', "
        "'shared_router.routing.router', 'shared_router.encoders.encoder') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )

    assert json.loads(out.stdout) == []
