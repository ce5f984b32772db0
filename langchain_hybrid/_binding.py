"""What ChatHybrid's ``bind``, ``with_config`` and ``with_structured_output`` return.

LangChain's :class:`~langchain_core.runnables.RunnableBinding` forwards ``bind_tools`` and
``with_structured_output`` to the model it binds, so ``llm.with_config(configurable=...)
.bind_tools(...)`` (what ``create_agent`` does with the model it is given) or
``llm.bind(threshold=0.9).with_structured_output(S)`` would lose the binding's config and
keywords, and with them the quality level. :class:`HybridBinding` keeps them: tools and
schemas are bound on ChatHybrid, then the binding's config and keywords are applied again.

:class:`HybridStructuredOutput` is ChatHybrid's structured-output runnable: it takes the
routing keywords per call (``structured.invoke(x, threshold=0.9)``) and runs under a
``ChatHybrid`` run like every other call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from typing_extensions import override

from langchain_hybrid._structured_output import StructuredOutput

if TYPE_CHECKING:
    from langchain_hybrid._routed_calls import RoutedCalls

__all__ = ["HybridBinding", "HybridStructuredOutput"]


class HybridBinding(RunnableBinding[LanguageModelInput, Any]):
    """A binding of ChatHybrid that keeps its config and keywords through tools and schemas."""

    @classmethod
    @override
    def lc_id(cls) -> list[str]:
        """Serialized as the :class:`~langchain_core.runnables.RunnableBinding` it is."""
        return [*cls.get_lc_namespace(), "RunnableBinding"]

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> HybridBinding:
        """ChatHybrid's ``bind_tools``, with this binding's config and keywords kept.

        Returns:
            The binding with the tools added (they replace tools bound before).
        """
        with_tools: HybridBinding = self.bound.bind_tools(tools, **kwargs)  # type: ignore[attr-defined]
        merged: HybridBinding = self.model_copy(
            update={"kwargs": {**self.kwargs, **with_tools.kwargs}}
        )
        return merged

    def with_structured_output(
        self, schema: dict[str, Any] | type, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """ChatHybrid's ``with_structured_output``, with this binding's config and keywords.

        Returns:
            The structured-output runnable, bound with this binding's keywords and config.
        """
        structured: Runnable[LanguageModelInput, Any] = self.bound.with_structured_output(  # type: ignore[attr-defined]
            schema, **kwargs
        )
        return RunnableBinding(
            bound=structured,
            kwargs=dict(self.kwargs),
            config=self.config,
            config_factories=list(self.config_factories),
        )


class HybridStructuredOutput(Runnable[LanguageModelInput, Any]):
    """ChatHybrid with a schema: routes each call, then the chosen model's structured output.

    Args:
        calls: Makes the call's :class:`~langchain_hybrid._routed_calls.RoutedCalls` from
            ChatHybrid's current fields.
        output: The two models' structured output for the schema.
    """

    name = "ChatHybrid"

    def __init__(self, calls: Callable[[], RoutedCalls], output: StructuredOutput) -> None:
        self._calls = calls
        self._output = output

    @override
    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        return self._calls().structured(input, ensure_config(config), kwargs, self._output)

    @override
    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        return await self._calls().astructured(input, ensure_config(config), kwargs, self._output)
