"""``HybridLLM``: the hybrid-llm router as a LlamaIndex LLM."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

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
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.prompts import BasePromptTemplate

from llamaindex_hybrid.questions import (
    DEFAULT_QUESTION_VARIABLES,
    recall_question,
    remember_question,
)
from shared_router.errors import EmptyInputError, KnobError, RoutingError
from shared_router.routing.serving import ModelPrices, Routed, RoutingService, StatsSnapshot
from shared_router.routing.text import RoutedTextMode, routing_text
from shared_router.types import ModelChoice, QualityKnobs, RoutingRecord

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from shared_router.routing.router import Router

__all__ = ["HybridLLM"]

logger = logging.getLogger(__name__)

_R = TypeVar("_R", ChatResponse, CompletionResponse)
_TOOLS_KWARG = "hybrid_tools"
_TOOL_METHODS = {
    "chat": "chat_with_tools",
    "achat": "achat_with_tools",
    "stream_chat": "stream_chat_with_tools",
    "astream_chat": "astream_chat_with_tools",
}
_NO_TOOLS_REASON = "only the large model supports tool calling"
_CALL_KNOBS: ContextVar[Mapping[int, QualityKnobs]] = ContextVar(
    "llamaindex_hybrid_call_knobs", default=MappingProxyType({})
)


@dataclass(frozen=True)
class _RoutingInput:
    """What one call is routed on."""

    text: str
    conversation_key: str | None = None
    force_large: str | None = None


@dataclass(frozen=True)
class _ToolRequest:
    """What ``chat_with_tools`` was asked, handed to the chosen model's own tool calling."""

    tools: Sequence[BaseTool]
    verbose: bool
    allow_parallel_tool_calls: bool
    tool_required: bool
    kwargs: dict[str, Any] = field(default_factory=dict)


