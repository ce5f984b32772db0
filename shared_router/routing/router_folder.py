"""A :class:`~shared_router.routing.router.Router` as a router folder: its config, loading it.

:meth:`Router.save` writes :func:`router_config` through
:func:`~shared_router.model.artifacts.save_router_folder`; :meth:`Router.load` is
:func:`load_router`; ``"default"`` names the router bundled in ``shared_router/model/default/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared_router.encoders.cache import EmbeddingCache
from shared_router.encoders.encoder import Encoder, EncoderBackend
from shared_router.errors import ArtifactError
from shared_router.model.artifacts import CONFIG_FILE, load_router_folder
from shared_router.model.calibration import CalibrationTable
from shared_router.types import KNOB_NAMES, ModelPair, QualityKnobs

if TYPE_CHECKING:
    from shared_router.routing.router import Router

__all__ = [
    "DEFAULT_ROUTER",
    "REFIT_PARAMS",
    "calibration_summary",
    "load_router",
    "router_config",
    "router_folder_path",
]

DEFAULT_ROUTER = "default"
"""The name :meth:`Router.load` reads as the router bundled in ``shared_router/model/default/``."""

REFIT_PARAMS = (
    "head_type",
    "l2",
    "dropout",
    "lr",
    "weight_decay",
    "epochs",
    "batch_size",
    "patience",
    "seed",
    "fine_tune_epochs",
    "fine_tune_lr",
)
"""The training settings a loaded router keeps, so that it can be refitted alike."""


def router_config(router: Router) -> dict[str, Any]:
    """The router's ``config.json`` content (without the format fields).

    Raises:
        RoutingError: When the router is not fitted.
    """
    head, encoder = router._fitted()
    fine_tuned = bool(router.metadata_.get("fine_tuned"))
    base_name = router.metadata_.get("base_encoder") or encoder.name
    config: dict[str, Any] = {
        "name": router.name,
        "encoder": {
            "name": str(base_name),
            "max_tokens": encoder.effective_max_tokens,
            "dim": encoder.dim,
            "precision": encoder.precision,
            "identity": encoder.identity,
        },
        "head": {
            "type": "mlp",
            "input_dim": head.input_dim,
            "hidden_sizes": list(head.hidden_sizes),
        },
        "label_type": router.label_type_,
        "t_star": router.t_star_,
        "pair": None
        if router.pair_ is None
        else {"small": router.pair_.small, "large": router.pair_.large},
        "quality_metric": router.metadata_.get("quality_metric"),
        "training_data_hash": router.metadata_.get("training_data_hash"),
        "description": router.metadata_.get("description"),
        "default_knobs": router._saved_knobs().as_dict(),
        "metrics": router.metadata_.get("metrics", {}),
        "training": {
            "head_type": router.head_type,
            "l2": router.l2 if isinstance(router.l2, (int, float)) else list(router.l2),
            "l2_chosen": router.metadata_.get("l2_chosen"),
            "hidden_sizes": list(router.hidden_sizes),
            "dropout": router.dropout,
            "lr": router.lr,
            "weight_decay": router.weight_decay,
            "epochs": router.epochs,
            "batch_size": router.batch_size,
            "patience": router.patience,
            "seed": router.seed,
            "fine_tune": fine_tuned,
            "fine_tune_epochs": router.fine_tune_epochs,
            "fine_tune_lr": router.fine_tune_lr,
            "n_train": router.metadata_.get("n_train"),
            "n_val": router.metadata_.get("n_val"),
            "source": router.metadata_.get("source"),
        },
    }
    return config


def load_router(
    cls: type[Router],
    path_or_name: str | Path,
    *,
    cache: EmbeddingCache | str | Path | None,
    backend: EncoderBackend,
) -> Router:
    """Build a :class:`Router` of class ``cls`` from a router folder (see :meth:`Router.load`)."""
    folder = router_folder_path(path_or_name)
    loaded = load_router_folder(folder)
    config = loaded.config
    enc = config["encoder"]
    encoder = Encoder(
        loaded.encoder_path or enc["name"],
        max_tokens=enc["max_tokens"],
        precision=enc.get("precision", "fp32"),
        backend=backend,
        cache=cache,
    )
    training = config.get("training") or {}
    knobs = config.get("default_knobs") or {}
    default_knobs = QualityKnobs(**{k: knobs.get(k) for k in KNOB_NAMES})
    router = cls(
        encoder,
        hidden_sizes=tuple(config["head"]["hidden_sizes"]),
        **{k: training[k] for k in REFIT_PARAMS if k in training},
        progress=False,
        name=config["name"],
        default_knobs=None if default_knobs.is_empty else default_knobs,
    )
    router.head_ = loaded.head
    router.encoder_ = encoder
    router.calibration_ = loaded.calibration
    router.label_type_ = config.get("label_type")
    router.t_star_ = config.get("t_star")
    pair = config.get("pair")
    router.pair_ = None if pair is None else ModelPair(pair["small"], pair["large"])
    router.metadata_ = {
        "quality_metric": config.get("quality_metric"),
        "training_data_hash": config.get("training_data_hash"),
        "description": config.get("description"),
        "metrics": config.get("metrics", {}),
        "fine_tuned": loaded.encoder_path is not None,
        "base_encoder": enc["name"],
        "n_train": training.get("n_train"),
        "n_val": training.get("n_val"),
        "source": training.get("source"),
        "l2_chosen": training.get("l2_chosen"),
        "format_version": config["format_version"],
        "package_version": config.get("package_version"),
        "path": str(folder),
    }
    return router


def calibration_summary(table: CalibrationTable | None) -> dict[str, Any] | None:
    """A calibration table in brief: size, level, method and cost advantage at a few drops."""
    return (
        None
        if table is None
        else {
            "n": table.n,
            "confidence": table.confidence,
            "method": table.method,
            "points": int(table.thresholds.size),
            "cost_advantage_at_max_quality_drop": {
                str(drop): float(
                    table.cost_advantage[
                        np.searchsorted(table.thresholds, table.threshold_for_quality_drop(drop))
                    ]
                )
                for drop in (0.0, 0.01, 0.02, 0.05)
            },
        }
    )


def router_folder_path(path_or_name: str | Path) -> Path:
    """The folder a router name stands for: ``"default"`` is the bundled router."""
    if str(path_or_name) == DEFAULT_ROUTER and not Path(path_or_name).is_dir():
        bundled = Path(str(resources.files("shared_router.model") / DEFAULT_ROUTER))
        if not (bundled / CONFIG_FILE).is_file():
            raise ArtifactError(
                f"the bundled default router is not in this install ({bundled} has no "
                f"{CONFIG_FILE}); reinstall hybrid-llm, or load a router folder by path"
            )
        return bundled
    return Path(path_or_name)
