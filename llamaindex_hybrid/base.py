"""``HybridLLM``: the hybrid-llm router as a LlamaIndex LLM."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import (
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from llama_index.core.callbacks import EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.llm import LLMPredictEndEvent, LLMPredictStartEvent
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.types import TokenAsyncGen, TokenGen

from llamaindex_hybrid._call_blocks import CallBlocks
from llamaindex_hybrid._call_knobs import checked_knobs
from llamaindex_hybrid._call_preparation import CallPreparation
from llamaindex_hybrid._inner_models import checked_inner_model, router_reference
from llamaindex_hybrid._metadata import InnerMetadata, combined_metadata
from llamaindex_hybrid._prompting import FormattedCall, parsed_output
from llamaindex_hybrid._routed_calls import RoutedCalls
from llamaindex_hybrid._routing_input import RoutingInput, conversation_of
from llamaindex_hybrid._service_state import ServiceState
from llamaindex_hybrid._spans import routing_spans
from llamaindex_hybrid._tools import (
    TOOLS_KWARG,
    ToolRequest,
    chat_invoker,
    read_tool_calls,
)
from llamaindex_hybrid.questions import DEFAULT_QUESTION_VARIABLES, template_question
from shared_router._internal.validation import check_keywords
from shared_router.live.settings import LiveSettings, checked_live_settings
from shared_router.routing.accounting import ModelPrices, StatsSnapshot
from shared_router.routing.failures import FallbackPolicy
from shared_router.routing.registry import check_router_source
from shared_router.routing.serving import RoutingService
from shared_router.routing.text import RoutedTextMode

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from shared_router.routing.router import Router

__all__ = ["HybridLLM"]

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)


class HybridLLM(ServiceState, CallBlocks, CallPreparation, FunctionCallingLLM):
    """Route each LLM call to a small or a large LlamaIndex LLM by predicted difficulty.

    A router (Hybrid LLM, Ding et al., ICLR 2024) reads the query and predicts p, the
    probability that the small model's answer is as good as the large model's; p >= the
    threshold of the asked quality level goes to the small model. Works wherever LlamaIndex
    takes an LLM: query and chat engines, selectors, agents (``FunctionAgent``,
    ``ReActAgent``), Workflows, ``Settings.llm``.

    Setup:
        ``pip install "hybrid-llm[llamaindex]"``; the default router runs offline on numpy.

    Instantiate:
        .. code-block:: python

            from llamaindex_hybrid import HybridLLM

            llm = HybridLLM(small=Ollama(model="llama3.2:1b"), large=OpenAI(model="gpt-4o"),
                            max_quality_drop=0.02)
            engine = index.as_query_engine(llm=llm)

    Quality for one call or block (replaces the model's own knob there, thread/task-local):
        .. code-block:: python

            llm.chat(messages, max_quality_drop=0.05)  # read by the router, not passed on
            with llm.quality(max_quality_drop=0.05):
                engine.query("What is the notice period?")

    Questions: a prompt is routed on its question, never on the retrieved context: the
    template's question variable (``question_variables``), a LlamaIndex template that an
    engine formatted by hand, or what ``with routing_question(...)`` says (for Workflows);
    see :mod:`llamaindex_hybrid.questions`. Other prompts are routed on their last user turn
    (``routed_text="last_user"``; ReAct observations are skipped) or the whole conversation.

    The inner models stay themselves: each formats ``predict``-family templates with its own
    ``system_prompt``, ``messages_to_prompt`` and ``completion_to_prompt``, as used bare
    (:mod:`llamaindex_hybrid._prompting`); ``formatted`` is passed on; their metadata is read
    once and never makes a failed server the caller's crash (:mod:`llamaindex_hybrid._metadata`).

    Records: every ``ChatResponse`` / ``CompletionResponse`` (each streamed chunk too) carries
    ``additional_kwargs["routing"]``, the :class:`~shared_router.types.RoutingRecord` as a
    dict; query and chat engine responses carry it in ``metadata["routing"]`` (all of the
    query's calls in ``metadata["routing_calls"]``), structured-LLM responses in
    ``additional_kwargs``. Each call fires one :class:`~llamaindex_hybrid.RoutingEvent`; the
    LLM events are the answering model's own, once per call (``TokenCountingHandler`` counts a
    call once). ``llm.stats`` counts calls, fallbacks, tokens and (with ``prices``) cost saved.

    Tool calling: the chosen model's own ``chat_with_tools`` runs. ``metadata.
    is_function_calling_model`` is True when either model calls tools; when only the large one
    does, calls offering tools go to it, and an agent's step after a tool's result is routed
    (the small model answers it without tools), so ``FunctionAgent`` runs over such a pair.

    Reliability: when the small model fails as a provider (a time-out, a refused connection,
    a rate limit, an unparsable structured answer: see
    :mod:`shared_router.routing.failures`), the large model answers, with ``fallback=True``
    and the error in ``reason``, logged at WARNING; a programming error (``TypeError``...)
    propagates, unless ``exceptions_to_handle`` says otherwise. When the router fails to
    score, the large model answers the same way; a router that cannot load raises (a missing
    folder at construction). Streams fall back while nothing of the small model's answer has
    reached the caller; after that the error is raised. A call that raises is counted in
    ``stats.failed``, never as an answer; a stream is counted once it has ended.

    Copies: ``pickle``, ``copy.deepcopy``, ``model_copy`` and ``to_dict`` / ``from_dict``
    (``to_json`` / ``from_json``, ``model_dump`` / ``model_validate``) keep the router (by its
    folder or ``"default"``; a router object is shared within a process) and every setting;
    each copy has its own stats and sticky memory.

    Args:
        small: The cheap LlamaIndex LLM.
        large: The expensive LlamaIndex LLM.
        router: A :class:`~shared_router.routing.router.Router`, ``"default"`` or a router
            folder (checked here, loaded on the first call).
        max_quality_drop: Quality level: the most relative quality drop accepted versus
            always using the large model (0.02 is 2%; at most 1).
        large_share: Quality level as the share of calls for the large model.
        threshold: Quality level as a raw threshold on p.
        fallback_to_large: Answer with the large model when the small one fails.
        exceptions_to_handle: Exception types of the small model that the large model
            answers, instead of provider errors (``(Exception,)``: every error).
        sticky: Once a conversation went to the large model, its later turns stay there. A
            conversation is a ``with llm.conversation(id):`` block or a chat engine's memory;
            calls in neither are routed one by one.
        pace_large_share: Hold a ``large_share`` level on live traffic (running quantile of
            recent scores) instead of the calibration table's quantile.
        prices: ``{"small": ModelPrices, "large": ModelPrices}`` for cost accounting.
        routed_text: ``"last_user"`` or ``"conversation"``: what of a chat is routed.
        question_variables: Template variables holding the question, in order of preference.
        live: A :class:`~shared_router.live.settings.LiveSettings`: shadow a random share of
            calls off the caller's path, route ``max_quality_drop`` at the live calibration
            (docs/live.md); ``stats.live`` shows it. Copies share its loop; ``to_dict``
            leaves it out.
        **kwargs: Other LlamaIndex ``LLM`` fields (``callback_manager``, ``system_prompt``...).
            Other names are ignored with a warning (set provider parameters such as
            ``temperature`` on the small and the large model).

    Raises:
        KnobError: If more than one quality knob is given or one is out of range (here and
            when a knob field is assigned).
        ArtifactError: If ``router`` names a folder that is not a router folder.
        ConfigurationError: For a keyword that is a misspelling of one it takes
            (``max_qualty_drop=``), naming the one meant.
    """

    small: SerializeAsAny[LLM] = Field(description="The cheap model.")
    large: SerializeAsAny[LLM] = Field(description="The expensive model.")
    router: Any = Field(
        default="default",
        description="The router: 'default', a router folder, or a Router (kept by its folder).",
    )
    max_quality_drop: float | None = Field(
        default=None, description="Most relative quality drop accepted (0.02 is 2%)."
    )
    large_share: float | None = Field(
        default=None, description="Share of calls to send to the large model."
    )
    threshold: float | None = Field(
        default=None, description="Raw threshold on p(small is good enough)."
    )
    fallback_to_large: bool = Field(
        default=True, description="Answer with the large model when the small one fails."
    )
    exceptions_to_handle: tuple[type[BaseException], ...] | None = Field(
        default=None,
        exclude=True,
        description="Errors of the small model the large one answers (default: provider errors).",
    )
    sticky: bool = Field(
        default=False, description="Keep a conversation on the large model once it went there."
    )
    pace_large_share: bool = Field(
        default=False,
        description="Hold a large_share level on live traffic (running quantile of scores).",
    )
    prices: dict[str, ModelPrices] | None = Field(
        default=None, description="Per-million-token prices of 'small' and 'large'."
    )
    routed_text: RoutedTextMode = Field(
        default="last_user", description="Route a chat on its last user turn or all of it."
    )
    question_variables: tuple[str, ...] = Field(
        default=DEFAULT_QUESTION_VARIABLES,
        description="Template variables that hold the question, in order of preference.",
    )

    live: Any = Field(
        default=None,
        exclude=True,
        description="LiveSettings: shadow evaluation and live calibration (docs/live.md).",
    )

    _service: RoutingService = PrivateAttr()
    _fallbacks: FallbackPolicy = PrivateAttr()
    _inner: InnerMetadata = PrivateAttr(default_factory=InnerMetadata)
    _unkeyed_noted: bool = PrivateAttr(default=False)

    def __init__(
        self,
        small: LLM,
        large: LLM,
        *,
        router: Router | str | Path = "default",
        max_quality_drop: float | None = None,
        large_share: float | None = None,
        threshold: float | None = None,
        fallback_to_large: bool = True,
        exceptions_to_handle: Sequence[type[BaseException]] | None = None,
        sticky: bool = False,
        pace_large_share: bool = False,
        prices: Mapping[str, ModelPrices] | None = None,
        routed_text: RoutedTextMode = "last_user",
        question_variables: Sequence[str] = DEFAULT_QUESTION_VARIABLES,
        live: LiveSettings | None = None,
        **kwargs: Any,
    ) -> None:
        # Checked here too, so that these errors are ours, not wrapped by pydantic.
        known = set(type(self).model_fields)
        known |= {f.alias for f in type(self).model_fields.values() if f.alias is not None}
        known.add("class_name")  # model_dump() writes it, for model_validate to read back
        check_keywords("HybridLLM", kwargs, known, stacklevel=2)
        small, large = checked_inner_model(small, "small"), checked_inner_model(large, "large")
        checked_knobs(max_quality_drop, large_share, threshold)
        if isinstance(router, (str, Path)):
            check_router_source(router)
        super().__init__(
            small=small,
            large=large,
            router=router,
            max_quality_drop=max_quality_drop,
            large_share=large_share,
            threshold=threshold,
            fallback_to_large=fallback_to_large,
            exceptions_to_handle=(
                tuple(exceptions_to_handle) if exceptions_to_handle is not None else None
            ),
            sticky=sticky,
            pace_large_share=pace_large_share,
            prices=dict(prices) if prices is not None else None,
            routed_text=routed_text,
            question_variables=tuple(question_variables),
            live=checked_live_settings(live),
            **kwargs,
        )

    def model_post_init(self, context: Any) -> None:
        """Check the knobs and build the routing service from the fields (every path)."""
        super().model_post_init(context)
        checked_knobs(self.max_quality_drop, self.large_share, self.threshold)
        self._service = self._new_service()
        self._fallbacks = self._new_fallbacks()
        routing_spans()  # follows engine spans from now on (see llamaindex_hybrid._spans)

    @field_validator("small", "large", mode="before")
    @classmethod
    def _inner_model(cls, value: Any, info: ValidationInfo) -> LLM:
        """An inner model, or its ``to_dict()`` (``from_dict``, ``model_validate``)."""
        return checked_inner_model(value, str(info.field_name))

    @field_serializer("router")
    def _router_by_reference(self, router: Any) -> str:
        """The router as its folder (or ``"default"``): copies load the same router."""
        return router_reference(router)

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex serialises this class under."""
        return "HybridLLM"

    # -- what LlamaIndex reads ----------------------------------------------------------

    @property
    def metadata(self) -> LLMMetadata:
        """What both models allow (smaller window and output), tools when either calls them.

        Each model's metadata is read once; a model whose metadata raises (a server that is
        down) is described by its declared fields instead (see :mod:`._metadata`).
        """
        return combined_metadata(self._meta("small"), self._meta("large"))

    @property
    def loaded_router(self) -> Router:
        """The router itself, loaded on first use (``router`` is what was given: a folder...)."""
        return self._service.router

    @property
    def stats(self) -> StatsSnapshot:
        """Calls, small/large split, fallbacks, tokens and cost since this LLM was made.

        With ``live`` set, a :class:`~shared_router.live.serving_stats.LiveServingStats`:
        the same counters and ``.live`` (shadowed calls, their cost, the calibration).
        """
        snapshot = self._service.stats
        return snapshot if self.live is None else self.live.loop().serving_stats(snapshot)

    # -- routing (see llamaindex_hybrid._call_preparation and ._routed_calls) -----------

    def _conversation(self) -> str | None:
        if not self.sticky:
            return None
        conversation = conversation_of(self)
        if conversation is None and not self._unkeyed_noted:
            self._unkeyed_noted = True
            logger.info(
                "HybridLLM: sticky=True, but a call belongs to no conversation (no "
                "`with llm.conversation(id):` block, no chat engine); such calls are routed "
                "one by one"
            )
        return conversation

    # -- LlamaIndex entry points -------------------------------------------------------

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a chat with the model the router picks for it."""
        calls, routing, tools = self._chat_call(messages, kwargs)
        invoke = chat_invoker("chat", messages, tools, kwargs, self._calls_tools)
        response: ChatResponse = calls.call(calls.decide(routing), invoke)
        return response

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat answer from the model the router picks for it."""
        calls, routing, tools = self._chat_call(messages, kwargs)
        invoke = chat_invoker("stream_chat", messages, tools, kwargs, self._calls_tools)
        chunks: ChatResponseGen = calls.stream(calls.decide(routing), invoke)
        return chunks

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a chat asynchronously with the model the router picks for it."""
        calls, routing, tools = self._chat_call(messages, kwargs)
        response: ChatResponse = await calls.acall(
            await calls.adecide(routing),
            "achat",
            chat_invoker("achat", messages, tools, kwargs, self._calls_tools),
            chat_invoker("chat", messages, tools, kwargs, self._calls_tools),
        )
        return response

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a chat answer asynchronously from the model the router picks for it."""
        calls, routing, tools = self._chat_call(messages, kwargs)
        chunks: ChatResponseAsyncGen = calls.astream(
            await calls.adecide(routing),
            "astream_chat",
            chat_invoker("astream_chat", messages, tools, kwargs, self._calls_tools),
            chat_invoker("stream_chat", messages, tools, kwargs, self._calls_tools),
        )
        return chunks

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt with the model the router picks for it."""
        calls, routing = self._completion_call(prompt, kwargs)
        return calls.call(
            calls.decide(routing), lambda model: model.complete(prompt, formatted, **kwargs)
        )

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion from the model the router picks for the prompt."""
        calls, routing = self._completion_call(prompt, kwargs)
        return calls.stream(
            calls.decide(routing),
            lambda model: model.stream_complete(prompt, formatted, **kwargs),
        )

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Complete a prompt asynchronously with the model the router picks for it."""
        calls, routing = self._completion_call(prompt, kwargs)
        return await calls.acall(
            await calls.adecide(routing),
            "acomplete",
            lambda model: model.acomplete(prompt, formatted, **kwargs),
            lambda model: model.complete(prompt, formatted, **kwargs),
        )

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a completion asynchronously from the model the router picks for the prompt."""
        calls, routing = self._completion_call(prompt, kwargs)
        return calls.astream(
            await calls.adecide(routing),
            "astream_complete",
            lambda model: model.astream_complete(prompt, formatted, **kwargs),
            lambda model: model.stream_complete(prompt, formatted, **kwargs),
        )

    # -- templated prompts, formatted by the model that answers (see ._prompting) --------

    def _templated_call(
        self, prompt: BasePromptTemplate, prompt_args: dict[str, Any]
    ) -> tuple[RoutedCalls, RoutingInput, FormattedCall]:
        """Route a template on its question; the answering model formats it itself."""
        dispatcher.event(LLMPredictStartEvent(template=prompt, template_args=prompt_args))
        self._log_template_data(prompt, **prompt_args)
        question = template_question(prompt, prompt_args, self.question_variables)
        messages = prompt.format_messages(**prompt_args)
        calls = self._routed_calls({}, {EventPayload.MESSAGES: messages})
        routing = self._chat_routing(messages, None, question)
        return calls, routing, FormattedCall(prompt, prompt_args, self._is_chat_model)

    def _answering(self, response: ChatResponse | CompletionResponse) -> LLM:
        routing = response.additional_kwargs.get("routing") or {}
        return self.small if routing.get("model") == "small" else self.large

    def _predicted(self, response: ChatResponse | CompletionResponse) -> str:
        output = parsed_output(self._answering(response), response)
        dispatcher.event(LLMPredictEndEvent(output=output))
        return output

    def predict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        """Answer a template: routed on its question, formatted by the model that answers."""
        calls, routing, call = self._templated_call(prompt, prompt_args)
        return self._predicted(calls.call(calls.decide(routing), call.run))

    async def apredict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        """The async form of :meth:`predict`."""
        calls, routing, call = self._templated_call(prompt, prompt_args)
        response = await calls.acall(await calls.adecide(routing), "achat", call.arun, call.run)
        return self._predicted(response)

    def stream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenGen:
        """Stream the answer to a template (see :meth:`predict`) as text deltas."""
        calls, routing, call = self._templated_call(prompt, prompt_args)
        chunks = calls.stream(calls.decide(routing), call.stream)

        def tokens() -> Generator[str, None, None]:
            for chunk in chunks:
                yield chunk.delta or ""

        return tokens()

    async def astream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenAsyncGen:
        """The async form of :meth:`stream`."""
        calls, routing, call = self._templated_call(prompt, prompt_args)
        chunks = calls.astream(
            await calls.adecide(routing), "astream_chat", call.astream, call.stream
        )

        async def tokens() -> AsyncGenerator[str, None]:
            async for chunk in chunks:
                yield chunk.delta or ""

        return tokens()

    # -- tool calling (see llamaindex_hybrid._tools) -------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Collect the request; the chosen model prepares its own provider-specific call."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        request = ToolRequest(
            tools=tools,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            kwargs=kwargs,
        )
        return {"messages": messages, TOOLS_KWARG: request}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Read tool calls with the parser of the model that answered.

        The model is the one named in ``additional_kwargs["routing"]``; a response without a
        routing record is read with the large model's parser. A model that does not call
        tools made none.

        Raises:
            RoutingError: If the model that answered is not a function-calling LLM and a tool
                call is required.
        """
        return read_tool_calls(self._answering(response), response, error_on_no_tool_call, **kwargs)
