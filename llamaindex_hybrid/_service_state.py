"""HybridLLM's service state: its routing service and fallback policy, built from its settings.

The state is rebuilt when a setting it depends on is assigned (a knob is checked first), and
every copy has its own (``pickle``, ``copy.copy``, ``copy.deepcopy``, ``model_copy``): the
same router, its own stats and sticky memory.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.llms.function_calling import FunctionCallingLLM
from typing_extensions import Self

from llamaindex_hybrid._call_knobs import checked_knobs
from llamaindex_hybrid._metadata import InnerMetadata
from shared_router.live.settings import LiveSettings, checked_live_settings
from shared_router.routing.accounting import ModelPrices
from shared_router.routing.failures import FALLBACK_FIELDS, FallbackPolicy
from shared_router.routing.serving import SERVICE_FIELDS, RoutingService
from shared_router.types import KNOB_NAMES

__all__ = ["ServiceState"]


class ServiceState(FunctionCallingLLM):
    """An LLM with a routing service and a fallback policy built from its settings."""

    if TYPE_CHECKING:  # HybridLLM's fields (read here) and private attributes, and __init__

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        @property
        def router(self) -> Any: ...

        @property
        def sticky(self) -> bool: ...

        @property
        def pace_large_share(self) -> bool: ...

        @property
        def prices(self) -> dict[str, ModelPrices] | None: ...

        @property
        def fallback_to_large(self) -> bool: ...

        @property
        def live(self) -> LiveSettings | None: ...

        @property
        def exceptions_to_handle(self) -> tuple[type[BaseException], ...] | None: ...

        _service: RoutingService
        _fallbacks: FallbackPolicy
        _inner: InnerMetadata

    def _new_service(self) -> RoutingService:
        return RoutingService(
            self.router,
            sticky=self.sticky,
            pace_large_share=self.pace_large_share,
            prices=self.prices,
            live=self.live.loop() if self.live is not None else None,
        )

    def _new_fallbacks(self) -> FallbackPolicy:
        return FallbackPolicy(
            enabled=self.fallback_to_large, exceptions_to_handle=self.exceptions_to_handle
        )

    def __setattr__(self, name: str, value: Any) -> None:
        """Validate a knob before it is set; rebuild what depends on a changed setting."""
        if name == "live":
            value = checked_live_settings(value)
        if name in KNOB_NAMES:
            level = {knob: getattr(self, knob) for knob in KNOB_NAMES}
            level[name] = value
            checked_knobs(**level)
        super().__setattr__(name, value)
        if name in SERVICE_FIELDS:
            self._service = self._new_service()
        elif name in FALLBACK_FIELDS:
            self._fallbacks = self._new_fallbacks()
        elif name in ("small", "large"):
            self._inner = InnerMetadata()

    def __getstate__(self) -> dict[Any, Any]:
        """The fields (the router by reference); no service, stats or locks."""
        pickle.dumps(self.router)  # a router built in memory fails here, saying what to do
        state = super().__getstate__()
        state["__pydantic_private__"] = None
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        """Rebuild from the fields, on this process's router."""
        self.__init__(**state["__dict__"])  # type: ignore[misc]

    def __copy__(self) -> Self:
        """A shallow copy with its own routing service (its own stats)."""
        copied = super().__copy__()
        copied._service = copied._new_service()
        copied._inner = InnerMetadata()
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """A deep copy of the models and settings, sharing the router, with its own stats."""
        memo = {} if memo is None else memo
        memo[id(self.router)] = self.router
        copied = super().__deepcopy__(memo)
        copied._service = copied._new_service()
        return copied

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        """A copy with ``update`` applied (knobs checked), its own service and stats."""
        if update:
            level = {knob: update.get(knob, getattr(self, knob)) for knob in KNOB_NAMES}
            checked_knobs(**level)
        copied = super().model_copy(update=update, deep=deep)
        copied._service = copied._new_service()
        copied._fallbacks = copied._new_fallbacks()
        return copied
