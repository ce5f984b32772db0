"""The real pair end to end: pilot, pipeline, live chains, cascade analysis, report.

Run from the repository root (after ``benchmarks/real_pair/README.md``'s set-up)::

    python -m benchmarks.real_pair.run pilot --pilot mmlu=40,crux=40,commongen=40
    python -m benchmarks.real_pair.run select --sets crux,commongen
    python -m benchmarks.real_pair.run all --sets crux,commongen --labels trans --head logistic

(the README's "This run" lists the commands and sizes of the last run, 45 minutes on two
cores from an empty work folder).

Stages (each reruns from the files the earlier ones left in ``--work``; ``collect`` and
``judge`` resume from their journals):

- ``pilot``: the first train questions of each candidate set (:mod:`benchmarks.real_pair.pilot`);
- ``collect``: the chosen sets' questions, ``hybrid-llm collect`` (greedy pair), the small
  model's samples at temperature 0.7, ``hybrid-llm judge``;
- ``select`` (not in ``all``): a router per ``--candidates`` labels/head pair, each evaluated
  on the val split only (``router_selection.json``); its winner goes to ``train``;
- ``train``: ``hybrid-llm train --labels --head`` and ``hybrid-llm evaluate`` (trained and
  bundled router) on the test split;
- ``baselines``: the test questions through an LCEL chain with ``ChatHybrid`` and a
  LlamaIndex ``VectorStoreIndex`` query engine with ``HybridLLM``, every call to the small
  model, then every call to the large one (:mod:`benchmarks.real_pair.live`);
- ``live``: the same chains routed by a router at a quality level (``--live``);
- ``report``: every router at every ``--levels`` quality level (the live passes as run, the
  others replayed from the baseline passes), the baselines at each one's share, the cascade
  analysis (:mod:`benchmarks.real_pair.cascade`); JSON, markdown and PNG in
  ``benchmarks/results/real_pair/``;
- ``replay``: ``hybrid-llm replay`` of every collected row through the live loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.real_pair import cascade, live, pipeline, report
from benchmarks.real_pair.pilot import run_pilot
from benchmarks.real_pair.questions import read_jsonl, sample, write_jsonl
from shared_router.routing.router import Router

RESULTS = pipeline.ROOT / "benchmarks" / "results" / "real_pair"
WORK = Path(os.environ.get("HYBRID_REAL_PAIR_WORK", "/tmp/hybrid_real_pair"))
CANDIDATES = ["mmlu", "crux", "commongen"]
LEVELS = (0.05, 0.15, 0.30)


def _save(name: str, payload: Any) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(payload, indent=2) + "\n")


def _update(name: str, entries: dict[str, Any]) -> None:
    """Add entries to a results file (read last, so that stages of two processes add up)."""
    path = RESULTS / name
    _save(name, {**(json.loads(path.read_text()) if path.exists() else {}), **entries})


def stage_pilot(work: Path, args: argparse.Namespace) -> None:
    """Run the pilot on the candidate sets; add their summaries to ``pilot.json``."""
    found = run_pilot(work, args.pilot)
    _update("pilot.json", found)


def data_files(work: Path, sets: list[str]) -> list[Path]:
    """The judged data file of each chosen set."""
    return [work / f"{name}.jsonl" for name in sets]


def stage_collect(work: Path, args: argparse.Namespace) -> None:
    """Questions, greedy pair, small-model samples (test split) and judging per set.

    The pilot's questions are the first train questions here, and its collect journal seeds
    this one's, so their answers are not asked for again.
    """
    timings: dict[str, Any] = {}
    for name in args.sets:
        queries, greedy = work / f"{name}.queries.jsonl", work / f"{name}.greedy.jsonl"
        test_file, data = work / f"{name}.test_file.jsonl", work / f"{name}.jsonl"
        write_jsonl(queries, sample(name, args.counts))
        _reuse_pilot(work, name)
        pair_s = pipeline.collect_pair(queries, greedy, name, work / f"{name}.lp_greedy.jsonl")
        rows = read_jsonl(greedy)
        write_jsonl(test_file, [row for row in rows if row["split"] == "test"])
        samples_s = pipeline.collect_samples(
            test_file, work / f"{name}.sampled.jsonl", name, args.samples,
            work / f"{name}.lp_samples.jsonl",
        )  # fmt: skip
        sampled = read_jsonl(work / f"{name}.sampled.jsonl")
        write_jsonl(data, [row for row in rows if row["split"] != "test"] + sampled)
        timings[name] = {
            "collect_pair_s": pair_s,
            "collect_samples_s": samples_s,
            "judge_s": pipeline.judge(data, name),
            "rows": len(rows),
        }
        print(name, timings[name])
    _update("collect_timings.json", timings)


def _reuse_pilot(work: Path, name: str) -> None:
    journal = work / f"{name}.greedy.jsonl.journal"
    pilot = work / "pilot" / f"{name}.jsonl.journal"
    if pilot.exists() and not journal.exists():
        shutil.copyfile(pilot, journal)
        shutil.copyfile(work / "pilot" / f"{name}.logprobs.jsonl", work / f"{name}.lp_greedy.jsonl")


def stage_select(work: Path, args: argparse.Namespace) -> None:
    """Train a router per ``--candidates`` labels/head pair and evaluate each on *val* only
    (the test split is never looked at); ``router_selection.json`` lists them, best first by
    the area under the quality-cost curve (``apgr``). ``train --labels --head`` then uses the
    chosen one."""
    files = data_files(work, args.sets)
    found = []
    for labels, head in args.candidates:
        folder = work / "candidates" / f"{labels}-{head}"
        seconds = pipeline.train(files, folder, labels, head)
        report = pipeline.evaluate(files, folder, folder / "evaluate_val", split="val")
        metrics = report["metrics"]["real-pair-router"]
        found.append(
            {
                "labels": labels,
                "head": head,
                "train_s": seconds,
                "val_n": report["n"],
                **{key: metrics[key] for key in ("apgr", "gap_recovered", "area")},
                "val_random_apgr": report["metrics"]["random"]["apgr"],
                "val_length_apgr": report["metrics"]["shorter prompts go small"]["apgr"],
            }
        )
        print(found[-1], flush=True)
    found.sort(key=lambda entry: -float(entry["apgr"]))
    _save("router_selection.json", {"split": "val", "candidates": found})


def stage_train(work: Path, args: argparse.Namespace) -> None:
    """Train the pair's router; evaluate it and the bundled one on the test split."""
    files = data_files(work, args.sets)
    seconds = pipeline.train(files, work / "router", args.labels, args.head)
    RESULTS.mkdir(parents=True, exist_ok=True)
    pipeline.evaluate(files, work / "router", RESULTS / "evaluate_trained")
    pipeline.evaluate(files, "default", RESULTS / "evaluate_default")
    _save("train.json", {"train_s": seconds, "labels": args.labels, "head": args.head})


