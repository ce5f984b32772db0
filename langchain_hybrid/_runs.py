"""ChatHybrid's run in traces: a run carrying the decision, the chosen model's run its child.

As LangChain's ``with_fallbacks`` does, ChatHybrid's ``invoke``, ``stream`` and their async
forms open one run of their own (named ``ChatHybrid``, a chain run) whose metadata is the
routing decision (:func:`decision_metadata`), and call the chosen model with that run's child
callbacks (:func:`child_config`): the model's own run, the one chat-model run of the call,
is nested under it, tagged ``hybrid:small`` or ``hybrid:large`` (and ``hybrid:fallback`` when
the large model answers for a failed small one). Handlers given to ChatHybrid itself
(``ChatHybrid(callbacks=[...])``) are passed on to that run, as a call's handlers are.
Tokens are streamed, usage reported and answers cached by that run only, so every handler
(``astream_events``, LangGraph's message stream, ``get_usage_metadata_callback``,
LangSmith) sees each of them once.

The chosen model is called with the child config *and* in a context where that config is
the current one (:func:`call_in` and its siblings, as ``with_fallbacks`` does): a
``RunnableBinding`` (``bind_tools``) merges its own config with the context's, which would
otherwise be the caller's, and make the model's run a sibling of ChatHybrid's.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config, set_config_context
from langchain_core.runnables.utils import coro_with_context

from shared_router.routing.serving import Routed
from shared_router.types import ModelChoice

__all__ = [
    "RUN_NAME",
    "ParentRun",
    "acall_in",
    "aiterate_in",
    "astart_run",
    "call_in",
    "child_config",
    "decision_metadata",
    "iterate_in",
    "start_run",
]

T = TypeVar("T")

RUN_NAME = "ChatHybrid"
"""The name of ChatHybrid's own run (a call's ``run_name`` replaces it)."""

ParentRun = (
    CallbackManagerForChainRun
    | AsyncCallbackManagerForChainRun
    | CallbackManagerForLLMRun
    | AsyncCallbackManagerForLLMRun
)
"""The run the chosen model's run nests under: ChatHybrid's own, or the chat-model run
langchain-core opens where it calls ChatHybrid's ``_generate``/``_stream`` itself
(``generate()``, ``stream_events(version="v3")``)."""


def decision_metadata(routed: Routed, router: str, calibration: str | None) -> dict[str, Any]:
    """The routing decision as run metadata (keys prefixed ``hybrid_``).

    Args:
        routed: The call's decision.
        router: The router's name.
        calibration: The router's calibration in brief, or None when it has none.

    Returns:
        ``hybrid_model`` (the routed model), ``hybrid_score``, ``hybrid_threshold``,
        ``hybrid_knob``, ``hybrid_knob_value``, ``hybrid_router``, ``hybrid_calibration``,
        ``hybrid_fallback`` (True when the router failed and the large model was chosen) and
        ``hybrid_reason``; with a live calibration (``live=``) also
        ``hybrid_calibration_source`` (``"prior"`` or ``"live"``),
        ``hybrid_calibration_rows`` and ``hybrid_drop_bound``.
    """
    decision = routed.decision
    metadata = {
        "hybrid_model": decision.model,
        "hybrid_score": decision.score,
        "hybrid_threshold": decision.threshold,
        "hybrid_knob": decision.knob,
        "hybrid_knob_value": decision.knob_value,
        "hybrid_router": router,
        "hybrid_calibration": calibration,
        "hybrid_fallback": routed.router_failed,
        "hybrid_reason": decision.reason,
    }
    if routed.calibration is not None:
        live = routed.calibration.record_fields()
        metadata["hybrid_calibration_source"] = live["calibration"]
        metadata["hybrid_calibration_rows"] = live["calibration_rows"]
        metadata["hybrid_drop_bound"] = live["drop_bound"]
    return metadata


def _configure(
    manager_class: type[CallbackManager] | type[AsyncCallbackManager],
    model: BaseChatModel,
    config: RunnableConfig,
    metadata: dict[str, Any],
) -> Any:
    manager = manager_class.configure(
        config.get("callbacks"),
        None,
        model.verbose,
        config.get("tags"),
        model.tags,
        config.get("metadata"),
        model.metadata,
    )
    # ChatHybrid's own handlers (``ChatHybrid(callbacks=...)``) see the chosen model's run
    # too, as a chat model's own handlers see its run: its tokens, its usage.
    own = model.callbacks
    for handler in own.handlers if isinstance(own, BaseCallbackManager) else own or []:
        manager.add_handler(handler, inherit=True)
    manager.add_metadata(metadata, inherit=False)
    return manager


def start_run(
    model: BaseChatModel, config: RunnableConfig, inputs: Any, metadata: dict[str, Any]
) -> CallbackManagerForChainRun:
    """Open ChatHybrid's run of one call (``config``'s ``run_id`` names it).

    Args:
        model: The ChatHybrid (its own callbacks, tags and metadata are the run's too).
        config: The call's config.
        inputs: The call's input.
        metadata: The decision (:func:`decision_metadata`).

    Returns:
        The run's manager: ``on_chain_end`` / ``on_chain_error`` close it.
    """
    manager: CallbackManager = _configure(CallbackManager, model, config, metadata)
    return manager.on_chain_start(
        None, inputs, name=config.get("run_name") or RUN_NAME, run_id=config.pop("run_id", None)
    )


async def astart_run(
    model: BaseChatModel, config: RunnableConfig, inputs: Any, metadata: dict[str, Any]
) -> AsyncCallbackManagerForChainRun:
    """The async form of :func:`start_run`."""
    manager: AsyncCallbackManager = _configure(AsyncCallbackManager, model, config, metadata)
    return await manager.on_chain_start(
        None, inputs, name=config.get("run_name") or RUN_NAME, run_id=config.pop("run_id", None)
    )


def child_config(
    config: RunnableConfig,
    run: ParentRun | None,
    choice: ModelChoice,
    *,
    fallback: bool = False,
    sync: bool = False,
) -> RunnableConfig:
    """The config of the chosen model's call: a child of ``run``, tagged with the choice.

    Args:
        config: The call's config (its ``configurable`` and ``metadata`` pass on).
        run: ChatHybrid's run, or None where langchain-core gave none (the call's own
            callbacks then pass on).
        choice: The model called.
        fallback: Whether the large model answers for a failed small one.
        sync: Whether the model is called through its sync API (from an async call).

    Returns:
        The config.
    """
    tags = [f"hybrid:{choice}", *(["hybrid:fallback"] if fallback else [])]
    if run is None:
        return RunnableConfig(**{**config, "tags": [*config.get("tags", []), *tags]})
    callbacks = _children(run, sync=sync)
    callbacks.add_tags(tags, inherit=False)
    return patch_config(config, callbacks=callbacks)


def _children(run: ParentRun, *, sync: bool) -> CallbackManager | AsyncCallbackManager:
    """A callback manager whose runs are children of ``run`` (sync ones if ``sync``).

    A chain run makes its own (``get_child``); a chat-model run has no children in
    langchain-core's API, so the manager is made from its inheritable handlers, tags and
    metadata, as ``get_child`` does.
    """
    if isinstance(run, CallbackManagerForChainRun):
        return run.get_child()
    if isinstance(run, AsyncCallbackManagerForChainRun):
        return run.get_sync().get_child() if sync else run.get_child()
    is_async = isinstance(run, AsyncCallbackManagerForLLMRun) and not sync
    manager_class = AsyncCallbackManager if is_async else CallbackManager
    manager = manager_class(handlers=[], parent_run_id=run.run_id)
    manager.set_handlers(run.inheritable_handlers)
    manager.add_tags(run.inheritable_tags)
    manager.add_metadata(run.inheritable_metadata)
    return manager


def call_in(config: RunnableConfig, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func`` with ``config`` as the current config (and tracing context)."""
    with set_config_context(config) as context:
        return context.run(func, *args, **kwargs)


async def acall_in(
    config: RunnableConfig, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """Await ``func(...)`` with ``config`` as the current config."""
    with set_config_context(config) as context:
        return await coro_with_context(_awaited(context.run(func, *args, **kwargs)), context)


def iterate_in(config: RunnableConfig, open_stream: Callable[[], Iterable[T]]) -> Iterator[T]:
    """Open and iterate a stream with ``config`` as the current config at every step."""
    with set_config_context(config) as context:
        chunks = iter(context.run(open_stream))
        while True:
            try:
                chunk = context.run(next, chunks)
            except StopIteration:
                return
            yield chunk


async def aiterate_in(
    config: RunnableConfig, open_stream: Callable[[], AsyncIterable[T]]
) -> AsyncIterator[T]:
    """The async form of :func:`iterate_in`."""
    with set_config_context(config) as context:
        chunks = aiter(context.run(open_stream))
        while True:
            try:
                chunk = await coro_with_context(_awaited(anext(chunks)), context)
            except StopAsyncIteration:
                return
            yield chunk


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
