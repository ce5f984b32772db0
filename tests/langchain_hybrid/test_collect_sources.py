"""The LangChain response source that ``hybrid-llm collect`` and the LLM judge use."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_hybrid.collect_source import ChatModelSource, chat_model_providers
from shared_router.errors import MissingDependencyError
from shared_router.pipeline.sources import CHAT_MODEL_PROVIDERS, Generation, resolve_source


def test_the_core_knows_the_providers_of_the_installed_langchain() -> None:
    pytest.importorskip("langchain")
    assert set(CHAT_MODEL_PROVIDERS) == set(chat_model_providers())


def test_chat_model_source_returns_text_and_usage() -> None:
    reply = AIMessage(
        content="Paris.", usage_metadata={"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}
    )
    source = ChatModelSource(GenericFakeChatModel(messages=iter([reply])))
    assert asyncio.run(source.generate("Capital of France?")) == Generation("Paris.", 7, 2)


def test_chat_model_source_without_usage_reports_none() -> None:
    source = ChatModelSource(GenericFakeChatModel(messages=iter(["plain"])))
    assert asyncio.run(source.generate("hi")) == Generation("plain", None, None)


def test_chat_model_source_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="expected a LangChain BaseChatModel, got str"):
        ChatModelSource("gpt-4o")  # type: ignore[arg-type]


def test_a_provider_spec_goes_through_init_chat_model_with_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat_models = pytest.importorskip("langchain.chat_models")
    calls: list[tuple[str, dict[str, object]]] = []
    fake = GenericFakeChatModel(messages=iter(["hello"]))

    def init_chat_model(model: str, **kwargs: object) -> GenericFakeChatModel:
        calls.append((model, kwargs))
        return fake

    monkeypatch.setattr(chat_models, "init_chat_model", init_chat_model)
    source = resolve_source("openai:gpt-4o-mini", {"temperature": 0.7, "max_tokens": 64})
    assert calls == [("openai:gpt-4o-mini", {"temperature": 0.7, "max_tokens": 64})]
    assert isinstance(source, ChatModelSource) and source.model is fake


def test_a_provider_spec_without_langchain_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r'pip install "hybrid-llm\[collect\]"'):
        resolve_source("anthropic:claude-3-5-haiku-latest")


def test_a_sync_only_model_is_asked_through_its_blocking_api() -> None:
    class NativeAsync(GenericFakeChatModel):
        async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
            return self._generate(*args, **kwargs)

    sync_only = ChatModelSource(GenericFakeChatModel(messages=iter([AIMessage(content="b")])))
    assert sync_only.native_async is False  # the pipeline runs generate_sync on its own threads
    assert sync_only.generate_sync("q").text == "b"
    native = NativeAsync(messages=iter([AIMessage(content="a")]))
    assert ChatModelSource(native).native_async is True
