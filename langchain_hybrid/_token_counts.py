"""ChatHybrid's token counts and model profile: those of its two inner models.

Any call may go to either inner model, so a text's token count is the larger of the two
counts, and the profile is the pair's (:func:`langchain_hybrid._profile.shared_profile`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, ModelProfile
from langchain_core.messages import BaseMessage
from typing_extensions import override

from langchain_hybrid._profile import shared_profile

__all__ = ["TokenCountingChatModel"]


class TokenCountingChatModel(BaseChatModel):
    """A chat model whose token counts and profile are its two inner models'."""

    @abstractmethod
    def _inner_chat_models(self) -> tuple[BaseChatModel | None, BaseChatModel | None]:
        """The chat models under the small and the large model (None: chosen per call)."""

    def _resolve_model_profile(self) -> ModelProfile | None:
        return shared_profile(*self._inner_chat_models())

    def _counters(self) -> list[BaseChatModel]:
        return [model for model in self._inner_chat_models() if model]

    @override
    def get_token_ids(self, text: str) -> list[int]:
        """The small model's token ids of ``text``."""
        counters = self._counters()
        return counters[0].get_token_ids(text) if counters else super().get_token_ids(text)

    @override
    def get_num_tokens(self, text: str) -> int:
        """The most tokens either inner model counts in ``text``."""
        counters = self._counters()
        if not counters:
            return super().get_num_tokens(text)
        return max(model.get_num_tokens(text) for model in counters)

    @override
    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """The most tokens either inner model counts in ``messages`` (with ``tools``)."""
        counters = self._counters()
        if not counters:
            return super().get_num_tokens_from_messages(messages, tools)
        return max(model.get_num_tokens_from_messages(messages, tools) for model in counters)