def _routers(work: Path) -> dict[str, Router]:
    return {"trained": Router.load(work / "router"), "default": Router.load("default")}


def _runner(
    framework: str, name: str, rows: list[dict[str, Any]], embed: Any
) -> live.LangChainPasses | live.LlamaIndexPasses:
    if framework == "langchain":
        return live.LangChainPasses(name)
    return live.LlamaIndexPasses(name, [row for row in rows if row["split"] == "train"], embed)


def _live_passes(
    work: Path,
    args: argparse.Namespace,
    runs: dict[str, tuple[str, live.Knobs]],
    frameworks: Sequence[str],
    reuse: Sequence[str] = (),
) -> None:
    """Run passes (label -> router name, knobs) over each set's test questions; every answer
    is added to ``work/live_<set>.json``.

    In the ``reuse`` frameworks a question already answered in the same pass (same label)
    is not asked again: its earlier answer is kept, as the collect journal keeps greedy
    answers. Only for passes whose answer does not depend on anything that changed.
    """
    routers = {
        name: Router.load(work / "router" if name == "trained" else name)
        for name in {r for r, _ in runs.values()}
    }
    embed = live.offline_embedding() if "llamaindex" in frameworks else None
    for name in args.sets:
        rows = read_jsonl(work / f"{name}.jsonl")
        test = [row for row in rows if row["split"] == "test"]
        path = work / f"live_{name}.json"
        for framework in frameworks:
            runner = _runner(framework, name, rows, embed)
            for label, (router, knobs) in runs.items():
                start = time.perf_counter()
                key = f"{framework}/{label}"
                passes = json.loads(path.read_text()) if path.exists() else {}
                done = {a["id"]: a for a in passes.get(key, [])} if framework in reuse else {}
                todo = [row for row in test if row["id"] not in done]
                done.update(
                    (a["id"], a) for a in live.as_dicts(runner.run(todo, routers[router], knobs))
                )
                passes = json.loads(path.read_text()) if path.exists() else {}
                passes[key] = [done[row["id"]] for row in test]
                path.write_text(json.dumps(passes))
                seconds = time.perf_counter() - start
                print(
                    name,
                    key,
                    f"{len(todo)} asked, {len(test) - len(todo)} kept, {seconds:.0f} s",
                    flush=True,
                )
            del runner


