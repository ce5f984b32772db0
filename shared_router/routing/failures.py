"""Which errors of the small model make the large model answer instead.

A routed call falls back to the large model when the small model fails *as a provider*: a
timeout, a broken connection, a rate limit, a server error, an answer that could not be
parsed into the structured output asked for. A programming error (a ``TypeError`` from a
bad keyword, an ``AttributeError``, a closed event loop) is not a provider failure: running
the same call on the large model would hide it, so it propagates.

Providers do not share an exception hierarchy, so an error counts as a provider failure
when it, or any exception class it derives from, is

* a built-in network or time-out error (``TimeoutError``, ``ConnectionError`` and the other
  ``socket.gaierror`` of a failed name lookup, ``asyncio.TimeoutError``), or
* defined in the client library of a provider or an HTTP stack (``openai``, ``anthropic``,
  ``httpx``, ``requests``, ``ollama``, ...; see :data:`PROVIDER_MODULES`), or
* an output-parsing error of a framework (LangChain's ``OutputParserException``, pydantic's
  ``ValidationError``), matched by class name and module so this module imports neither.

Both adapters take ``exceptions_to_handle`` like LangChain's ``with_fallbacks``: a tuple of
exception types that replaces this rule (``(Exception,)`` falls back on everything).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from shared_router.errors import ConfigurationError

__all__ = [
    "FALLBACK_FIELDS",
    "PARSE_ERRORS",
    "PROVIDER_MODULES",
    "FallbackPolicy",
    "is_provider_error",
]

FALLBACK_FIELDS = frozenset({"fallback_to_large", "exceptions_to_handle"})
"""The fields of both adapters their :class:`FallbackPolicy` is built from: assigning one
rebuilds the policy."""

PROVIDER_MODULES = frozenset(
    {
        "aiohttp",
        "anthropic",
        "boto3",
        "botocore",
        "cohere",
        "google",
        "groq",
        "httpcore",
        "httpx",
        "huggingface_hub",
        "litellm",
        "mistralai",
        "ollama",
        "openai",
        "requests",
        "together",
        "urllib3",
        "websockets",
    }
)
"""Top-level packages whose exceptions are provider failures (client libraries, HTTP stacks)."""

PARSE_ERRORS = frozenset(
    {
        ("langchain_core.exceptions", "OutputParserException"),
        ("pydantic_core._pydantic_core", "ValidationError"),
        ("json.decoder", "JSONDecodeError"),
    }
)
"""``(module, class name)`` of errors raised when a structured answer cannot be parsed."""

_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
    socket.gaierror,
)

_PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    NameError,
    ImportError,
    AssertionError,
    NotImplementedError,
    RecursionError,
)


def is_provider_error(error: BaseException) -> bool:
    """Return True when ``error`` is a provider's failure to answer (see the module doc).

    Args:
        error: What the small model's call raised.

    Returns:
        Whether the large model should answer instead.
    """
    if isinstance(error, _NETWORK_ERRORS):
        return True
    if isinstance(error, _PROGRAMMING_ERRORS) or not isinstance(error, Exception):
        return False
    for cls in type(error).__mro__:
        module = cls.__module__ or ""
        if module.partition(".")[0] in PROVIDER_MODULES:
            return True
        if (module, cls.__name__) in PARSE_ERRORS:
            return True
    return False


class FallbackPolicy:
    """Decides which small-model errors the large model answers (the adapters' setting).

    Args:
        enabled: False: no error falls back (``fallback_to_large=False``).
        exceptions_to_handle: Exception types that fall back instead of the provider rule of
            :func:`is_provider_error`, as in LangChain's ``with_fallbacks``; None keeps the
            rule.

    Raises:
        ConfigurationError: When ``exceptions_to_handle`` holds something that is not an
            exception class.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        exceptions_to_handle: Sequence[type[BaseException]] | None = None,
    ) -> None:
        if exceptions_to_handle is not None:
            handled = tuple(exceptions_to_handle)
            wrong = [
                item
                for item in handled
                if not (isinstance(item, type) and issubclass(item, BaseException))
            ]
            if wrong or not handled:
                raise ConfigurationError(
                    "exceptions_to_handle must be a non-empty sequence of exception classes, "
                    f"got {exceptions_to_handle!r}; for example (TimeoutError,) or "
                    "(Exception,) to fall back on every error"
                )
            self.exceptions_to_handle: tuple[type[BaseException], ...] | None = handled
        else:
            self.exceptions_to_handle = None
        self.enabled = enabled

    def falls_back(self, error: BaseException) -> bool:
        """Return True when the large model answers after the small one raised ``error``."""
        if not self.enabled:
            return False
        if self.exceptions_to_handle is not None:
            return isinstance(error, self.exceptions_to_handle)
        return is_provider_error(error)

    def __repr__(self) -> str:
        handled = (
            "provider errors"
            if self.exceptions_to_handle is None
            else ", ".join(t.__name__ for t in self.exceptions_to_handle)
        )
        return f"FallbackPolicy(enabled={self.enabled}, handles={handled})"
