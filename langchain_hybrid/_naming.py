"""ChatHybrid's names: its inner models' labels, its identifying and its LangSmith parameters.

Traces, caches and routing records name a model by its tracing name (``ls_model_name``, such
as ``gpt-4o-mini``), else by the ``name=`` it was given, else by its type; the pair is named by
its router's source, whether the router is loaded or not.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.base import LangSmithParams

from langchain_hybrid._inner_models import InnerModel, chat_model_of
from shared_router.routing.registry import source_key

__all__ = ["langsmith_params", "model_label", "model_params", "router_identity"]


def model_label(model: InnerModel) -> str:
    """An inner model's configured name (its tracing name, else its ``name=``, else its type)."""
    chat = chat_model_of(model)
    if chat is None:
        return type(model).__name__
    for name in (chat._get_ls_params().get("ls_model_name"), chat.name):
        if isinstance(name, str) and name:
            return name
    return chat._llm_type


def model_params(model: InnerModel) -> dict[str, Any]:
    """An inner model's identifying parameters (its ``repr`` where it is chosen per call)."""
    chat = chat_model_of(model)
    return chat.asdict() if chat is not None else {"model": repr(model)}


def router_identity(router: Any) -> str:
    """The router's source (a folder's absolute path) or name, whether loaded or not."""
    if isinstance(router, str):
        return source_key(router)
    return str(getattr(router, "name", type(router).__name__))


def langsmith_params(
    model_name: str, stop: list[str] | None, kwargs: dict[str, Any]
) -> LangSmithParams:
    """ChatHybrid's LangSmith parameters (a call's ``model`` keyword names the model)."""
    model = kwargs.get("model")
    params = LangSmithParams(
        ls_provider="hybrid",
        ls_model_name=model if isinstance(model, str) else model_name,
        ls_model_type="chat",
    )
    if stop:
        params["ls_stop"] = stop
    return params
