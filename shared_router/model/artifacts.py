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
import math
import os
import shutil
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared_router.encoders.minilm_numpy import PRECISIONS
from shared_router.errors import ArtifactError, CalibrationError
from shared_router.model.calibration import CalibrationTable
from shared_router.model.head import MLPHead

__all__ = [
    "CALIBRATION_FILE",
    "CARD_FILE",
    "CONFIG_FILE",
    "ENCODER_DIR",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "RouterFolder",
    "load_router_folder",
    "render_model_card",
    "save_router_folder",
]

FORMAT_VERSION = 1
"""The router folder format this version of hybrid-llm writes and reads."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CALIBRATION_FILE = "calibration.json"
CARD_FILE = "README.md"
ENCODER_DIR = "encoder"

_REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CALIBRATION_FILE)

_CARD_TEMPLATE = string.Template(
    """---
library_name: hybrid-llm
tags:
- llm-routing
- hybrid-llm
---

# $name

A query router for [hybrid-llm](https://arxiv.org/abs/2404.14618) (Hybrid LLM: Cost-Efficient
and Quality-Aware Query Routing, Ding et al., ICLR 2024). It reads a query and scores
p(the small model's answer is as good as the large model's); a score at or above the
threshold sends the query to the small model.

| | |
|---|---|
| small model | $small |
| large model | $large |
| encoder | $encoder (max $max_tokens tokens, $dim dimensions, $precision)$fine_tuned |
| head | $head |
| labels | $labels |
| quality metric | $quality_metric |
| calibrated | $calibrated |
| default quality level | $default_knobs |
| training data sha256 | `$data_hash` |
| format version | $format_version (hybrid-llm $package_version) |
$about
## Metrics

$metrics

## Use

