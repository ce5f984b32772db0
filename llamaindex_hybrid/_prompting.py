"""A templated prompt formatted by the model that answers it, as that model formats it bare.

``LLM.predict`` (and ``stream``, ``apredict``, ``astream``, what engines and selectors call)
formats a template with the LLM's own settings: its ``system_prompt``, ``query_wrapper_prompt``
and ``output_parser``, and for a completion model its ``messages_to_prompt`` /
``completion_to_prompt`` (a chat template turned into the model's own prompt format), then
calls ``chat`` or ``complete(formatted=True)``. Were HybridLLM to format the template, the
inner models' settings would be lost (a small model's ``system_prompt`` never sent; a local
model's chat template applied on top of HybridLLM's plain one, ``<|im_start|>user\\nsystem:
...``). So HybridLLM routes first and lets the chosen model format the template exactly as its
own ``predict`` does: :class:`FormattedCall` builds the call to run on whichever model answers
(the large one too, on a fallback), and :func:`parsed_output` reads its answer with that
model's output parser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate

__all__ = ["FormattedCall", "parsed_output", "response_text"]

Response = ChatResponse | CompletionResponse


@dataclass(frozen=True)
class FormattedCall:
    """One ``predict``-family call, to run on the model the router picks.

    Attributes:
        prompt: The template.
        prompt_args: Its variables.
        is_chat_model: Whether a model is a chat model (what its metadata says).
    """

    prompt: BasePromptTemplate
    prompt_args: Mapping[str, Any]
    is_chat_model: Callable[[LLM], bool]

    def run(self, model: LLM) -> Response:
        """Format the template as ``model.predict`` would and call ``model`` with it."""
        if self.is_chat_model(model):
            return model.chat(model._get_messages(self.prompt, **self.prompt_args))
        return model.complete(model._get_prompt(self.prompt, **self.prompt_args), formatted=True)

    def stream(self, model: LLM) -> Iterator[Response]:
        """Format as ``model.stream`` would and open ``model``'s stream."""
        if self.is_chat_model(model):
            return model.stream_chat(model._get_messages(self.prompt, **self.prompt_args))
        text = model._get_prompt(self.prompt, **self.prompt_args)
        return model.stream_complete(text, formatted=True)

    def arun(self, model: LLM) -> Awaitable[Response]:
        """Format as ``model.apredict`` would and call ``model`` asynchronously."""
        if self.is_chat_model(model):
            return model.achat(model._get_messages(self.prompt, **self.prompt_args))
        text = model._get_prompt(self.prompt, **self.prompt_args)
        return model.acomplete(text, formatted=True)

    def astream(self, model: LLM) -> Awaitable[AsyncIterator[Response]]:
        """Format as ``model.astream`` would and open ``model``'s async stream."""
        if self.is_chat_model(model):
            return model.astream_chat(model._get_messages(self.prompt, **self.prompt_args))
        text = model._get_prompt(self.prompt, **self.prompt_args)
        return model.astream_complete(text, formatted=True)


def response_text(response: Response) -> str:
    """The text of a chat or completion response."""
    if isinstance(response, ChatResponse):
        return response.message.content or ""
    return response.text


def parsed_output(model: LLM, response: Response) -> str:
    """The answer as ``model.predict`` returns it: parsed by ``model``'s output parser."""
    return model._parse_output(response_text(response))
