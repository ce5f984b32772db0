"""Where responses come from: model SPECs, the response-source protocol, robust calls.

A SPEC names a model in one of two forms:

- ``provider:model`` (``openai:gpt-4o-mini``, ``anthropic:claude-3-5-haiku-latest``): a chat
  model made by LangChain's ``init_chat_model``; needs ``pip install 'hybrid-llm[collect]'``
  and the provider's own package (``langchain-openai``, ...). The left part must be one of
  :data:`CHAT_MODEL_PROVIDERS`.
- ``module:callable`` (``my_pkg.models:make_small``): an importable module and a callable in
  it that returns a LangChain chat model, a LlamaIndex LLM, or any object with an
  ``async generate(prompt) -> Generation`` method (a :class:`ResponseSource`) or a blocking
  ``generate_sync(prompt) -> Generation`` method (a :class:`BlockingResponseSource`). A
  module-level model object works as well as a factory.

Blocking calls never run on the event loop's default executor: :func:`generate_with_retries`
runs a source's ``generate_sync`` (unless the source says ``native_async = True``) on the
model's own :class:`~shared_router._internal.model_threads.ModelThreads`, and a timeout writes
a call that is still blocked off as hung (see :mod:`shared_router._internal.model_threads`).

Settings (temperature, max_tokens, ...) go to ``init_chat_model`` or to the callable as
keyword arguments. The core never imports LangChain or LlamaIndex: the adapters' collect-time
plugins, declared in :data:`COLLECT_PLUGINS`, are imported by name, only when a SPEC needs them.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from shared_router._internal.extras import require_extra
from shared_router.errors import DataError, MissingDependencyError
from shared_router.pipeline.model_calls import (
    BlockingResponseSource,
    Generation,
    ResponseSource,
    RetryPolicy,
    TimedGeneration,
    generate_with_retries,
    sync_generate,
)

__all__ = [
    "BlockingResponseSource",
    "CHAT_MODEL_PROVIDERS",
    "COLLECT_PLUGINS",
    "LANGCHAIN_PLUGIN",
    "LLAMAINDEX_PLUGIN",
    "CollectPlugin",
    "Generation",
    "ResponseSource",
    "RetryPolicy",
    "SourceSpec",
    "TimedGeneration",
    "generate_with_retries",
    "import_object",
    "parse_settings",
    "resolve_source",
    "sync_generate",
]


# -- the core's only edge to the adapter packages (layer 5) ----------------------------------
# This block is the one place shared_router names langchain_hybrid or llamaindex_hybrid: their
# collect-time plugins are imported by these module names, only when a SPEC needs one.


@dataclass(frozen=True)
class CollectPlugin:
    """An adapter's collect-time plugin, which makes its framework's models response sources.

    Attributes:
        module: The plugin module.
        extra: The hybrid-llm extra that installs the plugin's framework.
        framework_root: The top-level package of the framework's model classes.
        source_class: The class in ``module`` that wraps one such model as a
            :class:`ResponseSource` (it raises ``TypeError`` for another kind of object).
    """

    module: str
    extra: str
    framework_root: str
    source_class: str

    def load(self, spec: str) -> ModuleType:
        """Import the plugin for ``spec``.

        Args:
            spec: The SPEC that needs the plugin, for the error message.

        Returns:
            The plugin module.

        Raises:
            MissingDependencyError: If the plugin or its framework is not installed; the
                message names the extra to install.
        """
        return require_extra(self.module, extra=self.extra, purpose=f"model SPEC {spec!r}")

    def handles(self, model: object) -> bool:
        """Whether ``model`` is an instance of one of this plugin's framework classes."""
        return any(
            cls.__module__.split(".")[0] == self.framework_root for cls in type(model).__mro__
        )


LANGCHAIN_PLUGIN = CollectPlugin(
    module="langchain_hybrid.collect_source",
    extra="collect",
    framework_root="langchain_core",
    source_class="ChatModelSource",
)
"""LangChain chat models; its ``init_chat_model_source`` also makes ``provider:model`` SPECs."""

LLAMAINDEX_PLUGIN = CollectPlugin(
    module="llamaindex_hybrid.collect_source",
    extra="llamaindex",
    framework_root="llama_index",
    source_class="LlamaIndexSource",
)
"""LlamaIndex LLMs."""

COLLECT_PLUGINS: tuple[CollectPlugin, ...] = (LANGCHAIN_PLUGIN, LLAMAINDEX_PLUGIN)
"""The adapters' collect-time plugins, in the order a model object is matched against them."""

# The providers LangChain's init_chat_model knows by name (langchain 1.x, ``_BUILTIN_PROVIDERS``).
CHAT_MODEL_PROVIDERS: tuple[str, ...] = (
    "anthropic",
    "anthropic_bedrock",
    "azure_ai",
    "azure_openai",
    "baseten",
    "bedrock",
    "bedrock_converse",
    "bedrock_mantle_anthropic",
    "bedrock_mantle_openai",
    "cohere",
    "deepseek",
    "fireworks",
    "google_anthropic_vertex",
    "google_genai",
    "google_vertexai",
    "groq",
    "huggingface",
    "ibm",
    "langsmith",
    "litellm",
    "meta",
    "mistralai",
    "nvidia",
    "ollama",
    "openai",
    "openrouter",
    "perplexity",
    "together",
    "upstage",
    "xai",
)

SPEC_FORMS = (
    "'provider:model' with a LangChain init_chat_model provider (for example openai:gpt-4o-mini, "
    "anthropic:claude-3-5-haiku-latest, ollama:llama3.1; providers: "
    + ", ".join(CHAT_MODEL_PROVIDERS)
    + ") or 'module:callable' naming an importable Python module and a callable in it that "
    "returns a LangChain chat model, a LlamaIndex LLM or an object with async generate(prompt)"
)


