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
from shared_router.encoders.folders import IdentityParts, parse_identity, resolve_encoder_path
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
    allow_download: bool = False,
) -> Router:
    """Build a :class:`Router` of class ``cls`` from a router folder (see :meth:`Router.load`).

    The folder never reaches the network unless ``allow_download``: a config whose encoder
    is neither ``"default"`` (or its aliases), a local folder, nor a fine-tuned ``encoder/``
    sub-folder names a Hugging Face hub model, and is refused. The encoder identity in
    ``config.json`` (``encoder.identity``, written since it was added; older folders lack
    it) is compared, at load, with the identity of the encoder the router will run: a
    different precision, token limit or weights fingerprint is refused. This hashes the
    encoder's folder (once per process, about 0.1 s for MiniLM) but does not load the model.
    A hub model's weights (``allow_download``) are not known before they are loaded, so
    only its precision and token limit are compared.

    Raises:
        ArtifactError: When the folder is missing or invalid, names a hub model without
            ``allow_download``, or its encoder identity differs from what would run.
    """
    folder = router_folder_path(path_or_name)
    loaded = load_router_folder(folder)
    config = loaded.config
    enc = config["encoder"]
    source = loaded.encoder_path or enc["name"]
    if not allow_download and resolve_encoder_path(source) is None:
        raise ArtifactError(
            f"{folder / CONFIG_FILE}: encoder {enc['name']!r} is not a local folder nor "
            "'default', so routing would download it from the Hugging Face hub; router "
            "folders do not reach the network unless asked: pass allow_download=True, or "
            "put the model in a local folder and name its path"
        )
    encoder = Encoder(
        source,
        max_tokens=enc["max_tokens"],
        precision=enc.get("precision", "fp32"),
        backend=backend,
        cache=cache,
    )
    _check_identity(folder / CONFIG_FILE, enc.get("identity"), encoder, "precision" in enc)
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
    bundled = isinstance(path_or_name, str) and path_or_name == DEFAULT_ROUTER
    router._source = DEFAULT_ROUTER if bundled else str(folder.resolve())
    return router


def _check_identity(
    config_path: Path, recorded: str | None, encoder: Encoder, has_precision: bool
) -> None:
    """Refuse an encoder whose vectors are not those the head was trained on.

    The weights' fingerprint, the token limit and the precision of the recorded identity are
    compared with the encoder that would run (its name is only a label). A config without
    ``encoder.precision`` runs fp32 (folders written before precisions existed); an int8
    identity there is a mismatch like any other.
    """
    trained = None if recorded is None else parse_identity(recorded)
    if trained is None:  # an older folder: nothing recorded to compare
        return
    if encoder.path is None:  # a hub model: its weights are unknown until it is loaded
        shown = f"{encoder.name} at {encoder.precision}, max_tokens={encoder.max_tokens}"
        running: IdentityParts | None = trained._replace(
            max_tokens=encoder.max_tokens or -1, precision=encoder.precision
        )
    else:
        shown = encoder.identity
        running = parse_identity(shown)
    if running is None or trained[1:] != running[1:]:  # the label is a name only
        raise ArtifactError(
            f"{config_path}: the head was trained on vectors of encoder {recorded!r} "
            f"({trained.precision}), but this router would run encoder {shown!r} "
            f"({encoder.precision}); their vectors differ, so its scores would be wrong. "
            "Use the encoder it was trained on (restore 'encoder.precision' or "
            "'encoder.max_tokens' in config.json, or the model's weights), or train and save "
            "the router again with this encoder"
        )


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
    """The folder a router name stands for.

    The str ``"default"`` always means the router bundled with the package, even where the
    working directory has a ``default/`` folder: load that one by a path (``"./default"``
    or a :class:`~pathlib.Path`). Anything else is a folder path.

    Raises:
        ArtifactError: When the bundled router is missing from the install.
    """
    if isinstance(path_or_name, str) and path_or_name == DEFAULT_ROUTER:
        bundled = Path(str(resources.files("shared_router.model") / DEFAULT_ROUTER))
        if not (bundled / CONFIG_FILE).is_file():
            raise ArtifactError(
                f"the bundled default router is not in this install ({bundled} has no "
                f"{CONFIG_FILE}); reinstall hybrid-llm, or load a router folder by path"
            )
        return bundled
    return Path(path_or_name)