def stage_baselines(work: Path, args: argparse.Namespace) -> None:
    """Always-small and always-large through both frameworks (any router: the thresholds 0
    and 1 send every call to one model, the bundled router still scoring each one).

    LangChain's prompt is the question alone, so a greedy answer an earlier run left in the
    pass file is kept; LlamaIndex's carries an example retrieved from the train questions,
    which change with ``--counts``, so its passes are run whole.
    """
    runs = {
        "always-small": ("default", live.ALL_SMALL),
        "always-large": ("default", live.ALL_LARGE),
    }
    _live_passes(work, args, runs, ("langchain", "llamaindex"), reuse=("langchain",))


def stage_live(work: Path, args: argparse.Namespace) -> None:
    """The routed passes run live (``--live``), in ``--live-frameworks``."""
    runs = {
        f"{router} @ {drop:.2f}": (router, {"max_quality_drop": drop}) for router, drop in args.live
    }
    _live_passes(work, args, runs, args.live_frameworks)


def _answers(records: list[dict[str, Any]]) -> list[live.Answer]:
    return [live.Answer(**record) for record in records]


def stage_report(work: Path, args: argparse.Namespace) -> None:
    """Every configuration of both frameworks beside the baselines; cascade analysis; files."""
    routers = _routers(work)
    passes = {name: json.loads((work / f"live_{name}.json").read_text()) for name in args.sets}
    test = [
        row
        for name in args.sets
        for row in read_jsonl(work / f"{name}.jsonl")
        if row["split"] == "test"
    ]
    queries = [row["query"] for row in test]
    frameworks: dict[str, list[dict[str, Any]]] = {}
    checks: dict[str, float] = {}
    for framework in ("langchain", "llamaindex"):

        def joined(label: str, framework: str = framework) -> list[live.Answer]:
            return [a for name in args.sets for a in _answers(passes[name][f"{framework}/{label}"])]

        small, large = joined("always-small"), joined("always-large")
        large_cost = sum(report.answer_cost(a) for a in large)
        rows = [
            {"name": "always-large", **report.summary(large, large_cost)},
            {"name": "always-small", **report.summary(small, large_cost)},
        ]
        levels = [(f"{d:.2f}", {"max_quality_drop": d}, d) for d in args.levels] + [
            (f"large_share {x:.2f}", {"large_share": x}, None) for x in args.shares
        ]
        for router_name, router in routers.items():
            for level, knobs, drop in levels:
                label = f"{router_name} @ {level}"
                replayed = live.replay(live.decisions(router, test, knobs), small, large)
                measured = all(f"{framework}/{label}" in passes[n] for n in args.sets)
                answers = joined(label) if measured else replayed
                if measured:
                    checks[f"{framework}/{label}"] = live.agreement(answers, replayed)
                row = report.configuration(label, answers, drop, queries, small, large)
                rows.append({**row, "measured_live": measured})
        frameworks[framework] = rows
    analysis = cascade_analysis(work, args, routers["trained"])
    payload = {
        "price_ratio_small_to_large": live.PRICE_RATIO,
        "test_questions": len(test),
        "sets": args.sets,
        "frameworks": frameworks,
        "live_vs_replayed_agreement": checks,
        "cascade": analysis,
    }
    _save("real_pair.json", payload)
    markdown = "".join(report.markdown_table(f, rows) + "\n" for f, rows in frameworks.items())
    markdown += cascade_markdown(analysis)
    (RESULTS / "real_pair.md").write_text(markdown)
    report.plot(RESULTS / "real_pair.png", frameworks)
    print(markdown)