@dataclass(frozen=True)
class SourceSpec:
    """A SPEC with its settings: a picklable recipe for a :class:`ResponseSource`.

    Attributes:
        spec: ``provider:model`` or ``module:callable`` (see the module docstring).
        settings: Keyword arguments for ``init_chat_model`` or for the callable.
    """

    spec: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> ResponseSource:
        """Build the response source (see :func:`resolve_source`)."""
        return resolve_source(self.spec, self.settings)


def resolve_source(spec: str, settings: Mapping[str, Any] | None = None) -> ResponseSource:
    """Turn a SPEC into a response source.

    Args:
        spec: ``provider:model`` or ``module:callable``.
        settings: Keyword arguments for ``init_chat_model`` or for the callable.

    Returns:
        A :class:`ResponseSource`.

    Raises:
        DataError: If the SPEC has neither form (the message lists the accepted forms), the
            provider package it needs is missing (the message names it), or the callable
            returns something that cannot answer prompts.
        MissingDependencyError: If the hybrid-llm extra a SPEC needs is not installed (the
            message names the pip command).
    """
    options = dict(settings or {})
    left, _, right = spec.partition(":")
    if not left or not right:
        raise DataError(f"unknown model SPEC {spec!r}; accepted forms: {SPEC_FORMS}")
    if left in CHAT_MODEL_PROVIDERS:
        return _from_provider_spec(spec, options)
    if not _is_module(left):
        raise DataError(
            f"unknown model SPEC {spec!r}: {left!r} is neither a known provider nor an "
            f"importable module; accepted forms: {SPEC_FORMS}"
        )
    target = import_object(spec, what="model SPEC")
    if _is_model(target) or not callable(target):
        if options:
            raise DataError(
                f"model SPEC {spec!r} names a model, not a factory; it takes no settings"
            )
        return _as_source(target, spec)
    try:
        model = target(**options)
    except Exception as exc:
        raise DataError(f"model SPEC {spec!r} could not be created: {exc}") from exc
    return _as_source(model, spec)


def _from_provider_spec(spec: str, options: dict[str, Any]) -> ResponseSource:
    plugin = LANGCHAIN_PLUGIN.load(spec)
    try:
        source: ResponseSource = plugin.init_chat_model_source(spec, options)
    except MissingDependencyError:
        raise
    except ImportError as exc:
        raise DataError(f"model SPEC {spec!r} needs a package that is missing: {exc}") from exc
    except Exception as exc:
        raise DataError(f"model SPEC {spec!r} could not be created: {exc}") from exc
    return source


def _as_source(model: Any, spec: str) -> ResponseSource:
    plugin = next((plugin for plugin in COLLECT_PLUGINS if plugin.handles(model)), None)
    if plugin is not None:
        source_class = getattr(plugin.load(spec), plugin.source_class)
        try:
            source: ResponseSource = source_class(model)
        except TypeError as exc:  # a framework object that is not a chat model or an LLM
            raise DataError(f"model SPEC {spec!r} gave an unusable model: {exc}") from exc
        return source
    if _is_plain_source(model):
        return model  # type: ignore[no-any-return]
    raise DataError(
        f"model SPEC {spec!r} gave a {type(model).__name__}; it must give a LangChain chat "
        "model, a LlamaIndex LLM or an object with `async def generate(prompt) -> Generation` "
        "or `def generate_sync(prompt) -> Generation`"
    )


def _is_plain_source(obj: Any) -> bool:
    """Whether ``obj`` answers prompts itself (async ``generate`` or blocking ``generate_sync``)."""
    return inspect.iscoroutinefunction(getattr(obj, "generate", None)) or (
        sync_generate(obj) is not None
    )


def _is_model(obj: Any) -> bool:
    """Whether ``obj`` is already a model object rather than a factory (or class) for one."""
    if isinstance(obj, type):
        return False
    return any(plugin.handles(obj) for plugin in COLLECT_PLUGINS) or _is_plain_source(obj)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def import_object(target: str, *, what: str) -> Any:
    """Import ``module:attribute`` (the attribute may be dotted, ``module:Class.method``).

    Args:
        target: ``module:attribute``.
        what: What the target is for, used in error messages (``"metric"``).

    Returns:
        The attribute.

    Raises:
        DataError: If the module cannot be imported or lacks the attribute.
    """
    module_name, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise DataError(f"{what} {target!r}: cannot import module {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise DataError(f"{what} {target!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


def parse_settings(
    pairs: Sequence[str] = (), json_text: str | None = None, *, option: str
) -> dict[str, Any]:
    """Read settings given on the command line.

    ``json_text`` is a JSON object; each of ``pairs`` is ``key=value`` where the value is
    read as JSON when it parses (``0.7``, ``true``, ``[1, 2]``) and as a string otherwise.
    Pairs override keys of the JSON object.

    Args:
        pairs: ``key=value`` strings.
        json_text: A JSON object, or None.
        option: The option's name, for error messages.

    Returns:
        The settings.

    Raises:
        DataError: If the JSON is not an object or a pair has no ``=``.
    """
    settings: dict[str, Any] = {}
    if json_text:
        try:
            loaded = json.loads(json_text)
        except ValueError as exc:
            raise DataError(f"{option} must be a JSON object, got {json_text!r}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise DataError(f"{option} must be a JSON object, got {json_text!r}")
        settings.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"{option} takes key=value, got {pair!r}")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value
    return settings
