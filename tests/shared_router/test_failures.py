"""Which small-model errors fall back to the large model."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from langchain_core.exceptions import OutputParserException
from pydantic import BaseModel, ValidationError

from shared_router.errors import ConfigurationError
from shared_router.routing.failures import FallbackPolicy, is_provider_error


class _Answer(BaseModel):
    value: int


def _validation_error() -> ValidationError:
    try:
        _Answer.model_validate({"value": "not a number"})
    except ValidationError as error:
        return error
    raise AssertionError("the model accepted a bad value")


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("read timed out"),
        asyncio.TimeoutError(),
        ConnectionRefusedError("connection refused"),
        socket.gaierror("name lookup failed"),
        httpx.ConnectError("all connection attempts failed"),
        httpx.ReadTimeout("timed out"),
        OutputParserException("not JSON"),
        json.JSONDecodeError("Expecting value", "", 0),
    ],
    ids=lambda error: type(error).__name__,
)
def test_provider_failures_fall_back(error: Exception) -> None:
    assert is_provider_error(error)
    assert FallbackPolicy().falls_back(error)


def test_a_parse_failure_of_structured_output_falls_back() -> None:
    assert is_provider_error(_validation_error())


@pytest.mark.parametrize(
    "error",
    [
        TypeError("unexpected keyword argument 'temprature'"),
        AttributeError("'NoneType' object has no attribute 'content'"),
        RuntimeError("Event loop is closed"),
        KeyError("choices"),
        ValueError("bad value"),
        KeyboardInterrupt(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_programming_errors_propagate(error: BaseException) -> None:
    assert not is_provider_error(error)
    assert not FallbackPolicy().falls_back(error)


def test_a_programming_error_of_a_provider_client_still_propagates() -> None:
    class ClientTypeError(TypeError):
        __module__ = "openai._client"

    assert not is_provider_error(ClientTypeError("bad argument"))


def test_an_error_defined_by_a_provider_client_falls_back() -> None:
    class RateLimitError(Exception):
        __module__ = "openai._exceptions"

    class Subclass(RateLimitError):
        __module__ = "my_app.errors"

    assert is_provider_error(RateLimitError("429"))
    assert is_provider_error(Subclass("429"))


def test_exceptions_to_handle_replaces_the_rule() -> None:
    policy = FallbackPolicy(exceptions_to_handle=(KeyError,))
    assert policy.falls_back(KeyError("x"))
    assert not policy.falls_back(TimeoutError("slow"))
    assert FallbackPolicy(exceptions_to_handle=[Exception]).falls_back(RuntimeError("any"))


def test_a_disabled_policy_never_falls_back() -> None:
    assert not FallbackPolicy(enabled=False).falls_back(TimeoutError("slow"))


@pytest.mark.parametrize("handled", [(), ("TimeoutError",), (TimeoutError, 3)])
def test_exceptions_to_handle_must_be_exception_classes(handled: tuple[object, ...]) -> None:
    with pytest.raises(ConfigurationError, match="exceptions_to_handle"):
        FallbackPolicy(exceptions_to_handle=handled)  # type: ignore[arg-type]