class HybridLLM(FunctionCallingLLM):
    """Route each LLM call to a small or a large LlamaIndex LLM by predicted difficulty.

    A router (Hybrid LLM, Ding et al., ICLR 2024) reads the query and predicts p, the
    probability that the small model's answer is as good as the large model's; p >= the
    threshold of the asked quality level goes to the small model. Works wherever LlamaIndex
    takes an LLM: query and chat engines, selectors, agents, ``Settings.llm``.

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

            with llm.quality(max_quality_drop=0.05):
                engine.query("What is the notice period?")

    RAG: a templated prompt is routed on its question variable (``query_str``, ``question``,
    ``query``; see ``question_variables``), never on the retrieved context, see
    :mod:`llamaindex_hybrid.questions`. Other prompts are routed on their last user turn
    (``routed_text="last_user"``) or the whole conversation, head and tail kept.

    Response metadata: every ``ChatResponse`` / ``CompletionResponse`` (each streamed chunk
    too) carries ``additional_kwargs["routing"]``, the
    :class:`~shared_router.types.RoutingRecord` as a dict: ``model``, ``model_name``,
    ``score``, ``threshold``, ``knob``, ``router``, ``router_ms``, ``fallback``, ``reason``.
    ``llm.stats`` counts calls, fallbacks, tokens and (with ``prices``) cost saved.

    Tool calling: the chosen model's own ``chat_with_tools`` runs (each provider formats
    tools its own way). ``metadata.is_function_calling_model`` is True only when both models
    are function-calling; when only the large one is, tool calls go to it.

    Reliability: when the small model raises (before its first streamed chunk, for streams)
    the large model answers, with ``fallback=True`` and the error in ``reason``; when the
    router raises, the large model answers the same way. Inner models format prompts with
    their own templates: ``formatted`` is accepted and not passed on.

    Args:
        small: The cheap LlamaIndex LLM.
        large: The expensive LlamaIndex LLM.
        router: A :class:`~shared_router.routing.router.Router`, ``"default"`` or a router folder;
            loaded on the first call, not here.
        max_quality_drop: Quality level: the most relative quality drop accepted versus
            always using the large model (0.02 is 2%).
        large_share: Quality level as the share of calls for the large model.
        threshold: Quality level as a raw threshold on p.
        fallback_to_large: Answer with the large model when the small one fails.
        sticky: Once a conversation (identified by its first user message) went to the large
            model, its later turns stay there.
        pace_large_share: Hold a ``large_share`` level on live traffic (running quantile of
            recent scores) instead of the calibration table's quantile.
        prices: ``{"small": ModelPrices, "large": ModelPrices}`` for cost accounting.
        routed_text: ``"last_user"`` or ``"conversation"``: what of a chat is routed.
        question_variables: Template variables holding the question, in order of preference.
        **kwargs: Other LlamaIndex ``LLM`` fields (``callback_manager``, ``system_prompt``...).

    Raises:
        KnobError: If more than one quality knob is given or one is out of range.
    """

    small: SerializeAsAny[LLM] = Field(description="The cheap model.")
    large: SerializeAsAny[LLM] = Field(description="The expensive model.")
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

    _service: RoutingService = PrivateAttr()

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
        sticky: bool = False,
        pace_large_share: bool = False,
        prices: Mapping[str, ModelPrices] | None = None,
        routed_text: RoutedTextMode = "last_user",
        question_variables: Sequence[str] = DEFAULT_QUESTION_VARIABLES,
        **kwargs: Any,
    ) -> None:
        QualityKnobs(max_quality_drop, large_share, threshold)  # a KnobError here, not pydantic's
        service = RoutingService(
            router, sticky=sticky, pace_large_share=pace_large_share, prices=prices
        )
        super().__init__(
            small=small,
            large=large,
            max_quality_drop=max_quality_drop,
            large_share=large_share,
            threshold=threshold,
            fallback_to_large=fallback_to_large,
            sticky=sticky,
            pace_large_share=pace_large_share,
            prices=dict(prices) if prices is not None else None,
            routed_text=routed_text,
            question_variables=tuple(question_variables),
            **kwargs,
        )
        self._service = service

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex serialises this class under."""
        return "HybridLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """What both models allow: the smaller window and output, tools only if both have them."""
        small, large = self.small.metadata, self.large.metadata
        outputs = [n for n in (small.num_output, large.num_output) if n > 0]
        return LLMMetadata(
            context_window=min(small.context_window, large.context_window),
            num_output=min(outputs) if outputs else small.num_output,
            is_chat_model=small.is_chat_model and large.is_chat_model,
            is_function_calling_model=(
                small.is_function_calling_model and large.is_function_calling_model
            ),
            model_name=f"HybridLLM({_model_name(self.small)}, {_model_name(self.large)})",
            system_role=(
                small.system_role if small.system_role == large.system_role else MessageRole.SYSTEM
            ),
        )

    @property
    def router(self) -> Router:
        """The router, loaded on first use."""
        return self._service.router

    @property
    def stats(self) -> StatsSnapshot:
        """Calls, small/large split, fallbacks, tokens and cost since this LLM was made."""
        return self._service.stats

    @contextmanager
    def quality(
        self,
        *,
        max_quality_drop: float | None = None,
        large_share: float | None = None,
        threshold: float | None = None,
    ) -> Iterator[None]:
        """Use another quality level for this LLM's calls inside a ``with`` block.

        The knob replaces the model's own for those calls only; other threads and asyncio
        tasks are not affected (tasks started inside the block inherit it).

        Args:
            max_quality_drop: The most relative quality drop accepted.
            large_share: The share of calls for the large model.
            threshold: A raw threshold on p.

        Yields:
            Nothing; calls in the block use the level.

        Raises:
            KnobError: Unless exactly one knob is given, in range.
        """
        knobs = QualityKnobs(max_quality_drop, large_share, threshold)
        if knobs.is_empty:
            raise KnobError("quality() needs one of max_quality_drop, large_share, threshold")
        token = _CALL_KNOBS.set(MappingProxyType({**_CALL_KNOBS.get(), id(self): knobs}))
        try:
            yield
        finally:
            _CALL_KNOBS.reset(token)

    # -- routing -----------------------------------------------------------------------

    def _knobs(self) -> QualityKnobs:
        own = QualityKnobs(self.max_quality_drop, self.large_share, self.threshold)
        return _CALL_KNOBS.get().get(id(self), QualityKnobs()).or_else(own)

    def _chat_routing(
        self, messages: Sequence[ChatMessage], tools: _ToolRequest | None
    ) -> _RoutingInput:
        if not messages:
            raise EmptyInputError(
                "HybridLLM got no messages; pass at least one ChatMessage with the query"
            )
        turns = [(m.role.value, m.content or "") for m in messages]
        question = recall_question(messages)
        if question is not None:
            text = routing_text([("user", question)])
        else:
            text = routing_text(turns, mode=self.routed_text)
        key = _conversation_key(turns) if self.sticky else None
        return _RoutingInput(text, key, self._tool_route(tools))

    def _prompt_routing(self, prompt: str) -> _RoutingInput:
        if not prompt.strip():
            raise EmptyInputError(
                f"HybridLLM got an empty prompt ({prompt!r}); pass the query text"
            )
        question = recall_question(prompt)
        return _RoutingInput(routing_text([("user", question or prompt)]))

    def _tool_route(self, tools: _ToolRequest | None) -> str | None:
        if tools is None or _calls_tools(self.small):
            return None
        if not _calls_tools(self.large):
            raise RoutingError(
                "tool calling needs a function-calling model, but neither "
                f"{_model_name(self.small)!r} nor {_model_name(self.large)!r} is one "
                "(a FunctionCallingLLM whose metadata.is_function_calling_model is True)"
            )
        return _NO_TOOLS_REASON

    def _decide(self, routing: _RoutingInput) -> Routed:
        return self._service.decide(
            routing.text,
            self._knobs(),
            conversation_key=routing.conversation_key,
            force_large=routing.force_large,
        )

    async def _adecide(self, routing: _RoutingInput) -> Routed:
        # The router is CPU-bound and thread-safe: keep the event loop free while it scores.
        return await asyncio.to_thread(self._decide, routing)

    def _model(self, choice: ModelChoice) -> LLM:
        return self.small if choice == "small" else self.large

    def _record(
        self, routed: Routed, answered_by: ModelChoice, error: Exception | None
    ) -> RoutingRecord:
        reason = None
        if error is not None:
            reason = f"small model failed: {type(error).__name__}: {error}"
            logger.warning("HybridLLM: %s; the large model answers", reason)
        return self._service.record(
            routed,
            answered_by=answered_by,
            model_name=_model_name(self._model(answered_by)),
            fallback=error is not None,
            reason=reason,
        )

    def _can_fall_back(self, choice: ModelChoice) -> bool:
        return choice == "small" and self.fallback_to_large

    # -- running the chosen model ------------------------------------------------------

    def _call(self, routed: Routed, invoke: Callable[[LLM], _R]) -> _R:
        error: Exception | None = None
        answered_by = routed.model
        try:
            response = invoke(self._model(answered_by))
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            response = invoke(self.large)
        record = self._record(routed, answered_by, error)
        self._account(record, response)
        return _with_routing(response, record.as_dict())

    async def _acall(self, routed: Routed, invoke: Callable[[LLM], Awaitable[_R]]) -> _R:
        error: Exception | None = None
        answered_by = routed.model
        try:
            response = await invoke(self._model(answered_by))
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            response = await invoke(self.large)
        record = self._record(routed, answered_by, error)
        self._account(record, response)
        return _with_routing(response, record.as_dict())

    def _stream(
        self, routed: Routed, open_stream: Callable[[LLM], Iterator[_R]]
    ) -> Generator[_R, None, None]:
        error: Exception | None = None
        answered_by = routed.model
        try:
            chunks = iter(open_stream(self._model(answered_by)))
            first = next(chunks, None)
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            chunks = iter(open_stream(self.large))
            first = next(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        if first is not None:
            last = _with_routing(first, routing)
            yield last
            for chunk in chunks:
                last = _with_routing(chunk, routing)
                yield last
        self._account(record, last)

    async def _astream(
        self, routed: Routed, open_stream: Callable[[LLM], Awaitable[AsyncIterator[_R]]]
    ) -> AsyncGenerator[_R, None]:
        error: Exception | None = None
        answered_by = routed.model
        try:
            chunks = await open_stream(self._model(answered_by))
            first = await anext(chunks, None)
        except Exception as failure:
            if not self._can_fall_back(answered_by):
                raise
            error, answered_by = failure, "large"
            chunks = await open_stream(self.large)
            first = await anext(chunks, None)
        record = self._record(routed, answered_by, error)
        routing = record.as_dict()
        last = None
        if first is not None:
            last = _with_routing(first, routing)
            yield last
            async for chunk in chunks:
                last = _with_routing(chunk, routing)
                yield last
        self._account(record, last)

    def _account(
        self, record: RoutingRecord, response: ChatResponse | CompletionResponse | None
    ) -> None:
        tokens_in, tokens_out = _usage(response) if response is not None else (None, None)
        self._service.account(record, input_tokens=tokens_in, output_tokens=tokens_out)

    @staticmethod
    def _chat_invoker(
        method: Literal["chat", "achat", "stream_chat", "astream_chat"],
        messages: Sequence[ChatMessage],
        tools: _ToolRequest | None,
        kwargs: dict[str, Any],
    ) -> Callable[[LLM], Any]:
        def invoke(model: LLM) -> Any:
            if tools is None:
                return getattr(model, method)(messages, **kwargs)
            return getattr(model, _TOOL_METHODS[method])(
                tools.tools,
                chat_history=list(messages),
                verbose=tools.verbose,
                allow_parallel_tool_calls=tools.allow_parallel_tool_calls,
                tool_required=tools.tool_required,
                **{**tools.kwargs, **kwargs},
            )

        return invoke

    # -- LlamaIndex entry points -------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a chat with the model the router picks for it."""
        tools = kwargs.pop(_TOOLS_KWARG, None)
        routed = self._decide(self._chat_routing(messages, tools))
        response: ChatResponse = self._call(
            routed, self._chat_invoker("chat", messages, tools, kwargs)
        )
        return response

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat answer from the model the router picks for it."""
        tools = kwargs.pop(_TOOLS_KWARG, None)
        routed = self._decide(self._chat_routing(messages, tools))
        chunks: ChatResponseGen = self._stream(
            routed, self._chat_invoker("stream_chat", messages, tools, kwargs)
        )
        return chunks

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a chat asynchronously with the model the router picks for it."""
        tools = kwargs.pop(_TOOLS_KWARG, None)
        routed = await self._adecide(self._chat_routing(messages, tools))
        return await self._acall(routed, self._chat_invoker("achat", messages, tools, kwargs))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a chat answer asynchronously from the model the router picks for it."""
        tools = kwargs.pop(_TOOLS_KWARG, None)
        routed = await self._adecide(self._chat_routing(messages, tools))
        return self._astream(routed, self._chat_invoker("astream_chat", messages, tools, kwargs))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt with the model the router picks for it."""
        routed = self._decide(self._prompt_routing(prompt))
        return self._call(routed, lambda model: model.complete(prompt, **kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion from the model the router picks for the prompt."""
        routed = self._decide(self._prompt_routing(prompt))
        return self._stream(routed, lambda model: model.stream_complete(prompt, **kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Complete a prompt asynchronously with the model the router picks for it."""
        routed = await self._adecide(self._prompt_routing(prompt))
        return await self._acall(routed, lambda model: model.acomplete(prompt, **kwargs))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a completion asynchronously from the model the router picks for the prompt."""
        routed = await self._adecide(self._prompt_routing(prompt))
        return self._astream(routed, lambda model: model.astream_complete(prompt, **kwargs))

    # -- tool calling ------------------------------------------------------------------

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
        request = _ToolRequest(
            tools=tools,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            kwargs=kwargs,
        )
        return {"messages": messages, _TOOLS_KWARG: request}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Read tool calls with the parser of the model that answered.

        The model is the one named in ``additional_kwargs["routing"]``; a response without a
        routing record is read with the large model's parser.
        """
        routing = response.additional_kwargs.get("routing") or {}
        model = self._model("small" if routing.get("model") == "small" else "large")
        if not isinstance(model, FunctionCallingLLM):
            raise RoutingError(
                f"{_model_name(model)!r} answered and is not a FunctionCallingLLM, "
                "so it has no tool calls to read"
            )
        return model.get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # -- prompt templates: remember the question (see llamaindex_hybrid.questions) ------

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> list[ChatMessage]:
        messages = super()._get_messages(prompt, **prompt_args)
        remember_question(prompt, prompt_args, messages, self.question_variables)
        return messages

    def _get_prompt(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        formatted = super()._get_prompt(prompt, **prompt_args)
        remember_question(prompt, prompt_args, formatted, self.question_variables)
        return formatted


def _model_name(llm: LLM) -> str:
    name = llm.metadata.model_name
    return name if name and name != "unknown" else llm.class_name()


def _calls_tools(llm: LLM) -> bool:
    return isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model


def _conversation_key(turns: Sequence[tuple[str, str]]) -> str | None:
    """Identify a conversation by its first user turn (for sticky routing)."""
    for role, text in turns:
        if role in ("user", "human") and text.strip():
            return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:32]
    return None


def _with_routing(response: _R, routing: dict[str, Any]) -> _R:
    """A copy of ``response`` carrying the record; the inner model's own response is untouched."""
    return response.model_copy(
        update={"additional_kwargs": {**response.additional_kwargs, "routing": routing}}
    )


def _usage(response: ChatResponse | CompletionResponse) -> tuple[int | None, int | None]:
    """Token counts a provider reported: in ``additional_kwargs`` or in ``raw["usage"]``."""
    raw = response.raw
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    for source in (response.additional_kwargs, usage):
        for names in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
            tokens_in, tokens_out = (_int_field(source, name) for name in names)
            if tokens_in is not None or tokens_out is not None:
                return tokens_in, tokens_out
    return None, None


def _int_field(source: Any, name: str) -> int | None:
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
