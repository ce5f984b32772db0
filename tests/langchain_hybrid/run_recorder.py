"""A callback handler that records every run's id, parent, name, tags, metadata and tokens."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler


@dataclass
class RecordedRun:
    """One run as the handler saw it."""

    run_id: UUID
    parent_run_id: UUID | None
    kind: str
    name: str
    tags: list[str]
    metadata: dict[str, Any]
    tokens: list[str] = field(default_factory=list)


class RunRecorder(BaseCallbackHandler):
    """Records chain and chat-model runs (with their streamed tokens) in start order."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RecordedRun] = []
        self._lock = threading.Lock()

    def _start(self, kind: str, serialized: Any, kwargs: dict[str, Any]) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or ""
        if not name and serialized:
            name = (serialized.get("id") or [""])[-1]
        run = RecordedRun(
            run_id=kwargs["run_id"],
            parent_run_id=kwargs.get("parent_run_id"),
            kind=kind,
            name=str(name),
            tags=list(kwargs.get("tags") or []),
            metadata=dict(kwargs.get("metadata") or {}),
        )
        with self._lock:
            self.runs.append(run)

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self._start("chain", serialized, kwargs)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self._start("chat_model", serialized, kwargs)

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        with self._lock:
            for run in self.runs:
                if run.run_id == kwargs["run_id"]:
                    run.tokens.append(token)

    def named(self, name: str) -> list[RecordedRun]:
        """The runs called ``name``."""
        return [run for run in self.runs if run.name == name]

    def tagged(self, tag: str) -> list[RecordedRun]:
        """The runs tagged ``tag``."""
        return [run for run in self.runs if tag in run.tags]

    @property
    def tokens(self) -> str:
        """Every streamed token of every run, joined."""
        return "".join(token for run in self.runs for token in run.tokens)
