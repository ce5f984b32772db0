"""The core ``hybrid-llm`` commands on a small real subset of ../shared/data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared_router.cli.app import main

SMALL, LARGE = "gemma-2-9b-it", "gemma-2-27b-it"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An embedding cache of this module's own, so that tests do not share state."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("cache") / "embeddings.sqlite"
        patch.setenv("HYBRID_LLM_CACHE", str(path))
        yield


@pytest.fixture(scope="module")
def subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 train, 40 val and 40 test rows of zeroeval CRUX."""
    wanted = {"train": 60, "val": 40, "test": 40}
    rows = []
    for line in (shared_data / "zeroeval" / "crux.jsonl").read_text().splitlines():
        row = json.loads(line)
        if wanted.get(row["split"], 0) > 0 and SMALL in row["models"] and LARGE in row["models"]:
            wanted[row["split"]] -= 1
            rows.append(line)
    path = tmp_path_factory.mktemp("data") / "crux_subset.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(subset: Path, cache_env: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("routers") / "crux"
    with pytest.MonkeyPatch.context():
        try:
            main(
                [
                    "train",
                    str(subset),
                    "--small",
                    SMALL,
                    "--large",
                    LARGE,
                    "--labels",
                    "trans",
                    "--hidden",
                    "",
                    "--epochs",
                    "30",
                    "--precision",
                    "fp32",
                    "-o",
                    str(folder),
                ]
            )
        except SystemExit as done:
            assert not done.code, f"train exited with {done.code}"
    return folder


def test_train_writes_a_loadable_calibrated_router(trained: Path) -> None:
    config = json.loads((trained / "config.json").read_text())
    assert config["pair"] == {"small": SMALL, "large": LARGE}
    assert config["label_type"] == "trans"
    assert config["encoder"]["precision"] == "fp32"
    assert json.loads((trained / "calibration.json").read_text()) is not None


def test_evaluate_writes_json_markdown_and_plot(
    trained: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, plot, md = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "r.md"
    code, out, _ = run(
        [
            "evaluate",
            str(subset),
            "--router",
            str(trained),
            "--small",
            SMALL,
            "--large",
            LARGE,
            "--split",
            "test",
            "--json",
            str(report),
            "--plot",
            str(plot),
            "--markdown",
            str(md),
        ],
        capsys,
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert data["n"] == 40
    assert "random" in out and "oracle" in out and "shorter prompts go small" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.read_text() == out.strip() + "\n" or md.read_text().strip() == out.strip()


def test_calibrate_info_score_and_route(
    trained: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recalibrated = tmp_path / "recalibrated"
    code, _, err = run(
        [
            "calibrate",
            str(subset),
            "--router",
            str(trained),
            "--small",
            SMALL,
            "--large",
            LARGE,
            "--split",
            "test",
            "-o",
            str(recalibrated),
        ],
        capsys,
    )
    assert code == 0, err
    code, out, _ = run(["info", "--router", str(recalibrated)], capsys)
    assert code == 0 and json.loads(out)["calibration"]["n"] == 40
    calibrate = ["calibrate", str(subset), "-r", str(trained), "--small", SMALL, "--large", LARGE]
    for split in ([], ["--split", "train"]):  # rows the router was fitted on
        code, _, err = run([*calibrate, *split, "-o", str(tmp_path / "on-train")], capsys)
        assert (code, err) == (
            2,
            f"error: router {trained} was trained on the 'train' rows of this data, and a "
            "calibration on rows it was fitted on promises more than it keeps; pass --split "
            "val or --split test, or data it was not trained on\n",
        )
        assert not (tmp_path / "on-train").exists()

    scored = tmp_path / "scored.jsonl"
    code, _, _ = run(["score", str(subset), "--router", str(trained), "-o", str(scored)], capsys)
    lines = [json.loads(line) for line in scored.read_text().splitlines()]
    assert code == 0 and len(lines) == 140
    assert all(0.0 <= line["score"] <= 1.0 and "models" in line for line in lines)

    code, out, _ = run(
        ["route", "--router", str(trained), "--threshold", "0", "print(1)", "   "], capsys
    )
    decisions = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert decisions[0]["model"] == "small" and decisions[0]["knob"] == "threshold"
    assert decisions[1]["model"] == "large" and "empty" in decisions[1]["reason"]


def test_demo_routes_with_the_bundled_router(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["demo"], capsys)
    assert code == 0
    assert "hybrid-llm-default" in out and "to the small model" in out
    assert "share of the router's calibration traffic" in out


def test_train_defaults_to_int8_and_takes_a_logistic_head(
    subset: Path, cache_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "crux-int8"
    argv = ["train", str(subset), "--small", SMALL, "--large", LARGE, "--head", "logistic"]
    code, _, err = run([*argv, "-o", str(folder)], capsys)  # int8 is the default
    assert code == 0, err
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"]["precision"] == "int8"
    assert config["training"]["head_type"] == "logistic" and config["head"]["hidden_sizes"] == []
    assert config["encoder"]["identity"].endswith("|int8")
    code, out, _ = run(["route", "--router", str(folder), "--threshold", "0.5", "hi"], capsys)
    assert code == 0 and json.loads(out.splitlines()[0])["model"] in ("small", "large")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "{missing}", "--small", "a", "--large", "b", "-o", "x"], "file not found"),
        (["train", "{bad}", "--small", "a", "--large", "b", "-o", "x"], "bad.jsonl:2:"),
        (["train", "{subset}", "--small", "nope", "--large", LARGE, "-o", "x"], "models there"),
        (
            ["train", "{subset}", "--small", SMALL, "--large", LARGE, "--labels", "x", "-o", "x"],
            "--labels",
        ),
        (
            [
                "train",
                "{subset}",
                "--small",
                SMALL,
                "--large",
                LARGE,
                "--precision",
                "fp16",
                "-o",
                "x",
            ],
            "precision must be 'fp32' or 'int8'",
        ),
        (
            [
                "train",
                "{subset}",
                "--small",
                SMALL,
                "--large",
                LARGE,
                "--head",
                "forest",
                "-o",
                "x",
            ],
            "--head must be mlp or logistic",
        ),
        (["route", "--threshold", "0.5", "--large-share", "0.2", "hi"], "at most one"),
        (["score", "{bad}", "-o", "x"], "bad.jsonl:2:"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    subset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "query": "fine", "models": {"a": {"score": 1.0}}}\n{not json\n')
    paths = {"missing": str(tmp_path / "none.jsonl"), "bad": str(bad), "subset": str(subset)}
    code, out, err = run([arg.format(**paths) for arg in argv], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_too_few_rows_to_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {
            "id": str(i),
            "query": f"q{i}",
            "split": split,
            "models": {"a": {"score": 1.0}, "b": {"score": 0.0}},
        }
        for i, split in enumerate(["train", "val"])
    ]
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(
        ["train", str(data), "--small", "a", "--large", "b", "-o", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: too few rows for a vs b: 1 in 'train'")
