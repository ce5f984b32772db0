"""The flags several ``hybrid-llm`` commands share, and the objects their values become.

A flag value the library cannot take becomes a one-line error on stderr and exit code 2
(:func:`fail`), as every other bad input does. The router flags of ``train`` and ``build``
become a :class:`RouterFlags`, which makes the untrained router.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import typer

from shared_router._internal.extras import require_extra
from shared_router.errors import EncoderError

if TYPE_CHECKING:
    from shared_router.data import PairData
    from shared_router.encoders.cache import EmbeddingCache
    from shared_router.routing.router import Router
    from shared_router.training.labels import LabelKind

__all__ = [
    "EXIT_BAD_INPUT",
    "CacheOption",
    "EncoderOption",
    "EpochsOption",
    "HeadOption",
    "HiddenOption",
    "LabelsOption",
    "LargeInDataOption",
    "PrecisionOption",
    "RouterFlags",
    "RouterOption",
    "ScoreFieldOption",
    "SeedOption",
    "SmallInDataOption",
    "embedding_cache",
    "fail",
    "label_type",
    "read_pair",
    "require_plot_extra",
]

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with code 2.

    Args:
        message: What went wrong and how to fix it.
    """
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


RouterOption = typer.Option("default", "--router", "-r", help="'default' or a router folder.")
CacheOption = typer.Option(
    True,
    "--cache/--no-cache",
    help="Cache embeddings on disk ($HYBRID_LLM_CACHE or ~/.cache/hybrid-llm).",
)

# The model pair in a data file (train, calibrate, evaluate).
SmallInDataOption = typer.Option(..., help="The small model's name in the data.")
LargeInDataOption = typer.Option(..., help="The large model's name in the data.")
ScoreFieldOption = typer.Option("score", help="Per-model quality field.")

# The router to train (train, build).
LabelsOption = typer.Option("trans", help="Label type: det, prob or trans.")
EncoderOption = typer.Option("default", help="Sentence-transformers model name or path.")
HeadOption = typer.Option(
    "mlp",
    help="Head: mlp (trained with AdamW; --hidden sets its layers) or logistic (exact L2-"
    "regularised logistic regression, strength chosen on val; numpy only, no torch).",
)
HiddenOption = typer.Option("256", help="Hidden sizes, comma-separated; '' is linear.")
EpochsOption = typer.Option(100, help="Most epochs (early stopping on val).")
SeedOption = typer.Option(0, help="Random seed.")
PrecisionOption = typer.Option(
    "int8",
    help="Encoder precision: int8 (as the bundled router: as good on the benchmarks, ~2x "
    "faster to train and ~2x faster to route than fp32) or fp32. A router routes at the "
    "precision it was trained on.",
)


def embedding_cache(enabled: bool) -> EmbeddingCache | None:
    """The on-disk embedding cache for ``--cache``, or None for ``--no-cache``.

    A cache that cannot be opened is warned about and the command goes on without one, as an
    :class:`~shared_router.encoders.encoder.Encoder` does: a cache is never a failure.
    """
    from shared_router.encoders.cache import EmbeddingCache

    if not enabled:
        return None
    try:
        return EmbeddingCache()
    except EncoderError as exc:
        logger.warning("%s; going on without an embedding cache", exc)
        return None


def read_pair(data: Path | list[Path], small: str, large: str, score_field: str) -> PairData:
    """The pair's rows from ``data``, as :func:`~shared_router.data.load_pair` reads them.

    Lines where one model of the pair has no quality are left out, and said so on stderr,
    so that a user sees how many rows a command really used.
    """
    from shared_router.data import load_pair

    pair = load_pair(data, small, large, score_field=score_field)
    if pair.skipped:
        typer.echo(
            f"note: {pair.skipped:,} of {pair.skipped + len(pair):,} lines have no "
            f"{score_field!r} for {small!r} or {large!r} and are left out",
            err=True,
        )
    return pair


def require_plot_extra(plot: Path | None) -> None:
    """Fail before any work or any file is written when ``--plot`` is given without matplotlib.

    Raises:
        MissingDependencyError: When ``plot`` is set and matplotlib cannot be imported; names
            the ``plot`` extra.
    """
    if plot is not None:
        require_extra("matplotlib", extra="plot", purpose=f"--plot {plot}")


def label_type(labels: str) -> LabelKind:
    """The ``--labels`` value, checked."""
    if labels not in ("det", "prob", "trans"):
        fail(f"--labels must be det, prob or trans, got {labels!r}")
    return "det" if labels == "det" else "prob" if labels == "prob" else "trans"


@dataclass(frozen=True)
class RouterFlags:
    """The flags of ``train`` and ``build`` that shape the router to train.

    Attributes:
        encoder: ``--encoder``: a sentence-transformers model name or path.
        precision: ``--precision``: ``int8`` or ``fp32`` (the encoder checks it).
        cache: ``--cache/--no-cache``: cache embeddings on disk.
        head: ``--head``: ``mlp`` or ``logistic``.
        hidden: ``--hidden``: comma-separated hidden sizes of the MLP head.
        epochs: ``--epochs``: most training epochs.
        seed: ``--seed``: the random seed.
    """

    encoder: str
    precision: str
    cache: bool
    head: str
    hidden: str
    epochs: int
    seed: int

    def router(self, *, name: str, fine_tune: bool = False, progress: bool = True) -> Router:
        """The untrained router these flags describe.

        Args:
            name: The router's name.
            fine_tune: Fine-tune the encoder too.
            progress: Show training progress.
        """
        from shared_router.encoders.encoder import Encoder
        from shared_router.routing.router import Router

        return Router(
            Encoder(self.encoder, precision=self.precision, cache=embedding_cache(self.cache)),  # type: ignore[arg-type]
            head_type=self._head_type(),
            hidden_sizes=() if self.head == "logistic" else self._hidden_sizes(),
            epochs=self.epochs,
            seed=self.seed,
            fine_tune=fine_tune,
            progress=progress,
            name=name,
        )

    def _head_type(self) -> Literal["mlp", "logistic"]:
        if self.head not in ("mlp", "logistic"):
            fail(f"--head must be mlp or logistic, got {self.head!r}")
        return "mlp" if self.head == "mlp" else "logistic"

    def _hidden_sizes(self) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in self.hidden.split(",") if part.strip())
        except ValueError:
            fail(
                "--hidden must be comma-separated integers such as '256' or '512,128', "
                f"got {self.hidden!r}"
            )
