"""Answer-quality metrics that run a neural model: BARTScore and embedding similarity.

:class:`BartScoreMetric` is the Hybrid LLM paper's metric. BARTScore is an average
log-likelihood ``(1/m) sum_t log p(y_t | y_<t, x)`` (at most 0); ``exp`` of it is the
geometric mean of the token probabilities, which lies in (0, 1] and keeps BARTScore's
ordering. It needs torch and transformers (``pip install 'hybrid-llm[train]'``).
:class:`EmbeddingMetric` is the cosine similarity of the response's and the reference's
sentence embeddings, with the package's own encoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared_router._internal.extras import require_extra
from shared_router.errors import DataError
from shared_router.pipeline.quality_base import (
    Judgement,
    QualityMetric,
    ScoreItem,
    require_reference,
)

__all__ = ["BartScoreMetric", "EmbeddingMetric"]


class EmbeddingMetric(QualityMetric):
    """Cosine similarity of response and reference embeddings, clipped to [0, 1].

    Negative similarities (rare with sentence encoders) count as 0.

    Args:
        encoder: An encoder name or folder for :class:`shared_router.encoders.encoder.Encoder`
            (``"default"`` is the bundled all-MiniLM-L6-v2).
        batch_size: Texts per forward pass.
    """

    name = "embedding"

    def __init__(self, encoder: str = "default", batch_size: int = 32) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self._encoder: Any = None

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score each response by its embedding's cosine similarity to the reference's."""
        if not items:
            return []
        if self._encoder is None:
            from shared_router.encoders.encoder import Encoder

            self._encoder = Encoder(self.encoder, batch_size=self.batch_size)
        references = [require_reference(i, self.name) for i in items]
        vectors = np.asarray(
            self._encoder.encode([i.response for i in items] + references), dtype=np.float64
        )
        responses, refs = vectors[: len(items)], vectors[len(items) :]
        norms = np.linalg.norm(responses, axis=1) * np.linalg.norm(refs, axis=1)
        dots = np.einsum("ij,ij->i", responses, refs)
        cosine = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        return [Judgement(float(np.clip(c, 0.0, 1.0))) for c in cosine]


class BartScoreMetric(QualityMetric):
    """BARTScore mapped to [0, 1]: ``exp(mean_t log p(y_t | y_<t, x))`` under BART.

    ``y`` is the response; ``x`` is the query (``source="query"``, reference-free, as the
    Hybrid LLM paper scores responses) or the reference answer (``source="reference"``).
    Texts are truncated to the model's length limit.

    Args:
        model: A sequence-to-sequence checkpoint name or local folder (BARTScore uses
            ``facebook/bart-large-cnn``).
        source: ``"query"`` or ``"reference"``.
        batch_size: Pairs per forward pass.
        device: A torch device; None picks CUDA when available, else CPU.
        max_length: Most tokens per text (also capped by the model's positions).
    """

    name = "bartscore"

    def __init__(
        self,
        model: str = "facebook/bart-large-cnn",
        source: str = "query",
        batch_size: int = 4,
        device: str | None = None,
        max_length: int = 1024,
    ) -> None:
        if source not in ("query", "reference"):
            raise DataError(f"bartscore: source must be 'query' or 'reference', got {source!r}")
        if batch_size < 1 or max_length < 2:
            raise DataError(
                f"bartscore: batch_size must be >= 1 and max_length >= 2, got {batch_size}, "
                f"{max_length}"
            )
        self.model = model
        self.source = source
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self._loaded: _LoadedBart | None = None

    @property
    def needs_reference(self) -> bool:
        """Whether the reference is the conditioning text (``source="reference"``)."""
        return self.source == "reference"

    def score_batch(self, items: Sequence[ScoreItem]) -> list[Judgement]:
        """Score each response by its BARTScore, mapped to (0, 1]."""
        bart = self._load()
        out: list[Judgement] = []
        for start in range(0, len(items), self.batch_size):
            out.extend(self._score_chunk(bart, items[start : start + self.batch_size]))
        return out

    def _score_chunk(self, bart: _LoadedBart, chunk: Sequence[ScoreItem]) -> list[Judgement]:
        torch, device = bart.torch, bart.device
        sources = [
            i.query if self.source == "query" else require_reference(i, self.name) for i in chunk
        ]
        options: dict[str, Any] = {
            "max_length": bart.max_length,
            "truncation": True,
            "padding": True,
            "return_tensors": "pt",
        }
        encoded = bart.tokenizer(sources, **options)
        targets = bart.tokenizer([i.response for i in chunk], **options)
        labels = targets["input_ids"].to(device)
        mask = targets["attention_mask"].to(device).to(torch.float64)
        with torch.no_grad():
            logits = bart.model(
                input_ids=encoded["input_ids"].to(device),
                attention_mask=encoded["attention_mask"].to(device),
                labels=labels,
            ).logits
        log_probs = torch.log_softmax(logits.to(torch.float64), dim=-1)
        token_log_probs = log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        mean = (token_log_probs * mask).sum(dim=1) / mask.sum(dim=1)
        return [Judgement(float(math.exp(v))) for v in mean.tolist()]

    def _load(self) -> _LoadedBart:
        if self._loaded is None:
            purpose = "the bartscore metric"
            torch = require_extra("torch", extra="train", purpose=purpose)
            transformers = require_extra("transformers", extra="train", purpose=purpose)
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.model)
                seq2seq = transformers.AutoModelForSeq2SeqLM.from_pretrained(self.model)
                model = seq2seq.to(device).eval()
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"bartscore: cannot load model {self.model!r} ({exc}); pass a local "
                    "checkpoint folder with --metric-arg model=PATH"
                ) from exc
            positions = getattr(model.config, "max_position_embeddings", None) or self.max_length
            max_length = min(self.max_length, int(positions))
            self._loaded = _LoadedBart(torch, tokenizer, model, device, max_length)
        return self._loaded


@dataclass(frozen=True)
class _LoadedBart:
    """What BARTScore computes with, loaded once per metric."""

    torch: Any
    tokenizer: Any
    model: Any
    device: str
    max_length: int