def cascade_analysis(work: Path, args: argparse.Namespace, router: Router) -> dict[str, Any]:
    """Cascade signals against the trained router on the test split."""
    rows = []
    for name in args.sets:
        logprobs = cascade.read_logprobs(work / f"{name}.lp_greedy.jsonl")
        rows.extend(cascade.table(read_jsonl(work / f"{name}.jsonl"), name, logprobs))
    out = {}
    for label in ("test",):
        chosen = [row for row in rows if row["split"] == label]
        signals = {
            "router": np.asarray(router.score([row["query"] for row in chosen]), dtype=float),
            "mean_logprob": np.array([row["mean_logprob"] for row in chosen]),
            "agreement": np.array([row["agreement"] for row in chosen]),
        }
        out[label] = cascade.compare(chosen, signals)
    return out


def cascade_markdown(analysis: dict[str, Any]) -> str:
    """The cascade analysis as markdown tables."""
    text = ""
    for label, result in analysis.items():
        text += (
            f"#### Cascade signals ({label}, n={result['n']}, small good enough on "
            f"{result['share_small_good_enough']:.2f})\n\n"
            "| signal | AUC | GR@0.25 | cost@0.25 | GR@0.50 | cost@0.50 | GR@0.75 | cost@0.75 |\n"
            "|---|---|---|---|---|---|---|---|\n"
        )
        for signal in ("router", "mean_logprob", "agreement"):
            entry = result[signal]
            cells = []
            for share in ("0.25", "0.50", "0.75"):
                gr = entry[share]["gap_recovered"]
                cells += ["-" if gr is None else f"{gr:.2f}", f"{entry[share]['cost']:.2f}"]
            auc = "-" if entry["auc"] is None else f"{entry['auc']:.2f}"
            text += f"| {signal} | {auc} | " + " | ".join(cells) + " |\n"
        text += "\n"
    return text


