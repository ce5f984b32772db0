"""One ChatHybrid call: decide, run the chosen model (the large one on a failure), record.

:class:`RoutedCalls` holds what a call needs from ChatHybrid; ChatHybrid makes one per call
from its current fields. A call is planned first (:meth:`RoutedCalls.plan`: the routing
arguments taken out of its keywords, configurable models resolved, the decision made, in
async code with :meth:`~shared_router.routing.serving.RoutingService.adecide`; the plan is
:mod:`langchain_hybrid._call_plan`'s), then run under ChatHybrid's own run
(:mod:`langchain_hybrid._runs`), whose metadata is the decision; the answer gets its routing
record (:mod:`langchain_hybrid._answers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_hybrid._answers import answer_message, final_chunk, merged, structured_result
from langchain_hybrid._call_plan import CallPlan, CallRequest, call_request
from langchain_hybrid._capabilities import generates_sync_only, streams_sync_only
from langchain_hybrid._configurable import call_level
from langchain_hybrid._conversation import CONVERSATION_ID, conversation_id
from langchain_hybrid._fallback import (
    acall_with_fallback,
    astream_with_fallback,
    call_with_fallback,
    stream_with_fallback,
)
from langchain_hybrid._inner_models import InnerModel, resolved
from langchain_hybrid._runs import (
    ParentRun,
    acall_in,
    aiterate_in,
    astart_run,
    call_in,
    child_config,
    decision_metadata,
    iterate_in,
    start_run,
)
from langchain_hybrid._shadowing import call_reference, offer_shadow
from langchain_hybrid._streaming import StreamTally
from langchain_hybrid._structured_output import StructuredOutput, raise_if_unparsed
from shared_router.routing.decision_calibration import calibration_label
from shared_router.routing.failures import FallbackPolicy
from shared_router.routing.serving import RoutingService
from shared_router.routing.text import RoutedTextMode
from shared_router.types import ModelChoice

__all__ = ["RoutedCalls"]


@dataclass(frozen=True)
class RoutedCalls:
    """What ChatHybrid's calls need: its models, routing service and settings.

    Attributes:
        owner: The ChatHybrid (its callbacks, tags and metadata are its run's).
        small: The small model, as given.
        large: The large model, as given.
        service: The routing service (decisions, stickiness, statistics).
        routed_text: What of a conversation is routed.
        sticky: Whether conversations that went large stay there.
        policy: Which small-model errors fall back to the large model.
        default_stop: The stop sequences of calls that give none.
        streaming: Whether ``invoke`` streams from the chosen model.
        label: The configured name of a model (for records of answers that name none).
        unnamed: Called when a sticky call names no conversation.
    """

    owner: BaseChatModel
    small: InnerModel
    large: InnerModel
    service: RoutingService
    routed_text: RoutedTextMode
    sticky: bool
    policy: FallbackPolicy
    default_stop: list[str] | None
    streaming: bool
    label: Callable[[InnerModel], str]
    unnamed: Callable[[], None]

    # -- planning --

    def _request(
        self,
        messages: Sequence[BaseMessage],
        config: RunnableConfig,
        kwargs: dict[str, Any],
        force_large: str | None,
    ) -> CallRequest:
        kwargs = dict(kwargs)
        level = call_level(config, kwargs)
        given_id = kwargs.pop(CONVERSATION_ID, None)
        reference = call_reference(config, kwargs)
        key = None
        if self.sticky:
            key = conversation_id(config, given_id)
            if key is None:
                self.unnamed()
        small, large = resolved(self.small, config), resolved(self.large, config)
        return call_request(
            messages,
            kwargs,
            small,
            large,
            routed_text=self.routed_text,
            level=level,
            key=key,
            force_large=force_large,
            reference=reference,
        )

    def plan(
        self,
        messages: Sequence[BaseMessage],
        config: RunnableConfig,
        kwargs: dict[str, Any],
        force_large: str | None = None,
    ) -> CallPlan:
        """Take the routing arguments out of ``kwargs`` and decide which model answers.

        Args:
            messages: The conversation.
            config: The call's config (knobs, conversation id, configurable models).
            kwargs: The call's keyword arguments.
            force_large: Why the call must go large (structured output only the large model
                takes), or None.

        Returns:
            The plan.
        """
        request = self._request(messages, config, kwargs, force_large)
        routed = self.service.decide(
            request.text,
            request.level,
            conversation_key=request.key,
            force_large=request.force_large,
        )
        return request.plan(routed)

    async def aplan(
        self,
        messages: Sequence[BaseMessage],
        config: RunnableConfig,
        kwargs: dict[str, Any],
        force_large: str | None = None,
    ) -> CallPlan:
        """The async form of :meth:`plan` (the router is not run on the event loop)."""
        request = self._request(messages, config, kwargs, force_large)
        routed = await self.service.adecide(
            request.text,
            request.level,
            conversation_key=request.key,
            force_large=request.force_large,
        )
        return request.plan(routed)

    def metadata(self, plan: CallPlan) -> dict[str, Any]:
        """The decision as ChatHybrid's run metadata."""
        decision = plan.routed.decision
        # A scored decision means the router is loaded: reading it here loads nothing.
        router = self.service.router if decision.score is not None else None
        calibration = calibration_label(router, decision)
        return decision_metadata(plan.routed, self.service.router_name, calibration)

    def _start(
        self,
        model_input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        force_large: str | None = None,
    ) -> tuple[list[BaseMessage], CallPlan, CallbackManagerForChainRun]:
        """Plan a whole call and open ChatHybrid's run for it."""
        messages = self.owner._convert_input(model_input).to_messages()
        plan = self.plan(messages, config, kwargs, force_large)
        return messages, plan, start_run(self.owner, config, model_input, self.metadata(plan))

    async def _astart(
        self,
        model_input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        force_large: str | None = None,
    ) -> tuple[list[BaseMessage], CallPlan, AsyncCallbackManagerForChainRun]:
        """The async form of :meth:`_start`."""
        messages = self.owner._convert_input(model_input).to_messages()
        plan = await self.aplan(messages, config, kwargs, force_large)
        run = await astart_run(self.owner, config, model_input, self.metadata(plan))
        return messages, plan, run

    # -- ChatHybrid.invoke / ainvoke (and _generate / _agenerate) --

    def invoke(
        self,
        model_input: Any,
        config: RunnableConfig,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        """A whole ``invoke``: plan, open ChatHybrid's run, answer, close the run."""
        messages, plan, run = self._start(model_input, config, kwargs)
        try:
            message = self.answer(messages, stop, config, plan, run)
        except BaseException as error:
            run.on_chain_error(error)
            raise
        run.on_chain_end(message)
        return message

    async def ainvoke(
        self,
        model_input: Any,
        config: RunnableConfig,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        """The async form of :meth:`invoke`."""
        messages, plan, run = await self._astart(model_input, config, kwargs)
        try:
            message = await self.aanswer(messages, stop, config, plan, run)
        except BaseException as error:
            await run.on_chain_error(error)
            raise
        await run.on_chain_end(message)
        return message

    def answer(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        plan: CallPlan,
        run: ParentRun | None,
    ) -> AIMessage:
        """Answer with the chosen model, nested under ``run``."""
        stop = self.default_stop if stop is None else stop

        def call(choice: ModelChoice) -> BaseMessage:
            target = plan.target(choice)
            child = child_config(config, run, choice, fallback=plan.falls_back(choice))
            if self.streaming:
                opened = iterate_in(
                    child, lambda: target.stream(messages, child, stop=stop, **plan.kwargs)
                )
                return merged(opened)
            message: BaseMessage = call_in(
                child, target.invoke, messages, child, stop=stop, **plan.kwargs
            )
            return message

        with self._counting_failures(plan):
            answer = call_with_fallback(call, plan.routed.model, self.policy)
        message = answer_message(self.service, plan, answer, self.label)
        offer_shadow(
            self.service, plan, messages, stop, answer, message.text, message.usage_metadata
        )
        return message

    async def aanswer(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        plan: CallPlan,
        run: ParentRun | None,
    ) -> AIMessage:
        """The async form of :meth:`answer` (a sync-only model runs on its own pool)."""
        stop = self.default_stop if stop is None else stop

        async def call(choice: ModelChoice) -> BaseMessage:
            target = plan.target(choice)
            sync = generates_sync_only(plan.model(choice))
            child = child_config(config, run, choice, fallback=plan.falls_back(choice), sync=sync)
            if self.streaming:
                chunks = [c async for c in self._aopen(plan, choice, messages, stop, child)]
                return merged(chunks)
            message: BaseMessage = await self._ainvoke_on(
                choice, target, messages, child, sync, stop=stop, **plan.kwargs
            )
            return message

        with self._counting_failures(plan):
            answer = await acall_with_fallback(call, plan.routed.model, self.policy)
        message = answer_message(self.service, plan, answer, self.label)
        offer_shadow(
            self.service, plan, messages, stop, answer, message.text, message.usage_metadata
        )
        return message

    # -- ChatHybrid.stream / astream (and _stream / _astream) --

    def stream(
        self,
        model_input: Any,
        config: RunnableConfig,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> Iterator[AIMessageChunk]:
        """A whole ``stream``: plan, open ChatHybrid's run, pass the chunks on, close it."""
        messages, plan, run = self._start(model_input, config, kwargs)
        delivered: list[AIMessageChunk] = []
        try:
            for chunk in self.chunks(messages, stop, config, plan, run):
                delivered.append(chunk)
                yield chunk
        except BaseException as error:
            run.on_chain_error(error)
            raise
        run.on_chain_end(merged(delivered))

    async def astream(
        self,
        model_input: Any,
        config: RunnableConfig,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[AIMessageChunk]:
        """The async form of :meth:`stream`."""
        messages, plan, run = await self._astart(model_input, config, kwargs)
        delivered: list[AIMessageChunk] = []
        try:
            async for chunk in self.achunks(messages, stop, config, plan, run):
                delivered.append(chunk)
                yield chunk
        except BaseException as error:
            await run.on_chain_error(error)
            raise
        await run.on_chain_end(merged(delivered))

    def chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        plan: CallPlan,
        run: ParentRun | None,
    ) -> Iterator[AIMessageChunk]:
        """The chosen model's chunks, then a last chunk with the routing record.

        The fallback rule of streams is :mod:`langchain_hybrid._fallback`'s.
        """
        stop = self.default_stop if stop is None else stop

        def open_stream(choice: ModelChoice) -> Iterator[BaseMessage]:
            child = child_config(config, run, choice, fallback=plan.falls_back(choice))
            target = plan.target(choice)
            return iterate_in(
                child, lambda: target.stream(messages, child, stop=stop, **plan.kwargs)
            )

        with self._counting_failures(plan):
            chunks = stream_with_fallback(open_stream, plan.routed.model, self.policy)
        tally = StreamTally(keep_text=self.service.live is not None)
        with self._counting_failures(plan):
            for chunk in chunks.value:
                yield tally.add(chunk)
        yield final_chunk(self.service, plan, chunks, tally, self.label)
        offer_shadow(self.service, plan, messages, stop, chunks, tally.text, tally.usage)

    async def achunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        plan: CallPlan,
        run: ParentRun | None,
    ) -> AsyncIterator[AIMessageChunk]:
        """The async form of :meth:`chunks`."""
        stop = self.default_stop if stop is None else stop

        def open_stream(choice: ModelChoice) -> AsyncIterator[BaseMessage]:
            sync = streams_sync_only(plan.model(choice))
            child = child_config(config, run, choice, fallback=plan.falls_back(choice), sync=sync)
            return self._aopen(plan, choice, messages, stop, child)

        with self._counting_failures(plan):
            chunks = await astream_with_fallback(open_stream, plan.routed.model, self.policy)
        tally = StreamTally(keep_text=self.service.live is not None)
        with self._counting_failures(plan):
            async for chunk in chunks.value:
                yield tally.add(chunk)
        yield final_chunk(self.service, plan, chunks, tally, self.label)
        offer_shadow(self.service, plan, messages, stop, chunks, tally.text, tally.usage)

    async def _ainvoke_on(
        self,
        choice: ModelChoice,
        runnable: InnerModel,
        messages: list[BaseMessage],
        config: RunnableConfig,
        sync: bool,
        **kwargs: Any,
    ) -> Any:
        """``runnable.ainvoke``, or for a sync-only model its ``invoke`` on ChatHybrid's pool."""
        if sync:  # on ChatHybrid's pool for the model, not the loop's default executor
            return await acall_in(
                config, self.service.run_sync, choice, runnable.invoke, messages, config, **kwargs
            )
        return await acall_in(config, runnable.ainvoke, messages, config, **kwargs)

    def _aopen(
        self,
        plan: CallPlan,
        choice: ModelChoice,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
    ) -> AsyncIterator[BaseMessage]:
        target = plan.target(choice)
        if streams_sync_only(plan.model(choice)):  # on ChatHybrid's pool for the model
            return aiter(
                self.service.iterate_sync(
                    choice,
                    lambda: iterate_in(
                        config, lambda: target.stream(messages, config, stop=stop, **plan.kwargs)
                    ),
                )
            )
        return aiterate_in(
            config, lambda: target.astream(messages, config, stop=stop, **plan.kwargs)
        )

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
        model_input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        output: StructuredOutput,
    ) -> Any:
        """A structured-output call: plan, open ChatHybrid's run, parse, close it."""
        messages, plan, run = self._start(model_input, config, kwargs, output.force_large)

        def call(choice: ModelChoice) -> dict[str, Any]:
            child = child_config(config, run, choice, fallback=plan.falls_back(choice))
            runnable = output.runnable(plan.model(choice))
            result: dict[str, Any] = call_in(child, runnable.invoke, messages, child, **plan.kwargs)
            if choice == "small" and self.policy.enabled:
                raise_if_unparsed(result)
            return result

        try:
            with self._counting_failures(plan):
                answer = call_with_fallback(call, plan.routed.model, self.policy)
            value = structured_result(self.service, plan, answer, self.label, output.include_raw)
        except BaseException as error:
            run.on_chain_error(error)
            raise
        run.on_chain_end(value if isinstance(value, dict) else {"output": value})
        return value

    async def astructured(
        self,
        model_input: Any,
        config: RunnableConfig,
        kwargs: dict[str, Any],
        output: StructuredOutput,
    ) -> Any:
        """The async form of :meth:`structured`."""
        messages, plan, run = await self._astart(model_input, config, kwargs, output.force_large)

        async def call(choice: ModelChoice) -> dict[str, Any]:
            sync = generates_sync_only(plan.model(choice))
            child = child_config(config, run, choice, fallback=plan.falls_back(choice), sync=sync)
            runnable = output.runnable(plan.model(choice))
            result: dict[str, Any] = await self._ainvoke_on(
                choice, runnable, messages, child, sync, **plan.kwargs
            )
            if choice == "small" and self.policy.enabled:
                raise_if_unparsed(result)
            return result

        try:
            with self._counting_failures(plan):
                answer = await acall_with_fallback(call, plan.routed.model, self.policy)
            value = structured_result(self.service, plan, answer, self.label, output.include_raw)
        except BaseException as error:
            await run.on_chain_error(error)
            raise
        await run.on_chain_end(value if isinstance(value, dict) else {"output": value})
        return value
