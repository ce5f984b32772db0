"""One ChatHybrid call: decide, run the chosen model (the large one on a failure), record.

:class:`RoutedCalls` holds what a call needs from ChatHybrid; ChatHybrid makes one per call
from its current fields, so a changed field or a ``model_copy`` takes effect at once. The
decisions themselves are the :class:`~shared_router.routing.serving.RoutingService`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor

from langchain_hybrid._capabilities import (
    generates_sync_only,
    only_large,
    streams_sync_only,
    takes_tools,
)
from langchain_hybrid._configurable import CONVERSATION_ID
from langchain_hybrid._conversation import message_turns
from langchain_hybrid._fallback import (
    Answer,
    SmallStreamBroke,
    WholeAnswer,
    acall_with_fallback,
    astream_with_fallback,
    call_with_fallback,
    stream_with_fallback,
    whole_answer,
)
from langchain_hybrid._records import record_answer, with_routing
from langchain_hybrid._streaming import StreamTally
from langchain_hybrid._structured_output import (
    StructuredOutput,
    raise_if_unparsed,
    structured_value,
)
from langchain_hybrid._tracing import child_callbacks, child_config, tagged
from shared_router.routing.serving import Routed, RoutingService
from shared_router.routing.text import RoutedTextMode, conversation_key, routing_text
from shared_router.types import KNOB_NAMES, ModelChoice, QualityKnobs, RoutingRecord

__all__ = ["CallPlan", "RoutedCalls"]


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A routed call: the decision and what goes to the chosen model.

    Attributes:
        routed: The routing decision.
        kwargs: The keyword arguments for the chosen model (routing arguments taken out).
        tools: The tools bound with ``bind_tools``, or None.
        tool_choice: The ``tool_choice`` given with them, or None.
        tool_kwargs: The other ``bind_tools`` arguments.
    """

    routed: Routed
    kwargs: dict[str, Any]
    tools: list[Any] | None
    tool_choice: Any
    tool_kwargs: dict[str, Any]

    def target(self, model: BaseChatModel) -> Runnable[LanguageModelInput, BaseMessage]:
        """The model to call, with the call's tools bound on it."""
        if self.tools is None:
            return model
        if self.tool_choice is None:
            return model.bind_tools(self.tools, **self.tool_kwargs)
        return model.bind_tools(self.tools, tool_choice=self.tool_choice, **self.tool_kwargs)


