"""The product's own pipeline on the real pair: ``hybrid-llm collect``, ``judge``, ``train``,
``evaluate``, each run as the command a user would type.

The model SPECs are ``module:callable`` factories in :mod:`benchmarks.real_pair.models`, the
metrics ``match`` or ``module:function`` ones in :mod:`benchmarks.real_pair.metrics`, so every
command runs with the repository root on ``PYTHONPATH``. Requests run one at a time
(``--concurrency 1``): one llama.cpp model object must not be called from two threads at once,
and the two cores are better spent on one call's threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.real_pair.questions import SETS

ROOT = Path(os.path.abspath(__file__)).parents[2]
"""The folder ``benchmarks`` is imported from (the repository root, symbolic links kept)."""
SMALL = "smollm2-135m"
LARGE = "qwen2.5-coder-0.5b"
SAMPLED = "smollm2-135m-t0.7"
SMALL_SPEC = "benchmarks.real_pair.models:small_chat_model"
LARGE_SPEC = "benchmarks.real_pair.models:large_chat_model"
SAMPLE_TEMPERATURE = 0.7


def hybrid_llm(*args: str | Path) -> float:
    """Run one ``hybrid-llm`` command from the repository root; return its wall time in s.

    Raises:
        subprocess.CalledProcessError: If the command fails.
    """
    command = [str(Path(sys.executable).parent / "hybrid-llm"), *map(str, args)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    print("$", " ".join(command[:1] + [a if len(a) < 90 else a[:87] + "..." for a in command[1:]]))
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def collect_pair(queries: Path, output: Path, set_name: str, logprob_log: Path) -> float:
    """Greedy answers of both models (one sample each); the small one's log-probs logged."""
    max_tokens = f"max_tokens={SETS[set_name].max_tokens}"
    return hybrid_llm(
        "collect", queries, "-o", output,
        "--small", SMALL_SPEC, "--large", LARGE_SPEC,
        "--small-name", SMALL, "--large-name", LARGE,
        "--small-param", f"logprob_log={logprob_log}", "--small-param", max_tokens,
        "--large-param", max_tokens,
        "--concurrency", "1", "--timeout", "300", "--retries", "1", "--no-progress",
    )  # fmt: skip


def collect_samples(
    data: Path, output: Path, set_name: str, samples: int, logprob_log: Path
) -> float:
    """``samples`` answers of the small model at temperature 0.7, added to ``data``'s rows.

    Runs the library's :func:`~shared_router.pipeline.collect.collect` (the function behind
    ``hybrid-llm collect``) with the small model alone: the command takes exactly two models
    (with different names) and one ``--samples`` for both, and the large model's samples are
    not needed here (they would cost more than all the small model's answers together).
    """
    from shared_router.pipeline.collect import collect
    from shared_router.pipeline.settings import EngineSettings
    from shared_router.pipeline.sources import RetryPolicy, SourceSpec

    settings = {
        "temperature": SAMPLE_TEMPERATURE,
        "max_tokens": SETS[set_name].max_tokens,
        "logprob_log": str(logprob_log),
    }
    engine = EngineSettings(
        concurrency=1, retry=RetryPolicy(attempts=2, timeout=300), progress=False
    )
    start = time.perf_counter()
    collect(
        data, output, {SAMPLED: SourceSpec(SMALL_SPEC, settings)}, samples=samples, engine=engine
    )
    return time.perf_counter() - start


def judge(data: Path, set_name: str) -> float:
    """Score every response with the set's reference-match metric (in place)."""
    spec = SETS[set_name]
    metric_args = [arg for pair in spec.metric_args for arg in ("--metric-arg", pair)]
    return hybrid_llm("judge", data, "--metric", spec.metric, *metric_args, "--no-progress")


def train(data: list[Path], output: Path, labels: str = "trans", head: str = "logistic") -> float:
    """Train a router for the pair (``--labels`` det, prob or trans; ``--head`` logistic
    (exact L2, numpy) or mlp)."""
    return hybrid_llm(
        "train", *data, "--small", SMALL, "--large", LARGE,
        "--head", head, "--labels", labels, "--name", "real-pair-router", "-o", output,
    )  # fmt: skip


def evaluate(
    data: list[Path], router: str | Path, stem: Path, split: str = "test"
) -> dict[str, Any]:
    """``hybrid-llm evaluate`` on one split: ``stem``.json/.md/.png; returns the JSON."""
    hybrid_llm(
        "evaluate", *data, "--router", router, "--small", SMALL, "--large", LARGE,
        "--split", split, "--json", stem.with_suffix(".json"),
        "--markdown", stem.with_suffix(".md"), "--plot", stem.with_suffix(".png"),
    )  # fmt: skip
    report: dict[str, Any] = json.loads(stem.with_suffix(".json").read_text())
    return report