```python
from shared_router import Router

router = Router.load("path/to/this/folder")
decision = router.route("What is 2 + 2?", max_quality_drop=0.01)
print(decision.model, decision.score, decision.threshold)
```
"""
)


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
        ArtifactError: When the config is invalid, disagrees with the head, or the folder
            cannot be written.
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
    _check_config(full, folder / CONFIG_FILE)
    _check_head(full, head.state_dict(), folder / WEIGHTS_FILE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if encoder_dir is not None:
            _copy_encoder(Path(encoder_dir), folder / ENCODER_DIR)
        elif (folder / ENCODER_DIR).is_dir():
            shutil.rmtree(folder / ENCODER_DIR)
        _write_weights(folder / WEIGHTS_FILE, head)
        cal = calibration.to_dict() if calibration is not None else None
        _write_text(folder / CALIBRATION_FILE, json.dumps(cal, indent=1) + "\n")
        _write_text(folder / CARD_FILE, render_model_card(full, calibrated=cal is not None))
        # config.json last: a folder with a config is a complete router.
        _write_text(folder / CONFIG_FILE, json.dumps(full, indent=2, sort_keys=True) + "\n")
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
            f"no router folder at {str(folder)!r}; give a folder written by Router.save"
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
    _check_config(config, config_path)
    weights = _read_weights(folder / WEIGHTS_FILE)
    _check_head(config, weights, folder / WEIGHTS_FILE)
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


def render_model_card(config: Mapping[str, Any], *, calibrated: bool) -> str:
    """Render the README.md model card of a router from its config.

    Args:
        config: A full router config (as in ``config.json``).
        calibrated: Whether the router has a calibration table.

    Returns:
        Markdown text.
    """
    encoder = config.get("encoder") or {}
    head = config.get("head") or {}
    pair = config.get("pair") or {}
    hidden = list(head.get("hidden_sizes") or [])
    head_text = (
        f"MLP, hidden layers {hidden}" if hidden else "logistic regression"
    ) + f" on {head.get('input_dim')}-dim embeddings"
    label_type = config.get("label_type")
    t_star = config.get("t_star")
    labels = "n/a" if label_type is None else str(label_type)
    if t_star is not None:
        labels += f" (t* = {t_star:g})"
    knobs = config.get("default_knobs") or {}
    knob_text = ", ".join(f"{k}={v}" for k, v in knobs.items() if v is not None) or "none"
    description = config.get("description")
    return _CARD_TEMPLATE.substitute(
        name=config.get("name", "router"),
        small=pair.get("small", "n/a"),
        large=pair.get("large", "n/a"),
        encoder=encoder.get("name", "n/a"),
        max_tokens=encoder.get("max_tokens"),
        dim=encoder.get("dim"),
        precision=encoder.get("precision", "fp32"),
        fine_tuned=", fine-tuned, in `encoder/`" if encoder.get("path") else "",
        head=head_text,
        labels=labels,
        quality_metric=config.get("quality_metric") or "n/a",
        calibrated="yes" if calibrated else "no",
        default_knobs=knob_text,
        data_hash=config.get("training_data_hash") or "n/a",
        format_version=config.get("format_version"),
        package_version=config.get("package_version"),
        about=f"\n## About this router\n\n{description.strip()}\n" if description else "",
        metrics=_metrics_markdown(config.get("metrics") or {}),
    )


def _metrics_markdown(metrics: Mapping[str, Any]) -> str:
    """Metrics as markdown: curve metrics as one comparison table, other values as another.

    A curve's metrics (a dict with ``gap_recovered``, ``apgr`` and ``cost_advantage_at_drop``,
    as :class:`~shared_router.evaluation.curves.CurveMetrics` writes them) become one row of the first
    table; every other value is listed by its dotted name in the second.
    """
    curves: list[tuple[str, Mapping[str, Any]]] = []
    scalars: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value.keys() >= _CURVE_KEYS:
            curves.append((prefix, value))
            for key in value.keys() - _CURVE_KEYS - {"name"}:
                walk(f"{prefix}.{key}", value[key])
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, float):
            scalars.append((prefix, f"{value:.4g}"))
        else:
            scalars.append((prefix, str(value)))

    walk("", metrics)
    if not curves and not scalars:
        return "No metrics were recorded."
    parts = []
    if curves:
        lines = [
            "| where | curve | gap recovered | APGR | CA@1% drop | CA@5% drop |",
            "|---|---|---|---|---|---|",
        ]
        for where, row in curves:
            at_drop = row.get("cost_advantage_at_drop") or {}
            group, _, curve = where.rpartition(".")
            lines.append(
                f"| {group or '-'} | {curve} | {_cell(row.get('gap_recovered'))} "
                f"| {_cell(row.get('apgr'))} | {_cell(at_drop.get('0.01'))} "
                f"| {_cell(at_drop.get('0.05'))} |"
            )
        parts.append("\n".join(lines))
    if scalars:
        lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in scalars)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


_CURVE_KEYS = frozenset({"gap_recovered", "apgr", "cost_advantage_at_drop"})


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


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


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _write_weights(path: Path, head: MLPHead) -> None:
    from safetensors.numpy import save_file

    temporary = path.with_name(f".{path.name}.tmp")
    save_file(head.state_dict(), str(temporary), metadata={"format_version": str(FORMAT_VERSION)})
    os.replace(temporary, path)


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: not a readable safetensors file: {exc}") from exc


def _copy_encoder(source: Path, target: Path) -> None:
    if not source.is_dir():
        raise ArtifactError(f"fine-tuned encoder folder {str(source)!r} does not exist")
    if target.exists() and target.resolve() == source.resolve():
        return
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_config(config: dict[str, Any], path: Path) -> None:
    """Validate a router config's format version, keys and types."""
    version = config.get("format_version")
    if not _is_int(version):
        raise ArtifactError(f"{path}: 'format_version' must be an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: unknown format version {version}; this hybrid-llm reads version "
            f"{FORMAT_VERSION}. Upgrade hybrid-llm, or save the router again with this version"
        )
    problems: list[str] = []
    if not isinstance(config.get("name"), str) or not config["name"]:
        problems.append("'name' must be a non-empty string")
    encoder = config.get("encoder")
    if not isinstance(encoder, dict):
        problems.append("'encoder' must be an object")
    else:
        if not isinstance(encoder.get("name"), str):
            problems.append("'encoder.name' must be a string")
        if not (_is_int(encoder.get("dim")) and encoder["dim"] > 0):
            problems.append("'encoder.dim' must be a positive integer")
        if not (_is_int(encoder.get("max_tokens")) and encoder["max_tokens"] >= 3):
            problems.append("'encoder.max_tokens' must be an integer >= 3")
        if "path" in encoder and not isinstance(encoder["path"], str):
            problems.append("'encoder.path' must be a string (a sub-folder) when present")
        if encoder.get("precision", "fp32") not in PRECISIONS:
            problems.append(
                f"'encoder.precision' must be 'fp32' or 'int8' when present (absent means "
                f"'fp32'), got {encoder['precision']!r}"
            )
    head = config.get("head")
    if not isinstance(head, dict):
        problems.append("'head' must be an object")
    else:
        if head.get("type") != "mlp":
            problems.append(f"'head.type' must be 'mlp', got {head.get('type')!r}")
        if not (_is_int(head.get("input_dim")) and head["input_dim"] > 0):
            problems.append("'head.input_dim' must be a positive integer")
        hidden = head.get("hidden_sizes")
        if not isinstance(hidden, list) or not all(_is_int(h) and h > 0 for h in hidden):
            problems.append("'head.hidden_sizes' must be a list of positive integers")
    if (
        isinstance(encoder, dict)
        and isinstance(head, dict)
        and encoder.get("dim") != head.get("input_dim")
    ):
        problems.append(
            f"'head.input_dim' ({head.get('input_dim')}) differs from 'encoder.dim' "
            f"({encoder.get('dim')})"
        )
    if config.get("label_type") not in (None, "det", "prob", "trans"):
        problems.append("'label_type' must be 'det', 'prob', 'trans' or null")
    if config.get("t_star") is not None and not _is_number(config["t_star"]):
        problems.append("'t_star' must be a number or null")
    pair = config.get("pair")
    if pair is not None and not (
        isinstance(pair, dict)
        and isinstance(pair.get("small"), str)
        and isinstance(pair.get("large"), str)
    ):
        problems.append("'pair' must be null or an object with string 'small' and 'large'")
    for key in ("default_knobs", "metrics"):
        if not isinstance(config.get(key, {}), dict):
            problems.append(f"'{key}' must be an object")
    for key in ("quality_metric", "training_data_hash", "description"):
        if config.get(key) is not None and not isinstance(config[key], str):
            problems.append(f"'{key}' must be a string or null")
    training = config.get("training", {})
    if not isinstance(training, dict):
        problems.append("'training' must be an object")
    else:
        if training.get("head_type", "mlp") not in ("mlp", "logistic"):
            problems.append(
                f"'training.head_type' must be 'mlp' or 'logistic', got {training['head_type']!r}"
            )
        l2 = training.get("l2", 1.0)
        values = l2 if isinstance(l2, list) else [l2]
        if not values or not all(_is_number(v) and v > 0 for v in values):
            problems.append("'training.l2' must be a positive number or a list of them")
    if problems:
        raise ArtifactError(f"{path}: invalid router config: " + "; ".join(problems))


def _check_head(config: Mapping[str, Any], weights: Mapping[str, np.ndarray], path: Path) -> None:
    """Check that the weights have the shapes the config's head describes."""
    head = config["head"]
    sizes = [head["input_dim"], *head["hidden_sizes"], 1]
    expected: dict[str, tuple[int, ...]] = {}
    for i in range(len(sizes) - 1):
        expected[f"layers.{i}.weight"] = (sizes[i + 1], sizes[i])
        expected[f"layers.{i}.bias"] = (sizes[i + 1],)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ArtifactError(
            f"{path}: weights do not match the head in config.json (input_dim "
            f"{head['input_dim']}, hidden_sizes {head['hidden_sizes']}): missing {missing}, "
            f"unexpected {extra}"
        )
    for key, shape in expected.items():
        actual = tuple(np.shape(weights[key]))
        if actual != shape:
            raise ArtifactError(
                f"{path}: shape mismatch: {key} has shape {actual} but the head in config.json "
                f"(input_dim {head['input_dim']}, hidden_sizes {head['hidden_sizes']}) needs "
                f"{shape}"
            )
