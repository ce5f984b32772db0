"""Find the question in text formatted from one of LlamaIndex's own templates.

Some LlamaIndex engines format their prompt themselves and hand HybridLLM only the text: the
condense step of ``condense_plus_context`` calls ``llm.complete(template.format(...))``, and
structured-output programs (query engines with ``output_cls``, the Pydantic selectors) call
``chat_with_tools`` / ``chat`` with the formatted messages. The question is still in that
text, at the place of the template's question variable, so :func:`library_question` matches
the text against LlamaIndex's templates that have one (:data:`TEMPLATE_MODULES`), read from
the installed LlamaIndex and compiled once, and returns it.

Each template becomes a regular expression: its literal text, with every variable a lazy
group. The most specific templates (the most literal text) are tried first, and only those
whose longest literal line occurs in the text, so a plain prompt costs a few substring tests.
"""

from __future__ import annotations

import functools
import importlib
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llama_index.core.prompts import BasePromptTemplate, ChatPromptTemplate, PromptTemplate

from llamaindex_hybrid.questions import DEFAULT_QUESTION_VARIABLES

__all__ = ["TEMPLATE_MODULES", "library_question"]

TEMPLATE_MODULES = (
    "llama_index.core.prompts.default_prompts",
    "llama_index.core.prompts.chat_prompts",
    "llama_index.core.selectors.prompts",
    "llama_index.core.chat_engine.condense_plus_context",
    "llama_index.core.chat_engine.condense_question",
    "llama_index.core.question_gen.prompts",
)
"""The LlamaIndex modules whose templates HybridLLM recognises in hand-formatted text."""

_MIN_LITERAL = 12
"""Templates whose longest literal line is shorter than this are too loose to recognise."""


@dataclass(frozen=True)
class _Matcher:
    pattern: re.Pattern[str]
    question: str
    anchor: str
    literal_size: int


def _template_texts(value: Any) -> Iterator[str]:
    """The template strings a module-level value holds (a message template each for a chat)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, PromptTemplate):
        yield value.template
    elif isinstance(value, ChatPromptTemplate):
        for message in value.message_templates:
            if isinstance(message.content, str):
                yield message.content
    elif isinstance(value, BasePromptTemplate):
        default = getattr(value, "default_template", None)
        if default is not None:
            yield from _template_texts(default)


def _matcher(template: str) -> _Matcher | None:
    """A matcher for ``template``, or None when it has no question variable or is too loose."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return None
    names = [field for _, field, _, _ in parts if field is not None]
    question = next((v for v in DEFAULT_QUESTION_VARIABLES if v in names), None)
    if question is None or not all(name.isidentifier() for name in names):
        return None
    literals = [literal for literal, _, _, _ in parts]
    anchor = max(
        (line.strip() for text in literals for line in text.splitlines()), key=len, default=""
    )
    if len(anchor) < _MIN_LITERAL:
        return None
    regex, seen = [], set()
    for literal, field, _, _ in parts:
        regex.append(re.escape(literal))
        if field is None:
            continue
        regex.append(f"(?P={field})" if field in seen else f"(?P<{field}>.*?)")
        seen.add(field)
    if parts[-1][1] is not None:  # the template ends with a variable: it runs to the end
        regex.append(r"\s*\Z")
    return _Matcher(
        re.compile("".join(regex), re.DOTALL), question, anchor, sum(map(len, literals))
    )


@functools.cache
def _matchers() -> tuple[_Matcher, ...]:
    found: dict[str, _Matcher] = {}
    for name in TEMPLATE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for value in vars(module).values():
            for text in _template_texts(value):
                matcher = _matcher(text) if text not in found else None
                if matcher is not None:
                    found[text] = matcher
    return tuple(sorted(found.values(), key=lambda m: m.literal_size, reverse=True))


def library_question(text: str) -> str | None:
    """The question in ``text`` when it was formatted from one of LlamaIndex's templates.

    Args:
        text: A prompt, or the content of the message a call is routed on.

    Returns:
        The value of the template's question variable, stripped, or None when ``text``
        matches none of the templates (or its question is blank).
    """
    for matcher in _matchers():
        if matcher.anchor not in text:
            continue
        found = matcher.pattern.search(text)
        if found is not None and found.group(matcher.question).strip():
            return found.group(matcher.question).strip()
    return None
