"""Checks of ChatHybrid's settings: unknown arguments, the router, the cache, prices."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo

from shared_router._internal.validation import check_keywords
from shared_router.errors import ConfigurationError
from shared_router.routing.accounting import ModelPrices
from shared_router.types import ModelChoice

__all__ = ["checked_cache", "checked_router", "prices_by_name", "warn_ignored"]


def warn_ignored(fields: Mapping[str, FieldInfo], values: Any) -> None:
    """Refuse a misspelt ChatHybrid argument; warn about the others it does not take.

    The warning points at the caller that built ChatHybrid.

    Raises:
        ConfigurationError: For an argument close to one of ``fields`` (or their aliases).
    """
    if not isinstance(values, dict):
        return
    known = set(fields) | {field.alias for field in fields.values() if field.alias is not None}
    check_keywords("ChatHybrid", values, known, stacklevel=5)


def checked_router(value: Any) -> Any:
    """``"default"``, a router folder (a path as a string) or a ``Router``."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str) or callable(getattr(value, "route", None)):
        return value
    raise ConfigurationError(
        f"router must be 'default', a router folder or a Router, got {type(value).__name__}"
    )


def checked_cache(value: Any) -> Any:
    """No cache of ChatHybrid's own: LangChain caches each answer under the chosen model."""
    if value is None or value is False:
        return value
    raise ConfigurationError(
        f"ChatHybrid takes no cache of its own (got cache={value!r}): LangChain's LLM cache "
        "(set_llm_cache(...), or cache= on the small and the large model) keeps each "
        "answer once, under the model that gave it"
    )


def prices_by_name(prices: dict[ModelChoice, ModelPrices] | None) -> dict[str, ModelPrices] | None:
    """The prices as the routing service takes them."""
    return None if prices is None else {str(choice): price for choice, price in prices.items()}
