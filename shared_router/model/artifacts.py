"""The router folder format: what :meth:`Router.save` writes and :meth:`Router.load` reads.

A router folder holds::

    config.json         format_version, package_version, name, encoder{name, path?, max_tokens,
                        dim, precision?}, head{type, input_dim, hidden_sizes}, label_type, t_star,
                        pair{small, large} | null, quality_metric, training_data_hash,
                        description?, default_knobs, metrics{}, training{}
    model.safetensors   the head's weights (float32, ``layers.{i}.weight`` / ``.bias``)
    calibration.json    the calibration table (:meth:`CalibrationTable.to_dict`) or null
    README.md           a model card rendered from the config
    encoder/            only for a fine-tuned router: its sentence-transformers folder,
                        referenced from config.json as ``"path": "encoder"``

``encoder.precision`` is ``"fp32"`` or ``"int8"``: the encoder precision the head was trained
on, and must route with; a config without it (older routers) means ``"fp32"``. ``description``
(optional markdown: training data, limits) becomes the model card's "About this router".

Nothing is pickled. Loading validates every file and raises
:class:`~shared_router.errors.ArtifactError` naming the file and the problem.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared_router._internal.atomic import atomic_path, write_text_atomic
from shared_router.errors import ArtifactError, CalibrationError
from shared_router.model.calibration import CalibrationTable
from shared_router.model.head import MLPHead
from shared_router.model.model_card import render_model_card
from shared_router.model.router_config import FORMAT_VERSION, check_config, check_head_weights

__all__ = [
    "CALIBRATION_FILE",
    "CARD_FILE",
    "CONFIG_FILE",
    "ENCODER_DIR",
    "WEIGHTS_FILE",
    "RouterFolder",
    "load_router_folder",
    "save_router_folder",
]


CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CALIBRATION_FILE = "calibration.json"
CARD_FILE = "README.md"
ENCODER_DIR = "encoder"

_REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CALIBRATION_FILE)


@dataclass(frozen=True)
class RouterFolder:
    """A validated router folder, read into memory.

    Attributes:
        path: The folder.
        config: The parsed ``config.json``.
        head: The scoring head from ``model.safetensors``.
        calibration: The table from ``calibration.json``, or None when uncalibrated.
        encoder_path: The fine-tuned encoder's folder (``encoder/``), or None when the
            router uses ``config["encoder"]["name"]``.
    """

    path: Path
    config: dict[str, Any]
    head: MLPHead
    calibration: CalibrationTable | None
    encoder_path: Path | None


def save_router_folder(
    path: str | Path,
    *,
    config: Mapping[str, Any],
    head: MLPHead,
    calibration: CalibrationTable | None,
    encoder_dir: str | Path | None = None,
) -> Path:
    """Write a router folder.

    Args:
        path: The folder; created if missing. An existing folder must be empty or a router
            folder (its files are replaced).
        config: The config without ``format_version`` / ``package_version`` (added here) and,
            for a fine-tuned router, without ``encoder.path`` (added here).
        head: The scoring head.
        calibration: The calibration table, or None.
        encoder_dir: A fine-tuned encoder's folder, copied to ``encoder/``.

    Returns:
        The folder.

    Raises:
        ArtifactError: When the config is invalid, disagrees with the head, the folder
            cannot be written, or one of its files (or ``encoder/``) is a symbolic link that
            points out of the folder (a save never writes through such a link).
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"cannot save a router to {str(folder)!r}: it is a file")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CONFIG_FILE).is_file():
        raise ArtifactError(
            f"cannot save a router into {str(folder)!r}: the folder is not empty and is not a "
            "router folder (no config.json); choose a new or empty folder"
        )
    try:
        full = json.loads(json.dumps(dict(config)))  # a deep, JSON-only copy
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"the router config is not JSON-serialisable: {exc}") from exc
    full["format_version"] = FORMAT_VERSION
    full["package_version"] = _package_version()
    encoder = full.get("encoder")
    if isinstance(encoder, dict):
        encoder.pop("path", None)
        if encoder_dir is not None:
            encoder["path"] = ENCODER_DIR
    check_config(full, folder / CONFIG_FILE)
    check_head_weights(full, head.state_dict(), folder / WEIGHTS_FILE)
    _refuse_outside_links(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if encoder_dir is not None:
            _copy_encoder(Path(encoder_dir), folder / ENCODER_DIR)
        else:
            _remove(folder / ENCODER_DIR)
        _write_weights(folder / WEIGHTS_FILE, head)
        cal = calibration.to_dict() if calibration is not None else None
        write_text_atomic(folder / CALIBRATION_FILE, json.dumps(cal, indent=1) + "\n")
        write_text_atomic(folder / CARD_FILE, render_model_card(full, calibrated=cal is not None))
        # config.json last: a folder with a config is a complete router.
        write_text_atomic(folder / CONFIG_FILE, json.dumps(full, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ArtifactError(f"could not write the router folder {str(folder)!r}: {exc}") from exc
    return folder


def load_router_folder(path: str | Path) -> RouterFolder:
    """Read and validate a router folder.

    Args:
        path: The folder.

    Returns:
        The folder's contents.

    Raises:
        ArtifactError: On a missing folder or file, bad JSON, an unknown format version, an
            invalid config, weights whose shapes disagree with the config, or a bad
            calibration table; the message names the file.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(
            f"no router folder at {str(folder)!r}; give a folder written by Router.save, or "
            "'default' for the bundled router"
        )
    for name in _REQUIRED_FILES:
        if not (folder / name).is_file():
            raise ArtifactError(
                f"{folder / name}: missing; a router folder needs {', '.join(_REQUIRED_FILES)}"
            )
    config_path = folder / CONFIG_FILE
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ArtifactError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    check_config(config, config_path)
    weights = _read_weights(folder / WEIGHTS_FILE)
    check_head_weights(config, weights, folder / WEIGHTS_FILE)
    try:
        head = MLPHead.from_state_dict(weights)
    except ArtifactError as exc:
        raise ArtifactError(f"{folder / WEIGHTS_FILE}: {exc}") from exc
    calibration_path = folder / CALIBRATION_FILE
    raw = _read_json(calibration_path)
    calibration = None
    if raw is not None:
        try:
            calibration = CalibrationTable.from_dict(raw)
        except CalibrationError as exc:
            raise ArtifactError(f"{calibration_path}: invalid calibration table: {exc}") from exc
    encoder_path = None
    relative = config["encoder"].get("path")
    if relative is not None:
        encoder_path = (folder / relative).resolve()
        if folder.resolve() not in encoder_path.parents or not encoder_path.is_dir():
            raise ArtifactError(
                f"{config_path}: encoder.path {relative!r} must name a sub-folder of the router "
                "folder that exists (a fine-tuned router keeps its encoder in encoder/)"
            )
    return RouterFolder(
        path=folder, config=config, head=head, calibration=calibration, encoder_path=encoder_path
    )


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hybrid-llm")
    except PackageNotFoundError:
        return "unknown"


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: cannot be read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc


def _write_weights(path: Path, head: MLPHead) -> None:
    from safetensors.numpy import save_file

    with atomic_path(path) as temporary:
        save_file(
            head.state_dict(), str(temporary), metadata={"format_version": str(FORMAT_VERSION)}
        )


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: not a readable safetensors file: {exc}") from exc


def _refuse_outside_links(folder: Path) -> None:
    """Refuse a router folder whose files or ``encoder/`` are links out of the folder.

    Every file is written to a fresh temporary name and renamed over the old one, which
    replaces a link rather than follow it; a link out of the folder is refused anyway, so
    that a save never touches or keeps anything outside the folder.

    Raises:
        ArtifactError: Naming the link and where it points.
    """
    if not folder.is_dir():
        return
    inside = folder.resolve()
    for name in (CONFIG_FILE, WEIGHTS_FILE, CALIBRATION_FILE, CARD_FILE, ENCODER_DIR):
        entry = folder / name
        if not entry.is_symlink():
            continue
        target = entry.resolve()
        if inside not in target.parents:
            raise ArtifactError(
                f"cannot save a router into {str(folder)!r}: {name} is a symbolic link to "
                f"{str(target)!r}, outside the folder; remove the link, or save to a new folder"
            )


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree; nothing if absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _copy_encoder(source: Path, target: Path) -> None:
    if not source.is_dir():
        raise ArtifactError(f"fine-tuned encoder folder {str(source)!r} does not exist")
    if not target.is_symlink() and target.exists() and target.resolve() == source.resolve():
        return
    _remove(target)  # a link is removed, not what it points to
    shutil.copytree(source, target)
