"""The model card: the README.md of a router folder, rendered from its config."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

__all__ = ["render_model_card"]

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
    as :class:`~shared_router.evaluation.report.CurveMetrics`
    writes them) become one row of the first
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
