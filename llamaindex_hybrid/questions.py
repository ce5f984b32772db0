"""Route a prompt on its question, not on the context around it.

LlamaIndex formats every prompt it sends from a template whose variables hold the parts:
a query engine's answer template has ``{context_str}`` (the retrieved chunks, often thousands
of tokens) and ``{query_str}`` (the user's question); condense prompts have ``{question}``;
selectors and evaluators ``{query_str}`` or ``{query}``. Routing on the formatted prompt would
let the context decide, so :class:`~llamaindex_hybrid.HybridLLM` finds the question three ways,
in this order:

1. **Said by the caller**: inside ``with routing_question(question):`` every HybridLLM call
   is routed on ``question`` (a string or a ``QueryBundle``). This is the way for code that
   formats its own prompts, a Workflow step calling ``llm.acomplete(prompt.format(...))``:

   .. code-block:: python

       from llamaindex_hybrid import routing_question

       @step
       async def answer(self, ev: StartEvent) -> StopEvent:
           with routing_question(ev.query):
               text = QA_PROMPT.format(context_str=context, query_str=ev.query)
               return StopEvent(result=await self.llm.acomplete(text))

2. **A template HybridLLM formats**: ``predict``, ``stream``, ``apredict`` and ``astream``
   (what query engines and selectors call) route on the template's question variable
   (:func:`template_question`; ``question_variables`` of HybridLLM names them).
3. **A LlamaIndex template formatted by hand**: engines that format one of LlamaIndex's own
   templates themselves (the condense step of ``condense_plus_context``, structured-output
   programs, the Pydantic selectors) send the formatted text; it is matched against those
   templates (:mod:`llamaindex_hybrid._library_prompts`) and routed on its question.

Other prompts are routed on their text (the last user turn, head and tail kept, see
:func:`shared_router.routing.text.routing_text`).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.schema import QueryBundle

from shared_router.errors import EmptyInputError

__all__ = [
    "DEFAULT_QUESTION_VARIABLES",
    "routing_question",
    "said_question",
    "template_question",
]

DEFAULT_QUESTION_VARIABLES: tuple[str, ...] = ("query_str", "question", "query")
"""Template variables that hold the user's question in LlamaIndex's own templates."""

_SAID: ContextVar[str | None] = ContextVar("llamaindex_hybrid_routing_question", default=None)


@contextmanager
def routing_question(question: str | QueryBundle) -> Iterator[None]:
    """Route every HybridLLM call inside the ``with`` block on ``question``.

    The block is private to its thread or asyncio task (tasks started inside it inherit it);
    the prompts themselves reach the models unchanged.

    Args:
        question: The user's question, as text or as the ``QueryBundle`` a retriever got.

    Yields:
        Nothing; calls in the block are routed on the question.

    Raises:
        EmptyInputError: If the question is blank.
    """
    text = question.query_str if isinstance(question, QueryBundle) else question
    if not isinstance(text, str) or not text.strip():
        raise EmptyInputError(
            f"routing_question needs the question's text, got {question!r}; pass the user's "
            "query (a string or a QueryBundle)"
        )
    token = _SAID.set(text)
    try:
        yield
    finally:
        _SAID.reset(token)


def said_question() -> str | None:
    """The question of the enclosing :func:`routing_question` block, or None outside one."""
    return _SAID.get()


def template_question(
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
