"""A router that cannot load raises; fallbacks are for provider errors, each logged (issue 14).

Why bullet 2 ("a wrong router path fails silently").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole

from llamaindex_hybrid import HybridLLM
from shared_router.errors import ArtifactError, HybridLLMError
from tests.fixed_router import FixedRouter
from tests.llamaindex_hybrid.stand_ins import EASY, StandInLLM


class BuggyLLM(StandInLLM):
    """A STAND-IN whose chat has a programming error (a bad keyword, say), not a provider one."""

    def _answer(self, method: str, messages: Any, kwargs: Any) -> ChatResponse:
        self._calls.append({"method": method, "text": "", "kwargs": {}, "messages": []})
        raise TypeError("chat() got an unexpected keyword argument 'temprature'")


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_a_wrong_router_path_fails_at_construction(
    small: StandInLLM, large: StandInLLM, tmp_path: Path
) -> None:
    # Before: construction passed and every call went large, without a log line.
    with pytest.raises(ArtifactError, match="no-such-router"):
        HybridLLM(small, large, router=tmp_path / "no-such-router")


def test_a_router_that_cannot_load_raises_on_first_use(
    small: StandInLLM, large: StandInLLM, tmp_path: Path
) -> None:
    folder = tmp_path / "broken-router"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    llm = HybridLLM(small, large, router=folder)
    # Before: the load error became a silent fallback to the large model.
    with pytest.raises(HybridLLMError, match="broken-router"):
        llm.chat(user(EASY))
    assert small.calls == [] and large.calls == []


async def test_a_programming_error_of_the_small_model_is_not_hidden(large: StandInLLM) -> None:
    llm = HybridLLM(BuggyLLM(name="small"), large, router=FixedRouter("small"))
    # Before: the large model answered, hiding the bug.
    with pytest.raises(TypeError, match="temprature"):
        llm.chat(user(EASY))
    with pytest.raises(TypeError, match="temprature"):
        await llm.achat(user(EASY))
    assert large.calls == []
    assert (llm.stats.calls, llm.stats.failed) == (0, 2)


def test_exceptions_to_handle_replaces_the_provider_rule(large: StandInLLM) -> None:
    llm = HybridLLM(
        BuggyLLM(name="small"),
        large,
        router=FixedRouter("small"),
        exceptions_to_handle=(TypeError,),
    )
    record = llm.chat(user(EASY)).additional_kwargs["routing"]
    assert (record["model"], record["fallback"]) == ("large", True)
    assert record["reason"].startswith("small model failed (TypeError")
    assert llm.to_dict()["fallback_to_large"] is True


def test_every_fallback_is_logged_at_warning_with_its_cause(
    large: StandInLLM, caplog: pytest.LogCaptureFixture
) -> None:
    down = StandInLLM(name="small", fail_with="connection refused")
    llm = HybridLLM(down, large, router=FixedRouter("small"))
    with caplog.at_level(logging.WARNING, logger="llamaindex_hybrid"):
        llm.chat(user(EASY))
        llm.complete(EASY)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    for warning in warnings:
        assert "ConnectionError: connection refused" in warning.getMessage()
        assert "large model answered instead" in warning.getMessage()


def test_a_failing_router_is_a_visible_fallback(
    small: StandInLLM, large: StandInLLM, caplog: pytest.LogCaptureFixture
) -> None:
    llm = HybridLLM(small, large, router=FixedRouter(error=ConnectionError("encoder gone")))
    with caplog.at_level(logging.WARNING):
        record = llm.chat(user(EASY)).additional_kwargs["routing"]
    assert (record["model"], record["fallback"]) == ("large", True)
    assert any("encoder gone" in r.getMessage() for r in caplog.records)
