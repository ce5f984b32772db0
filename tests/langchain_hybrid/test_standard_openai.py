"""The langchain-tests standard suites over a real provider class: ChatOpenAI, both inner models.

Both inner models are ``ChatOpenAI`` (langchain-openai) pointed at a small OpenAI-compatible
server this module starts on 127.0.0.1 (:mod:`tests.langchain_hybrid.openai_server`), so the
provider's real code paths run: its HTTP client, request building, SSE parsing, usage,
tool-call and ``response_format`` handling. The router is the planted real router.

The suites skip what :mod:`tests.langchain_hybrid.test_standard` skips, for the same reasons
(``test_init_from_env``, ``test_serdes``, ``test_json_mode``, the media tests,
``test_stream_time``). The module skips where langchain-openai is not installed (it is in the
``test`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_openai", reason="needs langchain-openai (the test extra)")

from langchain.chat_models import init_chat_model  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langchain_tests.integration_tests import ChatModelIntegrationTests  # noqa: E402
from langchain_tests.unit_tests import ChatModelUnitTests  # noqa: E402

from langchain_hybrid import ChatHybrid  # noqa: E402
from tests.langchain_hybrid.conftest import EASY, HARD  # noqa: E402
from tests.langchain_hybrid.openai_server import OpenAIStandInServer, running_server  # noqa: E402

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStandInServer]:
    """The OpenAI-compatible stand-in server, for the whole module."""
    with running_server() as running:
        yield running


def _chat_openai(server: OpenAIStandInServer, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url=server.base_url, api_key="test", stream_usage=True, max_retries=0
    )


class _OpenAIPairParams:
    """Builds ChatHybrid over two ChatOpenAI models talking to the stand-in server."""

    router: Any
    base: OpenAIStandInServer

    @pytest.fixture(autouse=True)
    def _pair(self, planted_router: Any, server: OpenAIStandInServer) -> None:
        self.router = planted_router
        self.base = server

    @property
    def chat_model_class(self) -> type[ChatHybrid]:
        return ChatHybrid

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "small": _chat_openai(self.base, "gpt-4o-mini"),
            "large": _chat_openai(self.base, "gpt-4o"),
            "router": self.router,
        }


class TestChatHybridOverChatOpenAIUnit(_OpenAIPairParams, ChatModelUnitTests):
    """Construction, standard params, tool binding and structured output over ChatOpenAI."""


class TestChatHybridOverChatOpenAIIntegration(_OpenAIPairParams, ChatModelIntegrationTests):
    """Invoke, stream, batch, async, usage, tools, agents and structured output over HTTP."""

    @property
    def model_override_value(self) -> str:
        """A per-call ``model=`` reaches the request (the server echoes it)."""
        return "gpt-4.1-nano"

    @property
    def supports_anthropic_inputs(self) -> bool:
        """Anthropic-format content blocks and tool dicts pass through ChatHybrid untouched."""
        return False


def test_from_specs_builds_the_pair_with_init_chat_model(
    server: OpenAIStandInServer, planted_router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    llm = ChatHybrid.from_specs(
        "openai:gpt-4o-mini", "openai:gpt-4o", router=planted_router, max_quality_drop=0.05
    )
    assert isinstance(llm.small, ChatOpenAI) and isinstance(llm.large, ChatOpenAI)
    assert llm.max_quality_drop == 0.05
    assert llm.invoke(EASY).text == f"gpt-4o-mini answers: {EASY}"
    assert llm.invoke(HARD).response_metadata["model_name"] == "gpt-4o"


def test_an_init_chat_model_configurable_inner_model_is_configured_per_call(
    server: OpenAIStandInServer, planted_router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    small = init_chat_model("openai:gpt-4o-mini", configurable_fields=("model",))
    llm = ChatHybrid(small=small, large=_chat_openai(server, "gpt-4o"), router=planted_router)
    assert llm.invoke(EASY).text == f"gpt-4o-mini answers: {EASY}"
    other = llm.invoke(EASY, {"configurable": {"model": "gpt-4.1-nano"}})
    assert other.text == f"gpt-4.1-nano answers: {EASY}"


def test_real_provider_streams_once_and_nests_its_run(
    server: OpenAIStandInServer, planted_router: Any
) -> None:
    from langchain_core.callbacks import get_usage_metadata_callback

    from tests.langchain_hybrid.run_recorder import RunRecorder

    llm = ChatHybrid(
        small=_chat_openai(server, "gpt-4o-mini"),
        large=_chat_openai(server, "gpt-4o"),
        router=planted_router,
    )
    recorder = RunRecorder()
    with get_usage_metadata_callback() as usage:
        chunks = list(llm.stream(EASY, {"callbacks": [recorder]}))
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert recorder.tokens == message.text == f"gpt-4o-mini answers: {EASY}"
    (hybrid,) = recorder.named("ChatHybrid")
    (inner,) = recorder.tagged("hybrid:small")
    assert inner.parent_run_id == hybrid.run_id
    assert usage.usage_metadata == {"gpt-4o-mini": message.usage_metadata}