def stage_replay(work: Path, args: argparse.Namespace) -> None:
    """``hybrid-llm replay`` of every collected row (all splits of the chosen sets, in a
    shuffled stream) through the live loop, from the bundled and from the trained router, at
    each ``--replay-drops`` level and ``--shadow-rates`` rate; ``replay.json`` and
    ``replay.md``."""
    combined = work / "replay_rows.jsonl"
    write_jsonl(combined, [row for path in data_files(work, args.sets) for row in read_jsonl(path)])
    runs = {}
    for router, folder in (("default", "default"), ("trained", str(work / "router"))):
        for drop in args.replay_drops:
            for rate in args.shadow_rates:
                label = f"{router} @ {drop:.2f}, shadow {rate:.2f}"
                out = work / "replay" / f"{router}-{drop:.2f}-{rate:.2f}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                seconds = pipeline.hybrid_llm(
                    "replay", combined, "--small", pipeline.SMALL, "--large", pipeline.LARGE,
                    "--router", folder, "--max-quality-drop", str(drop),
                    "--shadow-rate", str(rate), "--small-cost", str(live.PRICE_RATIO),
                    "--json", out,
                )  # fmt: skip
                found = json.loads(out.read_text())
                runs[label] = {
                    key: found[key]
                    for key in (
                        "n", "shadowed", "labelled", "retrains", "swaps", "requested_drop",
                        "realised_drop", "small_share", "q_always_large", "q_routed",
                        "cost_saved", "cost_saved_net", "final_version",
                    )
                }  # fmt: skip
                runs[label]["wall_s"] = seconds
    _save("replay.json", runs)
    lines = [
        "| replay | rows | labelled | retrains | small share | asked drop | realised drop | "
        "cost saved (net of shadows) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, run in runs.items():
        lines.append(
            f"| {label} | {run['n']} | {run['labelled']} | {run['retrains']} | "
            f"{run['small_share']:.2f} | {run['requested_drop']:.2f} | "
            f"{run['realised_drop']:.3f} | {run['cost_saved_net']:.2f} |"
        )
    (RESULTS / "replay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _counts(text: str) -> dict[str, int]:
    return {key: int(value) for key, value in (part.split("=") for part in text.split(","))}


STAGES = {
    "pilot": stage_pilot,
    "collect": stage_collect,
    "select": stage_select,
    "train": stage_train,
    "baselines": stage_baselines,
    "live": stage_live,
    "report": stage_report,
    "replay": stage_replay,
}


def main() -> None:
    """Parse the stage and its options; run it (``all``: every stage but pilot and select)."""
    parser = argparse.ArgumentParser(description="The real local pair end to end.")
    parser.add_argument("stage", choices=[*STAGES, "all"])
    parser.add_argument("--work", type=Path, default=WORK, help="working folder")
    parser.add_argument(
        "--sets",
        type=lambda s: s.split(","),
        default=["crux", "commongen"],
        help="question sets of the stages after the pilot (the pilot's choice)",
    )
    parser.add_argument(
        "--pilot",
        type=_counts,
        default={name: 40 for name in CANDIDATES},
        help="pilot questions per set, e.g. crux=30,commongen=30",
    )
    parser.add_argument(
        "--counts",
        type=_counts,
        default={"train": 50, "val": 20, "test": 25},
        help="questions per split and set, e.g. train=50,val=20,test=25",
    )
    parser.add_argument("--samples", type=int, default=3, help="small-model samples (T=0.7)")
    parser.add_argument(
        "--candidates",
        type=lambda s: [tuple(p.split("/")) for p in s.split(",")],
        default=[("trans", "logistic"), ("det", "logistic"), ("trans", "mlp"), ("det", "mlp")],
        help="labels/head pairs the select stage compares on val, e.g. trans/logistic,det/mlp",
    )
    parser.add_argument("--labels", default="trans", help="train: det, prob or trans")
    parser.add_argument(
        "--replay-drops", type=lambda s: [float(x) for x in s.split(",")], default=[0.15]
    )
    parser.add_argument(
        "--shadow-rates", type=lambda s: [float(x) for x in s.split(",")], default=[0.1, 0.3]
    )
    parser.add_argument("--head", default="logistic", help="train: logistic or mlp")
    parser.add_argument(
        "--levels", type=lambda s: [float(x) for x in s.split(",")], default=list(LEVELS)
    )
    parser.add_argument(
        "--shares",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.5],
        help="large_share levels reported beside the max_quality_drop ones (replayed)",
    )
    parser.add_argument(
        "--live",
        type=lambda s: [(p.split("@")[0], float(p.split("@")[1])) for p in s.split(",")],
        default=[("trained", 0.15)],
        help="routed passes run live (the others are replayed), e.g. trained@0.15,default@0.15",
    )
    parser.add_argument(
        "--live-frameworks",
        type=lambda s: s.split(","),
        default=["langchain", "llamaindex"],
        help="frameworks whose routed passes run live",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    manual = ("pilot", "select")  # their findings choose the sets and --labels/--head
    stages = [s for s in STAGES if s not in manual] if args.stage == "all" else [args.stage]
    for stage in stages:
        STAGES[stage](args.work, args)


if __name__ == "__main__":
    main()
