"""The langchain-tests standard suites, run on ChatHybrid over two offline stand-in models.

The router is the planted real router (real MiniLM encoder), so each call is routed for
real; the stand-ins stream, report usage and call tools, as hosted chat models do.

The suites skip, each with its reason: ``test_init_from_env`` (ChatHybrid reads no
environment variable), ``test_serdes`` (not lc-serializable: it holds a router object and two
arbitrary chat models), ``test_json_mode`` (the stand-ins have no JSON mode; ChatHybrid passes
``method`` to the inner models), the image, PDF and audio tests (they download files, sockets
are off, and the stand-ins read no media; ChatHybrid passes such content through and routes on
its text) and ``test_stream_time`` (no HTTP to record with VCR). ``test_anthropic_inputs``
runs without its image part.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_hybrid import ChatHybrid
from tests.langchain_hybrid.stand_ins import StandInChatModel


class _PlantedRouterParams:
    """Builds ChatHybrid over two stand-ins, routed by the session's planted router."""

    router: Any

    @pytest.fixture(autouse=True)
    def _use_planted_router(self, planted_router: Any) -> None:
        self.router = planted_router

    @property
    def chat_model_class(self) -> type[ChatHybrid]:
        return ChatHybrid

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "small": StandInChatModel(model="small-stand-in"),
            "large": StandInChatModel(model="large-stand-in"),
            "router": self.router,
        }


class TestChatHybridUnit(_PlantedRouterParams, ChatModelUnitTests):
    """Construction, standard params, tool binding and structured output wrappers."""


class TestChatHybridIntegration(_PlantedRouterParams, ChatModelIntegrationTests):
    """Invoke, stream, batch, async, usage, tools, agents and structured output end to end."""

    @property
    def model_override_value(self) -> str:
        """A per-call ``model=`` reaches the answering model (the stand-ins report it)."""
        return "override-stand-in"

    @property
    def supports_anthropic_inputs(self) -> bool:
        """Anthropic-format content blocks and tool dicts pass through ChatHybrid untouched."""
        return True
