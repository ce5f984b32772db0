"""Route a templated prompt on its question, not on the context around it.

LlamaIndex formats every prompt it sends from a template whose variables hold the parts:
a query engine's answer template has ``{context_str}`` (the retrieved chunks, often thousands
of tokens) and ``{query_str}`` (the user's question); condense prompts have ``{question}``;
selectors and evaluators ``{query_str}`` or ``{query}``. Routing on the formatted prompt would
let the context decide, so :class:`~llamaindex_hybrid.HybridLLM` remembers the question
variable's value when it formats a template (``LLM._get_messages`` / ``LLM._get_prompt``, the
two formatting steps behind ``predict``, ``stream``, ``apredict`` and ``astream``) and routes
the call that then receives exactly that formatted prompt on the question alone.

The memory is a context variable holding the last (formatted prompt, question) pair, so it is
private to each thread and asyncio task, and it is only used when the prompt a call receives
equals the formatted one: a lingering pair can never apply to another prompt. Prompts that do
not come from a template with a question variable are routed on their text (the last user
turn, head and tail kept, see :func:`shared_router.routing.text.routing_text`).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import BasePromptTemplate

__all__ = ["DEFAULT_QUESTION_VARIABLES", "recall_question", "remember_question"]

DEFAULT_QUESTION_VARIABLES: tuple[str, ...] = ("query_str", "question", "query")
"""Template variables that hold the user's question in LlamaIndex's own templates."""

FormattedPrompt = tuple[ChatMessage, ...] | str


@dataclass(frozen=True)
class _Remembered:
    formatted: FormattedPrompt
    question: str


_LAST_FORMATTED: ContextVar[_Remembered | None] = ContextVar(
    "llamaindex_hybrid_last_formatted", default=None
)


def _template_question(
    prompt: BasePromptTemplate, prompt_args: Mapping[str, Any], variables: Sequence[str]
) -> str | None:
    """Return the question a template is being formatted with, if it has one.

    Args:
        prompt: The template (partially formatted variables count too).
        prompt_args: The variables given when formatting.
        variables: Candidate question variables, in order of preference.

    Returns:
        The first non-blank value among ``variables`` that the template uses, else None.
    """
    values = ChainMap(dict(prompt_args), dict(prompt.kwargs))
    used = set(prompt.template_vars)
    for name in variables:
        value = values.get(name)
        if name in used and value is not None and str(value).strip():
            return str(value)
    return None


def remember_question(
    prompt: BasePromptTemplate,
    prompt_args: Mapping[str, Any],
    formatted: Sequence[ChatMessage] | str,
    variables: Sequence[str],
) -> None:
    """Remember which question a just-formatted prompt carries (no-op without one).

    Args:
        prompt: The template that was formatted.
        prompt_args: The variables it was formatted with.
        formatted: The formatted messages or text.
        variables: Candidate question variables, in order of preference.
    """
    question = _template_question(prompt, prompt_args, variables)
    if question is not None:
        key = formatted if isinstance(formatted, str) else tuple(formatted)
        _LAST_FORMATTED.set(_Remembered(key, question))


def recall_question(received: Sequence[ChatMessage] | str) -> str | None:
    """Return the question of a prompt formatted in this context, if ``received`` is it.

    Args:
        received: The messages or text a call received.

    Returns:
        The remembered question when ``received`` equals the last prompt formatted from a
        template with a question variable in this thread or task, else None.
    """
    remembered = _LAST_FORMATTED.get()
    if remembered is None:
        return None
    key = received if isinstance(received, str) else tuple(received)
    return remembered.question if remembered.formatted == key else None
