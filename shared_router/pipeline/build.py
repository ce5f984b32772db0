"""Train a router for your own model pair in one pipeline: collect, judge, train, report.

``build`` chains the stages and leaves in its output folder::

    data.jsonl            the collected responses with their quality scores
    data.jsonl.journal    the collect journal (rerunning resumes from it)
    data.jsonl.judge.journal   the score journal
    router/               the trained, calibrated router (load it with Router.load)
    report.json           build facts and the test-split evaluation
    report.md             the same for people
    curves.png            quality against cost advantage: router, baselines, oracle

Every stage is resumable, so rerunning the same command after a crash (or after fixing a
model's errors) redoes only what is missing. Queries without a ``split`` field get one from a
hash of their id (80% train, 10% val, 10% test,
:func:`shared_router.pipeline.collect.split_for_id`); the router trains on train, early-stops and
calibrates on val, and is evaluated on test only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared_router._internal.atomic import write_text_atomic
from shared_router.data import PairData, load_pair
from shared_router.errors import TrainingError
from shared_router.evaluation.plots import plot_curves
from shared_router.evaluation.report import evaluate_scores
from shared_router.pipeline.collect import CollectSummary, collect, samples_per_model
from shared_router.pipeline.judge import JudgeSummary, judge_file
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.pipeline.queries import SPLITS
from shared_router.pipeline.settings import (
    DEFAULT_ENGINE,
    DEFAULT_FIELDS,
    EngineSettings,
    InputFields,
)
from shared_router.pipeline.sources import SourceSpec
from shared_router.routing.router import Router
from shared_router.routing.train_router import train_router
from shared_router.training.labels import LabelKind

__all__ = ["BuildResult", "build"]

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
PLOT = "curves.png"


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` produced.

    Attributes:
        data: The scored data file.
        router: The router folder.
        report_json: The JSON report.
        report_markdown: The Markdown report.
        plot: The curves plot.
        collect: The collect stage's summary.
        judge: The judge stage's summary.
        split_sizes: Rows per split that the router used.
        report: The report as written to ``report_json``.
    """

    data: Path
    router: Path
    report_json: Path
    report_markdown: Path
    plot: Path
    collect: CollectSummary
    judge: JudgeSummary
    split_sizes: Mapping[str, int]
    report: Mapping[str, Any]


def build(
    queries: str | Path,
    output_dir: str | Path,
    *,
    small: SourceSpec | str,
    large: SourceSpec | str,
    small_name: str | None = None,
    large_name: str | None = None,
    samples: int | Mapping[str, int] = 1,
    metric: MetricSpec | str = "bartscore",
    label_type: LabelKind = "trans",
    router: Router | None = None,
    engine: EngineSettings = DEFAULT_ENGINE,
    fields: InputFields = DEFAULT_FIELDS,
) -> BuildResult:
    """Collect responses, score them, train and calibrate a router, and report on it.

    Args:
        queries: JSONL queries (see :func:`shared_router.pipeline.collect.read_queries`).
        output_dir: The folder for everything produced (see the module docstring).
        small: The small model's SPEC.
        large: The large model's SPEC.
        small_name: The small model's name in the data (default: its SPEC).
        large_name: The large model's name in the data (default: its SPEC).
        samples: Responses per model and query, one count or model name -> count (see
            :func:`~shared_router.pipeline.collect.collect`); ``prob``/``trans`` labels use
            them all.
        metric: The answer-quality metric (see :mod:`shared_router.pipeline.quality_metrics`).
        label_type: ``"det"``, ``"prob"`` or ``"trans"`` (the paper's best).
        router: An unfitted router carrying encoder and training settings; None uses
            the defaults (with ``engine.progress``).
        engine: How collect and judge run (local or Ray, requests in flight, retries and
            timeout) and whether progress bars are shown.
        fields: The input fields holding the prompt, the reference answer and the id.

    Returns:
        Where everything is, with the stage summaries and the report.

    Raises:
        DataError: For bad input (see ``collect`` and ``judge_file``).
        TrainingError: If too few rows have scores for both models to fill every split.
    """
    small_spec = SourceSpec(small) if isinstance(small, str) else small
    large_spec = SourceSpec(large) if isinstance(large, str) else large
    small_name = small_name or small_spec.spec
    large_name = large_name or large_spec.spec
    metric_spec = MetricSpec(metric) if isinstance(metric, str) else metric
    metric_spec.check()  # before any model is called
    folder = Path(output_dir)
    data_path = folder / "data.jsonl"
    models = {small_name: small_spec, large_name: large_spec}
    collected = collect(queries, data_path, models, samples=samples, engine=engine, fields=fields)
    judged = judge_file(data_path, metric_spec, models=[small_name, large_name], engine=engine)
    data = load_pair(data_path, small_name, large_name)
    sizes = _split_sizes(data, collected, judged)
    model = router or Router(progress=engine.progress, name=f"{small_name}-vs-{large_name}")
    trained = train_router(
        data, label_type=label_type, router=model, quality_metric=metric_spec.name
    )
    router_dir = trained.save(folder / "router")
    facts: dict[str, Any] = {
        "small": {"name": small_name, "spec": small_spec.spec},
        "large": {"name": large_name, "spec": large_spec.spec},
        "samples": (
            samples if isinstance(samples, int) else samples_per_model(samples, list(models))
        ),
        "metric": {"name": metric_spec.name, "args": dict(metric_spec.args)},
        "label_type": label_type,
        "t_star": trained.t_star_,
        "rows": len(data),
        "splits": sizes,
        "collect_errors": collected.errors,
        "judge_errors": judged.errors,
        "router": str(router_dir),
    }
    report = _evaluate_on_test(trained, data, facts, folder)
    return BuildResult(
        data=data_path,
        router=router_dir,
        report_json=folder / REPORT_JSON,
        report_markdown=folder / REPORT_MARKDOWN,
        plot=folder / PLOT,
        collect=collected,
        judge=judged,
        split_sizes=sizes,
        report=report,
    )