@dataclass(frozen=True)
class RoutedCalls:
    """What ChatHybrid's calls need: the two models, the routing service and the settings.

    Attributes:
        small: The small chat model.
        large: The large chat model.
        service: The routing service (decisions, stickiness, statistics).
        routed_text: What of a conversation is routed.
        sticky: Whether conversations that went large stay there.
        fallback_to_large: Whether the large model answers when the small one fails.
        default_stop: The stop sequences of calls that give none.
        label: The configured name of the small or the large model.
    """

    small: BaseChatModel
    large: BaseChatModel
    service: RoutingService
    routed_text: RoutedTextMode
    sticky: bool
    fallback_to_large: bool
    default_stop: list[str] | None
    label: Callable[[ModelChoice], str]

    def plan(
        self,
        messages: Sequence[BaseMessage],
        kwargs: dict[str, Any],
        force_large: str | None = None,
        retry: SmallStreamBroke | None = None,
    ) -> CallPlan:
        """Take the routing arguments out of ``kwargs`` and decide which model answers.

        ``retry`` (the second attempt of an ``invoke`` whose small-model stream broke) keeps
        that attempt's decision instead of routing again.
        """
        kwargs = dict(kwargs)
        knobs = {name: kwargs.pop(name) for name in KNOB_NAMES if name in kwargs}
        level = {name: value for name, value in knobs.items() if value is not None}
        conversation_id = kwargs.pop(CONVERSATION_ID, None)
        tools = kwargs.pop("tools", None) or None
        tool_choice = kwargs.pop("tool_choice", None)
        tool_kwargs = kwargs.pop("tool_kwargs", None) or {}
        if tools is not None and force_large is None and not takes_tools(self.small):
            force_large = only_large("tool calling", self.small)
        if retry is not None:
            return CallPlan(retry.routed, kwargs, tools, tool_choice, tool_kwargs)
        turns = message_turns(messages)
        key = None
        if self.sticky:
            key = str(conversation_id) if conversation_id else conversation_key(turns)
        routed = self.service.decide(
            routing_text(turns, mode=self.routed_text),
            QualityKnobs(**level) if level else None,
            conversation_key=key,
            force_large=force_large,
        )
        return CallPlan(routed, kwargs, tools, tool_choice, tool_kwargs)

    def model(self, choice: ModelChoice) -> BaseChatModel:
        """The small or the large model."""
        return self.small if choice == "small" else self.large

    # -- ChatHybrid._generate / _agenerate / _stream / _astream --

    def generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        """Answer with the chosen model."""
        plan = self.plan(messages, kwargs)
        callbacks = child_callbacks(run_manager)
        stop = self.default_stop if stop is None else stop

        def call(choice: ModelChoice) -> BaseMessage:
            config = child_config(callbacks, choice)
            return plan.target(self.model(choice)).invoke(
                messages, config, stop=stop, **plan.kwargs
            )

        with self._counting_failures(plan):
            answer = call_with_fallback(call, plan.routed.model, fallback=self.fallback_to_large)
        return self._result(plan, answer)

    async def agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        """Answer with the chosen model (the router scores in a worker thread)."""
        plan = await run_in_executor(None, self.plan, messages, kwargs)
        callbacks = child_callbacks(run_manager)
        sync_callbacks = child_callbacks(run_manager.get_sync() if run_manager else None)
        stop = self.default_stop if stop is None else stop

        async def call(choice: ModelChoice) -> BaseMessage:
            target = plan.target(self.model(choice))
            if generates_sync_only(self.model(choice)):  # on ChatHybrid's pool for the model
                config = child_config(sync_callbacks, choice)
                return await self.service.run_sync(
                    choice, target.invoke, messages, config, stop=stop, **plan.kwargs
                )
            config = child_config(callbacks, choice)
            return await target.ainvoke(messages, config, stop=stop, **plan.kwargs)

        with self._counting_failures(plan):
            answer = await acall_with_fallback(
                call, plan.routed.model, fallback=self.fallback_to_large
            )
        return self._result(plan, answer)

    def stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        """Stream the chosen model's chunks, then a last chunk with the routing record.

        The fallback rule of streams is :mod:`langchain_hybrid._fallback`'s.
        """
        mode = whole_answer(self.service)
        plan = self.plan(messages, kwargs, retry=mode.retry if mode is not None else None)
        callbacks = child_callbacks(run_manager)
        stop = self.default_stop if stop is None else stop

        def open_stream(choice: ModelChoice) -> Iterator[BaseMessage]:
            model = plan.target(self.model(choice))
            config = child_config(callbacks, choice)
            return iter(model.stream(messages, config, stop=stop, **plan.kwargs))

        with self._counting_failures(plan):
            if mode is not None and mode.retry is not None:
                chunks = Answer(open_stream("large"), "large", mode.retry.failure)
            else:
                chunks = stream_with_fallback(
                    open_stream, plan.routed.model, fallback=self.fallback_to_large
                )
        tally = StreamTally()
        try:
            for chunk in chunks.value:
                yield tally.add(chunk)
        except Exception as error:
            broke = self._broken_stream(mode, plan, chunks, error, tally)
            if broke is not None:
                raise broke from error
            raise
        yield self._final_chunk(plan, chunks, tally)

    async def astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The async form of :meth:`stream`."""
        mode = whole_answer(self.service)
        retry = mode.retry if mode is not None else None
        plan = await run_in_executor(None, self.plan, messages, kwargs, None, retry)
        callbacks = child_callbacks(run_manager)
        sync_callbacks = child_callbacks(run_manager.get_sync() if run_manager else None)
        stop = self.default_stop if stop is None else stop

        def open_stream(choice: ModelChoice) -> AsyncIterator[BaseMessage]:
            model = plan.target(self.model(choice))
            if streams_sync_only(self.model(choice)):  # on ChatHybrid's pool for the model
                sync_config = child_config(sync_callbacks, choice)
                return aiter(
                    self.service.iterate_sync(
                        choice,
                        lambda: model.stream(messages, sync_config, stop=stop, **plan.kwargs),
                    )
                )
            config = child_config(callbacks, choice)
            return aiter(model.astream(messages, config, stop=stop, **plan.kwargs))

        with self._counting_failures(plan):
            if retry is not None:
                chunks = Answer(open_stream("large"), "large", retry.failure)
            else:
                chunks = await astream_with_fallback(
                    open_stream, plan.routed.model, fallback=self.fallback_to_large
                )
        tally = StreamTally()
        try:
            async for chunk in chunks.value:
                yield tally.add(chunk)
        except Exception as error:
            broke = self._broken_stream(mode, plan, chunks, error, tally)
            if broke is not None:
                raise broke from error
            raise
        yield self._final_chunk(plan, chunks, tally)

    def _broken_stream(
        self,
        mode: WholeAnswer | None,
        plan: CallPlan,
        answer: Answer[Any],
        error: Exception,
        tally: StreamTally,
    ) -> SmallStreamBroke | None:
        """What a stream that broke after its first chunk raises.

        In an ``invoke`` (``mode``) a broken small-model stream becomes a
        :class:`SmallStreamBroke`, which makes the invoke answer with the large model;
        otherwise the error itself is raised, and the call is counted as failed.
        """
        small_may_fall_back = answer.choice == "small" and self.fallback_to_large
        if mode is not None and mode.retry is None and small_may_fall_back:
            return SmallStreamBroke(self.service, plan.routed, error, tally.chunks)
        self.service.count_failure(plan.routed)
        return None

    @contextmanager
    def _counting_failures(self, plan: CallPlan) -> Iterator[None]:
        """Count the call as failed when what runs in the block raises."""
        try:
            yield
        except Exception:
            self.service.count_failure(plan.routed)
            raise

    # -- with_structured_output --

    def structured(
        self,
        messages: list[BaseMessage],
        config: RunnableConfig,
        kwargs: dict[str, Any],
        output: StructuredOutput,
    ) -> Any:
        """Answer with the chosen model's structured output."""
        plan = self.plan(messages, kwargs, output.force_large)

        def call(choice: ModelChoice) -> dict[str, Any]:
            result: dict[str, Any] = output.runnable(choice).invoke(
                messages, tagged(config, choice)
            )
            if choice == "small" and self.fallback_to_large:
                raise_if_unparsed(result)
            return result

        with self._counting_failures(plan):
            answer = call_with_fallback(call, plan.routed.model, fallback=self.fallback_to_large)
        return self._structured_result(plan, answer, output.include_raw)

    async def astructured(
        self,
        messages: list[BaseMessage],
        config: RunnableConfig,
        kwargs: dict[str, Any],
        output: StructuredOutput,
    ) -> Any:
        """The async form of :meth:`structured`."""
        plan = await run_in_executor(None, self.plan, messages, kwargs, output.force_large)

        async def call(choice: ModelChoice) -> dict[str, Any]:
            runnable = output.runnable(choice)
            result: dict[str, Any]
            if generates_sync_only(self.model(choice)):  # on ChatHybrid's pool for the model
                result = await self.service.run_sync(
                    choice, runnable.invoke, messages, tagged(config, choice)
                )
            else:
                result = await runnable.ainvoke(messages, tagged(config, choice))
            if choice == "small" and self.fallback_to_large:
                raise_if_unparsed(result)
            return result

        with self._counting_failures(plan):
            answer = await acall_with_fallback(
                call, plan.routed.model, fallback=self.fallback_to_large
            )
        return self._structured_result(plan, answer, output.include_raw)

    # -- records --

    def _message_record(
        self, plan: CallPlan, answer: Answer[Any], message: BaseMessage
    ) -> RoutingRecord:
        name = message.response_metadata.get("model_name")
        if not (isinstance(name, str) and name):
            name = self.label(answer.choice)
        usage = getattr(message, "usage_metadata", None)
        return record_answer(self.service, plan.routed, answer, name, usage)

    def _result(self, plan: CallPlan, answer: Answer[BaseMessage]) -> ChatResult:
        record = self._message_record(plan, answer, answer.value)
        message = with_routing(answer.value, record)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _final_chunk(
        self, plan: CallPlan, answer: Answer[Any], tally: StreamTally
    ) -> ChatGenerationChunk:
        name = tally.model_name or self.label(answer.choice)
        record = record_answer(self.service, plan.routed, answer, name, tally.usage)
        return tally.final_chunk(record)

    def _structured_result(
        self, plan: CallPlan, answer: Answer[dict[str, Any]], include_raw: bool
    ) -> Any:
        raw = answer.value["raw"]
        record = self._message_record(plan, answer, raw)
        return structured_value(answer.value, with_routing(raw, record), include_raw=include_raw)
