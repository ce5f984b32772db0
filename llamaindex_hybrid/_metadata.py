"""What HybridLLM knows of its inner models, read once and never by contacting a server.

LlamaIndex reads ``llm.metadata`` all the time (prompt sizing, instrumentation payloads,
agents' checks), and some integrations compute it from their server: ``Ollama`` with its
default ``context_window=-1`` asks the server for the model's window. Used bare, such a model
raises ``ConnectionError`` when its server is down, before any call. HybridLLM reads each
inner model's metadata once (:class:`InnerMetadata`); when reading it fails, it uses what the
model declares in its fields (``model``, ``context_window``, ``is_function_calling_model``,
...) and LlamaIndex's defaults for the rest, with a logged note, so that a down small model
is a fallback on its first call, not a crash of the whole engine.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata, MessageRole
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import LLM

from shared_router.types import ModelChoice

__all__ = ["InnerMetadata", "combined_metadata", "declared_metadata"]

logger = logging.getLogger(__name__)

_NAME_FIELDS = ("model_name", "model", "model_path")
_OUTPUT_FIELDS = ("num_output", "max_tokens", "max_new_tokens")


def _declared(model: LLM, names: tuple[str, ...]) -> list[Any]:
    """The values of those of ``names`` that ``model`` declares as fields, in order."""
    fields = type(model).model_fields
    return [getattr(model, name, None) for name in names if name in fields]


def _positive_int(model: LLM, names: tuple[str, ...]) -> int | None:
    for value in _declared(model, names):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _text(model: LLM, names: tuple[str, ...]) -> str | None:
    for value in _declared(model, names):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _flag(model: LLM, name: str) -> bool | None:
    values = [v for v in _declared(model, (name,)) if isinstance(v, bool)]
    return values[0] if values else None


def declared_metadata(model: LLM) -> LLMMetadata:
    """``model``'s metadata from its declared fields alone, LlamaIndex's defaults elsewhere.

    A model without an ``is_chat_model`` field counts as a chat model unless it is a
    ``CustomLLM`` (a completion model): both work through ``chat``, which a ``CustomLLM``
    turns into a completion with its own ``messages_to_prompt``.
    """
    defaults = LLMMetadata()
    chat = _flag(model, "is_chat_model")
    return LLMMetadata(
        context_window=_positive_int(model, ("context_window",)) or defaults.context_window,
        num_output=_positive_int(model, _OUTPUT_FIELDS) or defaults.num_output,
        is_chat_model=chat if chat is not None else not isinstance(model, CustomLLM),
        is_function_calling_model=bool(_flag(model, "is_function_calling_model")),
        model_name=_text(model, _NAME_FIELDS) or model.class_name(),
    )


class InnerMetadata:
    """Each inner model's metadata, read on first use and then kept (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: dict[ModelChoice, LLMMetadata] = {}

    def __reduce__(self) -> tuple[type[InnerMetadata], tuple[()]]:
        """A copy (pickled or deep-copied) reads its models afresh."""
        return InnerMetadata, ()

    def of(self, choice: ModelChoice, model: LLM) -> LLMMetadata:
        """The metadata of the ``choice`` model, ``model``: its own, or its declared fields'.

        Args:
            choice: ``"small"`` or ``"large"``.
            model: That model.

        Returns:
            Its metadata; read from ``model.metadata`` once, or, when that raises, built
            from the fields it declares (see :func:`declared_metadata`), with a logged note.
        """
        known = self._read.get(choice)
        if known is not None:
            return known
        with self._lock:
            known = self._read.get(choice)
            if known is None:
                known = self._read_once(choice, model)
                self._read[choice] = known
        return known

    @staticmethod
    def _read_once(choice: ModelChoice, model: LLM) -> LLMMetadata:
        try:
            return model.metadata
        except Exception as error:
            declared = declared_metadata(model)
            logger.warning(
                "HybridLLM: reading the %s model's metadata (%s %r) failed with %s: %s; using "
                "what it declares (context_window=%d, num_output=%d) instead. Its calls still "
                "run, falling back to the large model while it fails; set its context_window "
                "(and num_output) to keep its metadata from contacting its server",
                choice,
                model.class_name(),
                declared.model_name,
                type(error).__name__,
                error,
                declared.context_window,
                declared.num_output,
            )
            return declared


def combined_metadata(small: LLMMetadata, large: LLMMetadata) -> LLMMetadata:
    """What HybridLLM offers: what both models allow, and tools when either calls them.

    The window and the output are the smaller of the two; tool calling is on when either
    model calls tools, since calls with tools go to a model that calls them (see
    :mod:`llamaindex_hybrid._tools`).
    """
    outputs = [n for n in (small.num_output, large.num_output) if n > 0]
    return LLMMetadata(
        context_window=min(small.context_window, large.context_window),
        num_output=min(outputs) if outputs else small.num_output,
        is_chat_model=small.is_chat_model and large.is_chat_model,
        is_function_calling_model=(
            small.is_function_calling_model or large.is_function_calling_model
        ),
        model_name=f"HybridLLM({small.model_name}, {large.model_name})",
        system_role=(
            small.system_role if small.system_role == large.system_role else MessageRole.SYSTEM
        ),
    )
