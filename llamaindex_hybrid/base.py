"""``HybridLLM``: the hybrid-llm router as a LlamaIndex LLM."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.prompts import BasePromptTemplate

from llamaindex_hybrid._call_knobs import call_knobs, knobs_in_block
from llamaindex_hybrid._responses import model_name
from llamaindex_hybrid._routed_calls import RoutedCalls
from llamaindex_hybrid._routing_input import (
    RoutingInput,
    chat_routing_input,
    prompt_routing_input,
)
from llamaindex_hybrid._tools import (
    TOOLS_KWARG,
    ToolRequest,
    chat_invoker,
    read_tool_calls,
    tool_route,
)
from llamaindex_hybrid.questions import DEFAULT_QUESTION_VARIABLES, remember_question
from shared_router.errors import KnobError
from shared_router.routing.serving import ModelPrices, RoutingService, StatsSnapshot
from shared_router.routing.text import RoutedTextMode
from shared_router.types import QualityKnobs

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from shared_router.routing.router import Router

__all__ = ["HybridLLM"]


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

    Reliability: when the small model raises the large model answers, with ``fallback=True``
    and the error in ``reason``; when the router raises, the large model answers the same
    way. Streams fall back while nothing of the small model's answer has reached the caller,
    that is when it fails before its first chunk; after that the error is raised (chunks
    already delivered cannot be taken back). A call that raises is counted in
    ``stats.failed``, never as an answer; a stream is counted once it has ended. Inner models
    format prompts with their own templates: ``formatted`` is accepted and not passed on.

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
            model_name=f"HybridLLM({model_name(self.small)}, {model_name(self.large)})",
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
        with knobs_in_block(self, knobs):
            yield

    # -- routing (see llamaindex_hybrid._routing_input and ._routed_calls) ---------------

    def _routed_calls(self) -> RoutedCalls:
        """What this call needs: the models, the service and the level in force here."""
        own = QualityKnobs(self.max_quality_drop, self.large_share, self.threshold)
        return RoutedCalls(
            small=self.small,
            large=self.large,
            service=self._service,
            knobs=call_knobs(self, own),
            fallback_to_large=self.fallback_to_large,
        )

    def _chat_routing(
        self, messages: Sequence[ChatMessage], tools: ToolRequest | None
    ) -> RoutingInput:
        return chat_routing_input(
            messages,
            routed_text=self.routed_text,
            sticky=self.sticky,
            force_large=tool_route(tools, self.small, self.large),
        )

    # -- LlamaIndex entry points -------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a chat with the model the router picks for it."""
        tools = kwargs.pop(TOOLS_KWARG, None)
        calls = self._routed_calls()
        routed = calls.decide(self._chat_routing(messages, tools))
        response: ChatResponse = calls.call(routed, chat_invoker("chat", messages, tools, kwargs))
        return response

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat answer from the model the router picks for it."""
        tools = kwargs.pop(TOOLS_KWARG, None)
        calls = self._routed_calls()
        routed = calls.decide(self._chat_routing(messages, tools))
        chunks: ChatResponseGen = calls.stream(
            routed, chat_invoker("stream_chat", messages, tools, kwargs)
        )
        return chunks

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a chat asynchronously with the model the router picks for it."""
        tools = kwargs.pop(TOOLS_KWARG, None)
        calls = self._routed_calls()
        routed = await calls.adecide(self._chat_routing(messages, tools))
        response: ChatResponse = await calls.acall(
            routed,
            "achat",
            chat_invoker("achat", messages, tools, kwargs),
            chat_invoker("chat", messages, tools, kwargs),
        )
        return response

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a chat answer asynchronously from the model the router picks for it."""
        tools = kwargs.pop(TOOLS_KWARG, None)
        calls = self._routed_calls()
        routed = await calls.adecide(self._chat_routing(messages, tools))
        chunks: ChatResponseAsyncGen = calls.astream(
            routed,
            "astream_chat",
            chat_invoker("astream_chat", messages, tools, kwargs),
            chat_invoker("stream_chat", messages, tools, kwargs),
        )
        return chunks

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt with the model the router picks for it."""
        calls = self._routed_calls()
        routed = calls.decide(prompt_routing_input(prompt))
        return calls.call(routed, lambda model: model.complete(prompt, **kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion from the model the router picks for the prompt."""
        calls = self._routed_calls()
        routed = calls.decide(prompt_routing_input(prompt))
        return calls.stream(routed, lambda model: model.stream_complete(prompt, **kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Complete a prompt asynchronously with the model the router picks for it."""
        calls = self._routed_calls()
        routed = await calls.adecide(prompt_routing_input(prompt))
        return await calls.acall(
            routed,
            "acomplete",
            lambda model: model.acomplete(prompt, **kwargs),
            lambda model: model.complete(prompt, **kwargs),
        )

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a completion asynchronously from the model the router picks for the prompt."""
        calls = self._routed_calls()
        routed = await calls.adecide(prompt_routing_input(prompt))
        return calls.astream(
            routed,
            "astream_complete",
            lambda model: model.astream_complete(prompt, **kwargs),
            lambda model: model.stream_complete(prompt, **kwargs),
        )

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
        routing record is read with the large model's parser.

        Raises:
            RoutingError: If the model that answered is not a function-calling LLM.
        """
        routing = response.additional_kwargs.get("routing") or {}
        model = self.small if routing.get("model") == "small" else self.large
        return read_tool_calls(model, response, error_on_no_tool_call, **kwargs)

    # -- prompt templates: remember the question (see llamaindex_hybrid.questions) ------

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> list[ChatMessage]:
        messages = super()._get_messages(prompt, **prompt_args)
        remember_question(prompt, prompt_args, messages, self.question_variables)
        return messages

    def _get_prompt(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        formatted = super()._get_prompt(prompt, **prompt_args)
        remember_question(prompt, prompt_args, formatted, self.question_variables)
        return formatted
