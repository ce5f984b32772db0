"""Traces: the chosen model's call as a child run of ChatHybrid's, tagged with the choice.

Where langchain-core gives ChatHybrid a run manager (``invoke``, ``batch``, their async forms,
``stream_events(version="v3")``), the inner model's call becomes a child run tagged
``hybrid:small`` or ``hybrid:large``; without one (``stream``/``astream``) it carries the tag
only.
"""

from __future__ import annotations

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.runnables import RunnableConfig

from shared_router.types import ModelChoice

__all__ = ["child_callbacks", "child_config", "tagged"]


def child_callbacks(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> CallbackManager | AsyncCallbackManager | None:
    """Callbacks that make the inner model's call a child run of this one.

    Args:
        run_manager: ChatHybrid's run manager, where langchain-core gave it one.

    Returns:
        A callback manager parented to the run, or None without a run manager.
    """
    if run_manager is None:
        return None
    manager_class = (
        AsyncCallbackManager
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        else CallbackManager
    )
    manager = manager_class(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def child_config(
    callbacks: CallbackManager | AsyncCallbackManager | None, choice: ModelChoice
) -> RunnableConfig:
    """The config of the inner model's call: the choice's tag and the child-run callbacks."""
    config = RunnableConfig(tags=[f"hybrid:{choice}"])
    if callbacks is not None:
        config["callbacks"] = callbacks
    return config


def tagged(config: RunnableConfig, choice: ModelChoice) -> RunnableConfig:
    """``config`` with the choice's tag added (for runnables that get ChatHybrid's config)."""
    return RunnableConfig(**{**config, "tags": [*config.get("tags", []), f"hybrid:{choice}"]})
