"""Test support for the LlamaIndex adapter: stand-in LLMs that record calls, event capture."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

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
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

# Both are training queries of the `planted_router` fixture: EASY scores high, HARD low.
EASY = "What is 2 + 3?"
HARD = (
    "Draft a detailed legal memo analysing liability for a breach of a software licence under "
    "English contract law, citing the relevant case law, weighing the counterarguments, and "
    "recommending a litigation strategy."
)


class StandInLLM(FunctionCallingLLM):
    """A STAND-IN for a remote model: answers ``[name] ...`` and records every call.

    It answers instantly (``answer(text)`` or ``[name] answered``), reports token usage like
    OpenAI does (``additional_kwargs``), fails on purpose with ``fail_with`` (a
    ``ConnectionError``, as a provider's client raises; streams: at the first chunk, or the
    second with ``fail_mid_stream``), and calls the first offered tool once when
    ``tool_kwargs`` is set.
    """

    name: str
    chat_model: bool = True
    function_calling: bool = True
    context_window: int = 4096
    num_output: int = 256
    fail_with: str | None = None
    fail_mid_stream: bool = False
    tool_kwargs: dict[str, Any] | None = None
    answer: Callable[[str], str] | None = Field(default=None, exclude=True)
    _calls: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "StandInLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.num_output,
            is_chat_model=self.chat_model,
            is_function_calling_model=self.function_calling,
            model_name=self.name,
        )

    @property
    def calls(self) -> list[dict[str, Any]]:
        """One dict per call: ``method``, ``text`` (last message or prompt), ``kwargs``."""
        return self._calls

    @property
    def texts(self) -> list[str]:
        """The text each call received."""
        return [call["text"] for call in self._calls]

    @property
    def received(self) -> list[list[str]]:
        """Every message of each call, as ``"role: content"`` (a prompt is one user message)."""
        return [call["messages"] for call in self._calls]

    def _answer(self, method: str, messages: Sequence[ChatMessage], kwargs: Any) -> ChatResponse:
        """Record the call and build the full answer (raises here unless streaming)."""
        text = messages[-1].content or ""
        received = [f"{m.role.value}: {m.content or ''}" for m in messages]
        self._calls.append(
            {"method": method, "text": text, "kwargs": dict(kwargs), "messages": received}
        )
        if self.fail_with is not None and "stream" not in method:
            raise ConnectionError(self.fail_with)
        tools = kwargs.get("tools")
        results = [m.content or "" for m in messages if m.role == MessageRole.TOOL]
        if tools and self.tool_kwargs is not None and not results:
            call = ToolCallBlock(
                tool_call_id="call-1",
                tool_name=tools[0].metadata.name,
                tool_kwargs=self.tool_kwargs,
            )
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=[call]))
        body = self.answer(text) if self.answer is not None else f"[{self.name}] answered"
        if results:
            body += f"; the tool said {results[-1]}"
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=body),
            additional_kwargs={"prompt_tokens": 10, "completion_tokens": len(body.split())},
        )

    def _chunks(self, final: ChatResponse) -> Iterator[ChatResponse]:
        """Stream ``final`` word by word; a planned failure comes at the first or second chunk."""
        if self.fail_with is not None and not self.fail_mid_stream:
            raise ConnectionError(self.fail_with)
        words = (final.message.content or "").split(" ")
        if final.message.content is None or len(words) == 1:
            yield final
            return
        for i in range(len(words)):
            if self.fail_with is not None and i == 1:
                raise ConnectionError(self.fail_with)
            last = i == len(words) - 1
            yield ChatResponse(
                message=ChatMessage(role=MessageRole.ASSISTANT, content=" ".join(words[: i + 1])),
                delta=words[i] if i == 0 else " " + words[i],
                additional_kwargs=final.additional_kwargs if last else {},
            )

    @staticmethod
    def _completion(chunk: ChatResponse) -> CompletionResponse:
        return CompletionResponse(
            text=chunk.message.content or "",
            delta=chunk.delta,
            additional_kwargs=chunk.additional_kwargs,
        )

    def _prompt(self, method: str, prompt: str, formatted: bool, kwargs: Any) -> ChatResponse:
        message = ChatMessage(role=MessageRole.USER, content=prompt)
        return self._answer(method, [message], {**kwargs, "formatted": formatted})

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._answer("chat", messages, kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._answer("achat", messages, kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._chunks(self._answer("stream_chat", messages, kwargs))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        final = self._answer("astream_chat", messages, kwargs)

        async def gen() -> ChatResponseAsyncGen:
            for chunk in self._chunks(final):
                yield chunk

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._completion(self._prompt("complete", prompt, formatted, kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self._completion(self._prompt("acomplete", prompt, formatted, kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        final = self._prompt("stream_complete", prompt, formatted, kwargs)
        return (self._completion(chunk) for chunk in self._chunks(final))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        final = self._prompt("astream_complete", prompt, formatted, kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            for chunk in self._chunks(final):
                yield self._completion(chunk)

        return gen()

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg)
                if isinstance(user_msg, str)
                else user_msg
            )
        return {"messages": messages, "tools": tools, **kwargs}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [
            ToolSelection(
                tool_id=block.tool_call_id or "",
                tool_name=block.tool_name,
                tool_kwargs=dict(block.tool_kwargs) if isinstance(block.tool_kwargs, dict) else {},
            )
            for block in response.message.blocks
            if isinstance(block, ToolCallBlock)
        ]
        if not calls and error_on_no_tool_call:
            raise ValueError(f"{self.name}: no tool call in the response")
        return calls


class EventLog(BaseEventHandler):
    """Collects every instrumentation event while it is attached."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventLog"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, kind: type[BaseEvent], llm_class: str | None = None) -> list[Any]:
        """Events of one type; start events filtered by the emitting LLM's class name."""
        found = [e for e in self.events if isinstance(e, kind)]
        if llm_class is None:
            return found
        return [e for e in found if e.model_dict.get("class_name") == llm_class]
