"""HybridLLM's parts in serialised form: inner models from their dicts, the router by reference.

``to_dict`` / ``model_dump`` write each inner model as its own ``to_dict()`` (with its
``class_name``) and the router as a reference: ``"default"`` or the absolute path of its
folder (a :class:`~shared_router.routing.router.Router` object as the folder it was loaded
from or saved to; one built in memory as its name, which cannot be loaded back: save it
first). ``from_dict`` / ``model_validate`` build the inner models back with the LlamaIndex
class of that ``class_name`` among those imported in the process.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llama_index.core.llms.llm import LLM

from shared_router.errors import ConfigurationError, UsageError
from shared_router.routing.registry import shared_router, source_key

__all__ = ["checked_inner_model", "inner_llm", "router_reference"]


def _llm_classes(base: type[LLM] = LLM) -> Iterator[type[LLM]]:
    for cls in base.__subclasses__():
        yield cls
        yield from _llm_classes(cls)


def inner_llm(data: Mapping[str, Any]) -> LLM:
    """The LlamaIndex LLM a ``to_dict()`` describes.

    Args:
        data: What the model's ``to_dict()`` gave, with its ``class_name``.

    Returns:
        The model, built by its class's ``from_dict``.

    Raises:
        ConfigurationError: If no imported LLM class has that ``class_name``.
    """
    name = data.get("class_name")
    for cls in _llm_classes():
        if not getattr(cls, "__abstractmethods__", None) and cls.class_name() == name:
            return cls.from_dict(dict(data))
    raise ConfigurationError(
        f"no imported LlamaIndex LLM class is named {name!r}; import its integration (for "
        "example `from llama_index.llms.openai import OpenAI`) before HybridLLM.from_dict, or "
        "pass small=... and large=... to from_dict"
    )


def checked_inner_model(value: Any, role: str) -> LLM:
    """``value`` as HybridLLM's ``role`` model: a LlamaIndex LLM, or its ``to_dict()``.

    Args:
        value: What was given as the small or the large model.
        role: ``"small"`` or ``"large"``, for the message.

    Returns:
        The LLM (built from its ``to_dict()`` when given one).

    Raises:
        ConfigurationError: For anything else; a LangChain model is pointed to ChatHybrid.
    """
    if isinstance(value, Mapping):
        return inner_llm(value)
    if isinstance(value, LLM):
        return value
    kind = type(value)
    hint = (
        " It is a LangChain model: route LangChain models with langchain_hybrid.ChatHybrid."
        if kind.__module__.startswith("langchain")
        else ""
    )
    raise ConfigurationError(
        f"{role} must be a LlamaIndex LLM (llama_index.core.llms.LLM, such as Ollama(...) or "
        f"OpenAI(...)); got {kind.__name__} ({value!r:.80}).{hint}"
    )


def router_reference(router: Any) -> str:
    """What a router is serialised as: ``"default"``, its folder, or (built in memory) its name."""
    if isinstance(router, (str, Path)):
        return router if router == "default" else source_key(router)
    try:
        reduced = router.__reduce__()
    except (UsageError, TypeError):  # built in memory, or not picklable at all
        return str(getattr(router, "name", router))
    if (
        isinstance(reduced, tuple)
        and reduced[0] is shared_router
        and isinstance(reduced[1][0], str)
    ):
        return reduced[1][0]
    return str(getattr(router, "name", router))
