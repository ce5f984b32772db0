"""Copies of HybridLLM keep the user's router and knobs, and have their own stats (issue 14).

Why bullet 3 ("copies break").
"""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llamaindex_hybrid import HybridLLM
from tests.llamaindex_hybrid.stand_ins import EASY, HARD, StandInLLM

ROOT = Path(__file__).resolve().parents[2]


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


@pytest.fixture(scope="module")
def router_folder(planted_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted router saved as a folder: a router users refer to by its path."""
    return Path(planted_router.save(tmp_path_factory.mktemp("routers") / "my-own-router"))


@pytest.fixture
def hybrid(router_folder: Path) -> HybridLLM:
    llm = HybridLLM(
        StandInLLM(name="small"),
        StandInLLM(name="large"),
        router=router_folder,
        threshold=0.3,
        sticky=True,
        routed_text="conversation",
    )
    llm.chat(user(EASY))
    return llm


def settings(llm: HybridLLM) -> tuple[Any, ...]:
    return (llm.loaded_router.name, llm.threshold, llm.sticky, llm.routed_text, llm.small.name)


def test_pickle_round_trip_in_another_process(hybrid: HybridLLM, tmp_path: Path) -> None:
    pickled = tmp_path / "llm.pickle"
    pickled.write_bytes(pickle.dumps(hybrid))
    script = f"""
import json, pickle, sys
sys.path.insert(0, {str(ROOT)!r})
from llama_index.core.base.llms.types import ChatMessage
llm = pickle.loads(open({str(pickled)!r}, "rb").read())
before = llm.stats.calls
record = llm.chat([ChatMessage(role="user", content={EASY!r})]).additional_kwargs["routing"]
print(json.dumps({{"router": llm.loaded_router.name, "threshold": llm.threshold,
                  "sticky": llm.sticky, "small": llm.small.name, "before": before,
                  "after": llm.stats.calls, "record_router": record["router"],
                  "model": record["model"]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # Before: the router became 'hybrid-llm-default-v0' (and the knobs were re-read from fields).
    assert seen["router"] == seen["record_router"] == "planted-test-router"
    assert (seen["threshold"], seen["sticky"], seen["small"]) == (0.3, True, "small")
    assert (seen["before"], seen["after"], seen["model"]) == (0, 1, "small")


def test_deepcopy_and_model_copy_keep_the_router_and_have_their_own_stats(
    hybrid: HybridLLM,
) -> None:
    deep = copy.deepcopy(hybrid)  # before: TypeError, cannot pickle '_thread.lock' object
    shallow = hybrid.model_copy()
    changed = hybrid.model_copy(update={"threshold": 0.0})
    for other in (deep, shallow):
        assert settings(other) == settings(hybrid)
        assert (
            other.loaded_router is hybrid.loaded_router
        )  # the one router of that folder in this process
        assert other.stats.calls == 0
    deep.chat(user(EASY))
    shallow.chat(user(EASY))
    # Before: model_copy shared the original's service, so its calls were counted there too.
    assert (hybrid.stats.calls, deep.stats.calls, shallow.stats.calls) == (1, 1, 1)
    assert changed.chat(user(HARD)).additional_kwargs["routing"]["threshold"] == 0.0
    assert deep.small is not hybrid.small and shallow.small is hybrid.small


@pytest.mark.parametrize("how", ["dict", "json", "model_dump"])
def test_serialised_form_round_trips(hybrid: HybridLLM, router_folder: Path, how: str) -> None:
    if how == "dict":
        again = HybridLLM.from_dict(hybrid.to_dict())
    elif how == "json":
        again = HybridLLM.from_json(hybrid.to_json())
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # it warned "HybridLLM ignores class_name"
            again = HybridLLM.model_validate(hybrid.model_dump())
    # Before: TypeError (missing small and large, or an abstract LLM built from a dict).
    assert settings(again) == settings(hybrid)
    assert json.loads(hybrid.to_json())["router"] == str(router_folder.resolve())
    assert again.stats.calls == 0
    assert again.chat(user(EASY)).additional_kwargs["routing"]["router"] == "planted-test-router"
