"""Which failures fall back, and which are raised where they happen.

A small model that fails as a provider (time-out, connection, rate limit, server error, a
structured answer that does not parse) falls back to the large model, with a WARNING naming
the cause; a programming error propagates; ``exceptions_to_handle`` replaces the rule as in
``with_fallbacks``. A router path that names no router, and a quality level out of range,
fail when the model is built.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from langchain_hybrid import ChatHybrid
from tests.fixed_router import FixedRouter
from tests.langchain_hybrid.stand_ins import StandInChatModel

QUESTION = "What is 2 + 2?"
LOGGER = "langchain_hybrid"


def _hybrid(error: Exception, after: int | None = None, **fields: object) -> ChatHybrid:
    small = StandInChatModel(model="small-model", error=error, fail_after_chunks=after)
    large = StandInChatModel(model="large-model")
    return ChatHybrid(small=small, large=large, router=FixedRouter(), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["invoke", "stream", "streaming_invoke"])
def test_a_programming_error_of_the_small_model_propagates(mode: str) -> None:
    error = TypeError("unexpected keyword argument 'temprature'")
    llm = _hybrid(error, streaming=mode == "streaming_invoke")
    with pytest.raises(TypeError, match="temprature"):
        if mode == "stream":
            list(llm.stream(QUESTION))
        else:
            llm.invoke(QUESTION)
    assert llm.stats.fallbacks == 0
    assert llm.stats.failed == 1


@pytest.mark.parametrize(
    "error", [TimeoutError("read timed out"), ConnectionError("connection reset")]
)
def test_a_provider_failure_falls_back_with_a_warning_naming_its_cause(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    llm = _hybrid(error)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        answer = llm.invoke(QUESTION)
    routing = answer.response_metadata["routing"]
    assert (routing["model"], routing["fallback"]) == ("large", True)
    (warning,) = [r for r in caplog.records if r.name.startswith(LOGGER)]
    assert warning.levelno == logging.WARNING
    assert type(error).__name__ in warning.getMessage()
    assert str(error) in warning.getMessage()


def test_exceptions_to_handle_replaces_the_provider_rule() -> None:
    llm = _hybrid(ValueError("quota"), exceptions_to_handle=(ValueError,))
    assert llm.invoke(QUESTION).response_metadata["routing"]["fallback"] is True
    strict = _hybrid(TimeoutError("slow"), exceptions_to_handle=(ValueError,))
    with pytest.raises(TimeoutError):
        strict.invoke(QUESTION)


def test_a_stream_broken_by_a_provider_error_before_its_first_chunk_falls_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = _hybrid(ConnectionError("reset"), after=0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        chunks = list(llm.stream(QUESTION))
    assert "".join(c.text for c in chunks) == f"large-model answers: {QUESTION}"
    assert any("ConnectionError" in r.getMessage() for r in caplog.records)


def test_a_misspelt_router_path_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such folder"):
        ChatHybrid(
            small=StandInChatModel(),
            large=StandInChatModel(),
            router=str(tmp_path / "routr"),
        )


@pytest.mark.parametrize("level", [5, 1.5])
def test_a_quality_drop_above_one_is_refused(level: float) -> None:
    with pytest.raises(ValueError, match="max_quality_drop"):
        ChatHybrid(
            small=StandInChatModel(),
            large=StandInChatModel(),
            router=FixedRouter(),
            max_quality_drop=level,
        )
