"""``collect`` keeps the token log-probabilities a LangChain chat model reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from shared_router.pipeline.collect import collect
from shared_router.pipeline.settings import EngineSettings
from shared_router.pipeline.sources import RetryPolicy, SourceSpec

QUIET = EngineSettings(concurrency=1, retry=RetryPolicy(attempts=1, timeout=5.0), progress=False)


class LogprobChat(BaseChatModel):
    """Replies "ok" with OpenAI-shaped log-probabilities in ``response_metadata``, as
    ``ChatOpenAI(logprobs=True)`` does; ``with_logprobs=False`` replies without them."""

    with_logprobs: bool = True

    @property
    def _llm_type(self) -> str:
        return "logprob-stand-in"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        content = [{"token": "o", "logprob": -0.5}, {"token": "k", "logprob": -0.25}]
        metadata = {"logprobs": {"content": content}} if self.with_logprobs else {}
        message = AIMessage(content="ok", response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_a_chat_models_logprobs_reach_the_data_file(tmp_path: Path) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "Say ok."}\n', encoding="utf-8")
    out = tmp_path / "data.jsonl"
    specs = {
        "small": SourceSpec(f"{__name__}:LogprobChat"),
        "large": SourceSpec(f"{__name__}:LogprobChat", {"with_logprobs": False}),
    }
    collect(queries, out, specs, samples={"small": 2}, engine=QUIET)
    entry = json.loads(out.read_text(encoding="utf-8"))["models"]
    assert entry["small"]["token_logprobs"] == [[-0.5, -0.25], [-0.5, -0.25]]
    assert "token_logprobs" not in entry["large"]
