"""The langchain-tests standard suites, run on ChatHybrid over two offline stand-in models.

The router is the planted real router (real MiniLM encoder), so each call is routed for
real; the stand-ins stream, report usage and call tools, as hosted chat models do.
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
