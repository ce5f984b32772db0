"""The schema of a router folder's ``config.json``: its format version, keys and types.

:func:`check_config` lists every problem of a config at once (one
:class:`~shared_router.errors.ArtifactError` naming the file), so a hand-edited or damaged
config is fixed in one round; :func:`check_head_weights` checks that the weights have the
shapes the config's head describes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared_router.encoders.bert_folder import PRECISIONS
from shared_router.encoders.folders import parse_identity
from shared_router.errors import ArtifactError

__all__ = ["FORMAT_VERSION", "check_config", "check_head_weights"]

FORMAT_VERSION = 1
"""The router folder format this version of hybrid-llm writes and reads."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config(config: dict[str, Any], path: Path) -> None:
    """Validate a router config's format version, keys and types.

    Args:
        config: The parsed ``config.json``.
        path: Where it is (or will be), for the message.

    Raises:
        ArtifactError: Naming ``path`` and every problem found.
    """
    version = config.get("format_version")
    if not _is_int(version):
        raise ArtifactError(f"{path}: 'format_version' must be an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: unknown format version {version}; this hybrid-llm reads version "
            f"{FORMAT_VERSION}. Upgrade hybrid-llm, or save the router again with this version"
        )
    problems = [
        *_encoder_problems(config.get("encoder")),
        *_head_problems(config.get("head")),
        *_dimension_problems(config.get("encoder"), config.get("head")),
        *_label_and_pair_problems(config),
        *_optional_field_problems(config),
        *_training_problems(config.get("training", {})),
    ]
    if not isinstance(config.get("name"), str) or not config["name"]:
        problems.insert(0, "'name' must be a non-empty string")
    if problems:
        raise ArtifactError(f"{path}: invalid router config: " + "; ".join(problems))


def _encoder_problems(encoder: Any) -> list[str]:
    if not isinstance(encoder, dict):
        return ["'encoder' must be an object"]
    problems = []
    if not isinstance(encoder.get("name"), str):
        problems.append("'encoder.name' must be a string")
    if not (_is_int(encoder.get("dim")) and encoder["dim"] > 0):
        problems.append("'encoder.dim' must be a positive integer")
    if not (_is_int(encoder.get("max_tokens")) and encoder["max_tokens"] >= 3):
        problems.append("'encoder.max_tokens' must be an integer >= 3")
    if "path" in encoder and not isinstance(encoder["path"], str):
        problems.append("'encoder.path' must be a string (a sub-folder) when present")
    identity = encoder.get("identity")
    if identity is not None and not (isinstance(identity, str) and parse_identity(identity)):
        problems.append(
            "'encoder.identity' must be '<name>|sha256:<16 hex>|max_tokens=<n>' (then '|int8' "
            f"at int8) when present, got {identity!r}"
        )
    if encoder.get("precision", "fp32") not in PRECISIONS:
        problems.append(
            f"'encoder.precision' must be 'fp32' or 'int8' when present (absent means "
            f"'fp32'), got {encoder['precision']!r}"
        )
    return problems


def _head_problems(head: Any) -> list[str]:
    if not isinstance(head, dict):
        return ["'head' must be an object"]
    problems = []
    if head.get("type") != "mlp":
        problems.append(f"'head.type' must be 'mlp', got {head.get('type')!r}")
    if not (_is_int(head.get("input_dim")) and head["input_dim"] > 0):
        problems.append("'head.input_dim' must be a positive integer")
    hidden = head.get("hidden_sizes")
    if not isinstance(hidden, list) or not all(_is_int(h) and h > 0 for h in hidden):
        problems.append("'head.hidden_sizes' must be a list of positive integers")
    return problems


def _dimension_problems(encoder: Any, head: Any) -> list[str]:
    if (
        isinstance(encoder, dict)
        and isinstance(head, dict)
        and encoder.get("dim") != head.get("input_dim")
    ):
        return [
            f"'head.input_dim' ({head.get('input_dim')}) differs from 'encoder.dim' "
            f"({encoder.get('dim')})"
        ]
    return []


def _label_and_pair_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    if config.get("label_type") not in (None, "det", "prob", "trans", "diff"):
        problems.append("'label_type' must be 'det', 'prob', 'trans', 'diff' or null")
    if config.get("t_star") is not None and not _is_number(config["t_star"]):
        problems.append("'t_star' must be a number or null")
    pair = config.get("pair")
    if pair is not None and not (
        isinstance(pair, dict)
        and isinstance(pair.get("small"), str)
        and isinstance(pair.get("large"), str)
    ):
        problems.append("'pair' must be null or an object with string 'small' and 'large'")
    return problems


def _optional_field_problems(config: Mapping[str, Any]) -> list[str]:
    problems = [
        f"'{key}' must be an object"
        for key in ("default_knobs", "metrics")
        if not isinstance(config.get(key, {}), dict)
    ]
    problems += [
        f"'{key}' must be a string or null"
        for key in ("quality_metric", "training_data_hash", "description")
        if config.get(key) is not None and not isinstance(config[key], str)
    ]
    return problems


def _training_problems(training: Any) -> list[str]:
    if not isinstance(training, dict):
        return ["'training' must be an object"]
    problems = []
    if training.get("head_type", "mlp") not in ("mlp", "logistic"):
        problems.append(
            f"'training.head_type' must be 'mlp' or 'logistic', got {training['head_type']!r}"
        )
    l2 = training.get("l2", 1.0)
    values = l2 if isinstance(l2, list) else [l2]
    if not values or not all(_is_number(v) and v > 0 for v in values):
        problems.append("'training.l2' must be a positive number or a list of them")
    return problems


def check_head_weights(
    config: Mapping[str, Any], weights: Mapping[str, np.ndarray], path: Path
) -> None:
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
