"""hybrid-llm for LangChain: ``ChatHybrid`` sends each call to a small or a large chat model."""

from langchain_hybrid.chat_models import ChatHybrid

__all__ = ["ChatHybrid"]
