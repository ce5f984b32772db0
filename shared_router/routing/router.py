"""The router: fit on labelled queries, score new ones, route them small or large, save, load.

A :class:`Router` is an :class:`~shared_router.encoders.encoder.Encoder` (text -> embedding) and an
:class:`~shared_router.model.head.MLPHead` (embedding -> p(small is good enough)), plus a
:class:`~shared_router.model.calibration.CalibrationTable` that turns quality knobs into thresholds.
A score ``p >= threshold`` goes to the small model: how a knob and a score become a decision
(:meth:`~Router.threshold_for`, :meth:`~Router.route`, :meth:`~Router.route_batch`,
:meth:`~Router.route_scored`) is :class:`~shared_router.routing.decisions.RoutingDecisions`.
:func:`~shared_router.routing.train_router.train_router` runs the paper's recipe on a model pair's
data; :mod:`~shared_router.routing.router_folder` turns a router into a router folder and back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared_router._internal.validation import text_list
from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder, EncoderBackend
from shared_router.errors import RoutingError, TrainingError, UsageError
from shared_router.model.artifacts import save_router_folder
from shared_router.model.calibration import CalibrationTable
from shared_router.model.head import MLPHead
from shared_router.routing.decisions import RoutingDecisions
from shared_router.routing.head_fitting import fit_router_head
from shared_router.routing.router_folder import (
    DEFAULT_ROUTER,
    calibration_summary,
    load_router,
    router_config,
)
from shared_router.training.logistic import DEFAULT_L2_GRID
from shared_router.types import ModelPair, QualityKnobs

__all__ = ["HeadType", "Router"]

HeadType = Literal["mlp", "logistic"]
"""``"mlp"``: an MLP head trained with AdamW (torch); ``"logistic"``: an L2-regularised
logistic regression fitted exactly in numpy, its L2 strength chosen on validation data."""


_DEFAULT_QUALITY_DROP = QualityKnobs(max_quality_drop=0.01)
_UNCALIBRATED_DEFAULT = QualityKnobs(threshold=0.5)


class Router(RoutingDecisions):
    """Routes each query to a small or a large LLM by its predicted difficulty.

    ``__init__`` stores parameters only; :meth:`fit` learns. Scoring and routing are safe
    from many threads at once.

    Args:
        encoder: An :class:`Encoder`, or a name/path for one (``"default"`` is the shipped
            all-MiniLM-L6-v2).
        head_type: ``"mlp"`` trains the head with AdamW and early stopping (the settings
            below); ``"logistic"`` fits an L2-regularised logistic regression exactly
            (:func:`~shared_router.training.logistic.fit_logistic`, numpy only) and picks ``l2`` on
            the validation data. ``"logistic"`` needs validation data when ``l2`` holds several
            values and cannot be combined with ``fine_tune``.
        l2: For ``head_type="logistic"``: one L2 strength, or several to choose from.
        hidden_sizes: Head hidden layer widths; ``()`` is a logistic regression.
        dropout: Head dropout while training.
        lr: Head learning rate (AdamW).
        weight_decay: AdamW weight decay.
        epochs: Most epochs of head training.
        batch_size: Rows per training step.
        patience: Epochs without a better validation loss before stopping.
        seed: Seed of initialisation, shuffling and dropout.
        fine_tune: Fine-tune the encoder together with the head (the paper's setting; needs
            torch, slow on CPU) instead of training the head on frozen embeddings.
        fine_tune_epochs: Most epochs of fine-tuning.
        fine_tune_lr: Encoder learning rate when fine-tuning (the head uses ``lr``).
        device: Torch device for fine-tuning (None lets torch pick).
        progress: Show progress bars while encoding and training.
        name: The router's name (shown in routing records).
        default_knobs: The quality level used when a caller sets none; None means
            ``max_quality_drop=0.01`` for a calibrated router and ``threshold=0.5`` otherwise.

    Attributes:
        head_: The trained head.
        encoder_: The encoder in use (the fine-tuned one after fine-tuning).
        calibration_: The calibration table, or None before :meth:`calibrate`.
        label_type_: ``"det"``, ``"prob"`` or ``"trans"`` when trained by :func:`train_router`;
            ``"det"`` or ``"diff"`` when retrained on live rows.
        t_star_: The relaxation of ``"trans"`` labels, else None.
        pair_: The (small, large) pair it was trained for, or None.
        metadata_: Training facts and metrics (saved to ``config.json``); a
            ``"description"`` (markdown) becomes the model card's "About this router".
    """

    head_: MLPHead
    encoder_: Encoder

    def __init__(
        self,
        encoder: str | Path | Encoder = "default",
        *,
        head_type: HeadType = "mlp",
        l2: float | Sequence[float] = DEFAULT_L2_GRID,
        hidden_sizes: Sequence[int] = (256,),
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        epochs: int = 100,
        batch_size: int = 64,
        patience: int = 8,
        seed: int = 0,
        fine_tune: bool = False,
        fine_tune_epochs: int = 3,
        fine_tune_lr: float = 2e-5,
        device: str | None = None,
        progress: bool = True,
        name: str | None = None,
        default_knobs: QualityKnobs | None = None,
    ) -> None:
        self.encoder = encoder
        self.head_type = head_type
        self.l2 = l2 if isinstance(l2, (int, float)) else tuple(l2)
        self.hidden_sizes = tuple(hidden_sizes)
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.fine_tune = fine_tune
        self.fine_tune_epochs = fine_tune_epochs
        self.fine_tune_lr = fine_tune_lr
        self.device = device
        self.progress = progress
        self.name = name or "hybrid-llm-router"
        self.calibration_: CalibrationTable | None = None
        self.label_type_: str | None = None
        self.t_star_: float | None = None
        self.pair_: ModelPair | None = None
        self.metadata_: dict[str, Any] = {}
        self._knobs = default_knobs
        self._source: str | None = None  # the folder it equals, for pickling (see __reduce__)

    @property
    def default_knobs(self) -> QualityKnobs:
        """The quality level for callers that set none."""
        if self._knobs is not None and not self._knobs.is_empty:
            return self._knobs
        return _DEFAULT_QUALITY_DROP if self.calibration_ is not None else _UNCALIBRATED_DEFAULT

    @default_knobs.setter
    def default_knobs(self, knobs: QualityKnobs) -> None:
        self._knobs = knobs
        self._source = None

    @property
    def is_fitted(self) -> bool:
        """Whether the router has a head (from :meth:`fit` or :meth:`load`)."""
        return hasattr(self, "head_")

    def fit(
        self,
        texts: Sequence[str],
        y: np.ndarray | Sequence[float],
        *,
        val_texts: Sequence[str] | None = None,
        val_y: np.ndarray | Sequence[float] | None = None,
    ) -> Router:
        """Train the router on texts and their labels.

        Args:
            texts: Training queries.
            y: Soft labels in [0, 1]: p(the small model is good enough) per query.
            val_texts: Validation queries for early stopping (recommended).
            val_y: Their labels.

        Returns:
            self. The calibration table is cleared: call :meth:`calibrate` next.

        Raises:
            TrainingError: On malformed inputs or an unknown or impossible ``head_type``.
            EncoderError: When the encoder cannot load.
        """
        if self.head_type not in ("mlp", "logistic"):
            raise TrainingError(f"head_type must be 'mlp' or 'logistic', got {self.head_type!r}")
        if self.head_type == "logistic" and self.fine_tune:
            raise TrainingError(
                "fine_tune=True trains an MLP head together with the encoder; use "
                "head_type='mlp' with it"
            )
        train_texts = text_list(texts, "texts", TrainingError)
        y_arr = np.asarray(y, dtype=np.float64)
        if y_arr.shape != (len(train_texts),):
            raise TrainingError(
                f"y must have one label per text: {len(train_texts)} texts, y of shape "
                f"{y_arr.shape}"
            )
        if (val_texts is None) != (val_y is None):
            raise TrainingError("give val_texts and val_y together, or neither")
        val = None
        if val_texts is not None and val_y is not None:
            val = (
                text_list(val_texts, "val_texts", TrainingError),
                np.asarray(val_y, dtype=np.float64),
            )
        encoder = self.encoder if isinstance(self.encoder, Encoder) else Encoder(self.encoder)
        if self.fine_tune and encoder.precision != "fp32":
            raise TrainingError(
                f"fine_tune=True trains the head on the encoder's fp32 vectors, so it cannot "
                f"route with precision={encoder.precision!r}; fine-tune with an fp32 Encoder, "
                "or keep the encoder frozen (fine_tune=False) to train on int8 vectors"
            )
        self.encoder_, self.head_, l2_chosen, val_vectors = fit_router_head(
            self, encoder, train_texts, y_arr, val
        )
        self.calibration_ = None
        self.label_type_ = None
        self.t_star_ = None
        self.pair_ = None
        self._source = None
        metrics: dict[str, Any] = {}
        if val is not None:  # the validation vectors are encoded once, not again here
            val_scores = (
                self.score(val[0]) if val_vectors is None else _head_scores(self.head_, val_vectors)
            )
            metrics["val_bce"] = _bce(val_scores, val[1])
        self.metadata_ = {
            "n_train": len(train_texts),
            "n_val": 0 if val is None else len(val[0]),
            "metrics": metrics,
            "fine_tuned": self.fine_tune,
            "base_encoder": encoder.name,
            "l2_chosen": l2_chosen,
        }
        return self

    def calibrate(
        self,
        texts: Sequence[str],
        small_quality: np.ndarray | Sequence[float],
        large_quality: np.ndarray | Sequence[float],
        **kw: Any,
    ) -> Router:
        """Build the calibration table from held-out queries and both models' qualities.

        Args:
            texts: Held-out queries (not the training ones).
            small_quality: The small model's quality per query.
            large_quality: The large model's quality per query.
            **kw: Passed to :meth:`CalibrationTable.from_scores` (``confidence``,
                ``n_bootstrap``, ``seed``, ``max_points``).

        Returns:
            self, with ``calibration_`` set.

        Raises:
            CalibrationError: When the table cannot be built.
        """
        scores = self.score(text_list(texts, "texts", TrainingError))
        return self.calibrate_scores(scores, small_quality, large_quality, **kw)

    def calibrate_scores(
        self,
        scores: np.ndarray | Sequence[float],
        small_quality: np.ndarray | Sequence[float],
        large_quality: np.ndarray | Sequence[float],
        **kw: Any,
    ) -> Router:
        """:meth:`calibrate` from held-out queries' scores already computed (:meth:`score`).

        For a caller that needs the scores anyway (to evaluate on them too): the queries are
        then encoded once.

        Returns:
            self, with ``calibration_`` set.

        Raises:
            CalibrationError: When the table cannot be built.
        """
        self.calibration_ = CalibrationTable.from_scores(
            np.asarray(scores, dtype=np.float64), small_quality, large_quality, **kw
        )
        self._source = None
        return self

    def score(self, texts: str | Iterable[str]) -> np.ndarray:
        """Return p(the small model is good enough) per text.

        Args:
            texts: One text, or several: any iterable of str (a generator is consumed once),
                but not a mapping.

        Returns:
            float64 array of shape ``(n,)`` (``(1,)`` for one str). A text's score does not
            depend on the texts scored with it (its vector does not, see
            :class:`~shared_router.encoders.encoder.Encoder`, and the head scores each alone).

        Raises:
            RoutingError: When the router is not fitted, or ``texts`` is a mapping, not
                iterable or holds something other than str.
        """
        items = [texts] if isinstance(texts, str) else text_list(texts, "texts", RoutingError)
        head, encoder = self._fitted()
        if not items:
            return np.zeros(0, dtype=np.float64)
        return _head_scores(head, encoder.encode(items))

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Return ``[P(needs the large model), P(small is good enough)]`` per text, ``(n, 2)``."""
        p = self.score(texts)
        return np.column_stack([1.0 - p, p])

    def save(self, path: str | Path) -> Path:
        """Write the router folder (see :mod:`shared_router.model.artifacts`).

        Args:
            path: A new or empty folder, or an existing router folder to overwrite.

        Returns:
            The folder.

        Raises:
            RoutingError: When the router is not fitted.
            ArtifactError: When the folder cannot be written.
        """
        _, encoder = self._fitted()
        folder = save_router_folder(
            path,
            config=router_config(self),
            head=self.head_,
            calibration=self.calibration_,
            encoder_dir=encoder.path if self.metadata_.get("fine_tuned") else None,
        )
        self._source = str(Path(folder).resolve())
        return folder

    def describe(self) -> dict[str, Any]:
        """Return the router's configuration and a calibration summary, JSON-ready.

        Raises:
            RoutingError: When the router is not fitted.
        """
        out = router_config(self)
        out["calibration"] = calibration_summary(self.calibration_)
        return out

    @classmethod
    def load(
        cls,
        path_or_name: str | Path = DEFAULT_ROUTER,
        *,
        cache: EmbeddingCache | str | Path | None = None,
        backend: EncoderBackend = "auto",
        allow_download: bool = False,
    ) -> Router:
        """Load a router folder, or ``"default"`` for the router bundled with the package.

        Args:
            path_or_name: A folder written by :meth:`save`, or ``"default"`` (always the
                bundled router; a local folder named ``default`` needs a path: ``./default``).
            cache: An embedding cache for the loaded encoder (None: no cache).
            backend: The encoder's backend (see :class:`~shared_router.encoders.encoder.Encoder`);
                ``"auto"`` runs ONNX Runtime where it is exact on this CPU, else numpy.
            allow_download: Let a folder whose encoder is a hub name (not a local folder)
                load it through sentence-transformers, which may reach the network; off by
                default, so loading a router folder never does.

        Returns:
            The router, ready to score and route (the encoder loads on first use).

        Raises:
            ArtifactError: When the folder is missing or invalid, its encoder's identity or
                precision differs from the one that would run, or it names a hub encoder
                without ``allow_download``.
        """
        return load_router(
            cls, path_or_name, cache=cache, backend=backend, allow_download=allow_download
        )

    def _saved_knobs(self) -> QualityKnobs:
        """The default knobs to write: explicit ones, else the calibrated default, else none.

        An uncalibrated router's fallback (``threshold=0.5``) is not written, so that a router
        calibrated after loading gets the calibrated default.
        """
        if self._knobs is not None or self.calibration_ is not None:
            return self.default_knobs
        return QualityKnobs()

    def _fitted(self) -> tuple[MLPHead, Encoder]:
        if not self.is_fitted:
            raise RoutingError(
                f"router {self.name!r} is not fitted; call fit() or use Router.load()"
            )
        return self.head_, self.encoder_

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickle a router as the folder it was loaded from (or saved to), or ``"default"``.

        Unpickling gives that process's one router for the folder
        (:func:`~shared_router.routing.registry.shared_router`), so a pickled adapter or
        service shares the router already loaded there. (``copy.copy`` and ``copy.deepcopy``
        make copies in this process instead, see :meth:`__deepcopy__`.)

        Raises:
            UsageError: For a router that matches no folder: built or refitted in memory,
                or recalibrated since it was loaded or saved.
        """
        if self._source is None:
            raise UsageError(
                f"router {self.name!r} was built (or changed) in memory, so it has no folder to "
                "be pickled as; save it with router.save(folder) and give the folder (or pickle "
                "the router after saving it)"
            )
        from shared_router.routing.registry import shared_router

        return shared_router, (self._source,)

    def __copy__(self) -> Router:
        """A shallow copy: the same head, calibration and encoder objects."""
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> Router:
        """A deep copy of the head, calibration and settings that shares the encoder.

        An :class:`Encoder` is read-only once loaded and safe to share between threads, so
        the copy uses the same one (and its loaded weights) rather than a second.
        """
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            shared = isinstance(value, Encoder)
            copied.__dict__[name] = value if shared else copy.deepcopy(value, memo)
        return copied

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        calibrated = ", calibrated" if self.calibration_ is not None else ""
        return f"Router(name={self.name!r}, {state}{calibrated})"


def _head_scores(head: MLPHead, vectors: np.ndarray) -> np.ndarray:
    """The head's p per vector, each row on its own (~40 us a row).

    BLAS sums a row in another order when other rows come with it, so a batch would score a
    text a rounding away from the same text alone; a decision batched with others must be
    the one it gets alone.
    """
    return np.concatenate([head.predict_proba(vectors[i : i + 1]) for i in range(len(vectors))])


def _bce(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities ``p`` against soft labels ``y``."""
    q = np.clip(p, 1e-7, 1.0 - 1e-7)
    return float(np.mean(-(y * np.log(q) + (1.0 - y) * np.log(1.0 - q))))
