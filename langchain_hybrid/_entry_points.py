"""ChatHybrid's call entry points: LangChain's call methods, each handing over to RoutedCalls.

``invoke``, ``ainvoke``, ``stream`` and ``astream`` run a whole call under ChatHybrid's own run
(:mod:`langchain_hybrid._runs`). langchain-core calls ``_generate``, ``_agenerate``,
``_stream`` and ``_astream`` itself in ``generate()`` and ``stream_events(version="v3")``,
under a chat-model run of its own, which the chosen model's run nests under.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config
from typing_extensions import override

from langchain_hybrid._routed_calls import RoutedCalls

__all__ = ["RoutedEntryPoints"]


class RoutedEntryPoints(BaseChatModel):
    """A chat model whose calls are routed by the :class:`RoutedCalls` it makes per call."""

    @abstractmethod
    def _routed_calls(self) -> RoutedCalls:
        """What this call needs, read from the current fields."""

    @override
    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return self._routed_calls().invoke(input, ensure_config(config), stop, kwargs)

    @override
    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await self._routed_calls().ainvoke(input, ensure_config(config), stop, kwargs)

    @override
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        return self._routed_calls().stream(input, ensure_config(config), stop, kwargs)

    @override
    def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        return self._routed_calls().astream(input, ensure_config(config), stop, kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        calls, config = self._routed_calls(), ensure_config()
        plan = calls.plan(messages, config, kwargs)
        message = calls.answer(messages, stop, config, plan, run_manager)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        calls, config = self._routed_calls(), ensure_config()
        plan = await calls.aplan(messages, config, kwargs)
        message = await calls.aanswer(messages, stop, config, plan, run_manager)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        calls, config = self._routed_calls(), ensure_config()
        plan = calls.plan(messages, config, kwargs)
        for chunk in calls.chunks(messages, stop, config, plan, run_manager):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        calls, config = self._routed_calls(), ensure_config()
        plan = await calls.aplan(messages, config, kwargs)
        async for chunk in calls.achunks(messages, stop, config, plan, run_manager):
            yield ChatGenerationChunk(message=chunk)