def _split_sizes(data: PairData, collected: CollectSummary, judged: JudgeSummary) -> dict[str, int]:
    """Rows per split; every split must have some.

    Raises:
        TrainingError: If a split is empty.
    """
    sizes = {name: sum(s == name for s in data.splits) for name, _ in SPLITS}
    if min(sizes.values()) == 0:
        raise TrainingError(
            f"too few scored rows to fill train/val/test (sizes {sizes}, {collected.errors} "
            f"requests and {judged.errors} scores missing); give more queries (a few hundred)"
        )
    return sizes


def _evaluate_on_test(
    trained: Router, data: PairData, facts: Mapping[str, Any], folder: Path
) -> dict[str, Any]:
    """Evaluate the router on the test split; write the JSON and Markdown reports and plot.

    Returns:
        The report as written to :data:`REPORT_JSON`.
    """
    test = data.split("test")
    evaluation = evaluate_scores(
        {"router": trained.score(list(test.queries))},
        test.small_quality,
        test.large_quality,
        queries=list(test.queries),
    )
    report = {"build": facts, "evaluation": evaluation.to_dict()}
    write_text_atomic(folder / REPORT_JSON, json.dumps(report, indent=2, default=str) + "\n")
    write_text_atomic(folder / REPORT_MARKDOWN, _markdown(facts) + "\n" + evaluation.to_markdown())
    title = f"{facts['small']['name']} vs {facts['large']['name']} (test split)"
    plot_curves(evaluation, folder / PLOT, title=title)
    return report


def _samples_text(samples: int | Mapping[str, int]) -> str:
    if isinstance(samples, int):
        return str(samples)
    return ", ".join(f"{name} {count}" for name, count in samples.items())


def _markdown(facts: Mapping[str, Any]) -> str:
    small, large, metric = facts["small"], facts["large"], facts["metric"]
    args = ", ".join(f"{k}={v}" for k, v in metric["args"].items())
    splits = ", ".join(f"{name} {count}" for name, count in facts["splits"].items())
    t_star = "" if facts["t_star"] is None else f" (t* = {facts['t_star']:.2f})"
    return "\n".join(
        [
            f"# Router: {small['name']} vs {large['name']}",
            "",
            f"- small model: `{small['name']}` (`{small['spec']}`)",
            f"- large model: `{large['name']}` (`{large['spec']}`)",
            f"- responses per model and query: {_samples_text(facts['samples'])}",
            f"- quality metric: `{metric['name']}`" + (f" ({args})" if args else ""),
            f"- labels: `{facts['label_type']}`{t_star}",
            f"- rows with both scores: {facts['rows']} ({splits})",
            f"- requests still failing: {facts['collect_errors']}; "
            f"responses without a score: {facts['judge_errors']}",
            f"- router folder: `{facts['router']}`",
            "",
            "## Evaluation on the test split",
            "",
        ]
    )
