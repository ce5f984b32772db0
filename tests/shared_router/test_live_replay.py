"""``hybrid-llm replay``, ``retrain`` and ``report``: on a real shared pair, and on bad input."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from shared_router.cli.app import main
from shared_router.encoders.cache import CACHE_ENV
from shared_router.live.store import open_store
from tests.shared_router.live_synthetic import planted_rows

PAIR = ("llmrouter_dcrouter/test.jsonl", "llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct")


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.mark.slow
def test_replay_on_a_real_pair_writes_the_summary_the_decisions_and_the_plot(
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache.sqlite"))
    relative, small, large = PAIR
    argv = [
        "replay",
        str(shared_data / relative),
        "--small",
        small,
        "--large",
        large,
        "--max-quality-drop",
        "0.05",
        "--shadow-rate",
        "0.6",
        "--seed",
        "3",
        "--warmup",
        "100",
        "--json",
        str(tmp_path / "out.json"),
        "--decisions",
        str(tmp_path / "out.jsonl"),
        "--plot",
        str(tmp_path / "curve.png"),
    ]
    assert _run(argv) == 0
    summary = json.loads((tmp_path / "out.json").read_text())
    assert json.loads(capsys.readouterr().out) == summary
    for key in (
        "n",
        "shadowed",
        "retrains",
        "requested_drop",
        "realised_drop",
        "small_share",
        "q_always_large",
        "q_routed",
        "cost_saved_net",
        "learning_curve",
    ):
        assert key in summary
    assert summary["requested_drop"] == 0.05 and summary["retrains"] >= 1
    # the versions were in the replay's temporary store: no path to a folder that is gone
    assert [v["path"] for v in summary["retrain_history"]] == [None] * summary["retrains"]
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == summary["n"]
    assert sum(line["shadowed"] for line in lines) == summary["shadowed"]
    assert {line["model"] for line in lines} <= {"small", "large"}
    assert all({"id", "model", "shadowed", "score", "threshold"} <= set(line) for line in lines)
    assert (tmp_path / "curve.png").stat().st_size > 0
    # the same seed streams the same decisions (the retrained versions get new names)
    assert _run([*argv[:-6], "--decisions", str(tmp_path / "again.jsonl")]) == 0
    again = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    for line in (*lines, *again):
        del line["router_version"]
    assert again == lines


def test_retrain_and_report_on_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shared_router.routing.router import Router

    url = str(tmp_path / "live.sqlite")
    store = open_store(url)
    store.append(planted_rows(300, seed=0, identity=Router.load("default").encoder_.identity))
    assert _run(["retrain", "--store", url, "-o", str(tmp_path / "versions")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["swapped"] is True and Path(record["path"]).is_dir()
    out = tmp_path / "report.json"
    assert (
        _run(["report", "--store", url, "--json", str(out), "--plot", str(tmp_path / "r.png")]) == 0
    )
    report = json.loads(out.read_text())
    assert report["labelled_rows"] == 300
    assert report["current_version"] == record["version"]
    assert [v["version"] for v in report["retrain_history"]] == [record["version"]]
    assert report["realised_drop"] == 0.0  # every planted row went large
    assert (tmp_path / "r.png").stat().st_size > 0
    capsys.readouterr()
    # no row came in since: a rerun would fit the same head again
    assert _run(["retrain", "--store", url, "-o", str(tmp_path / "versions")]) == 2
    assert f"no new rows since version {record['version']} was fitted on 300 rows" in (
        capsys.readouterr().err
    )
    assert len(open_store(url).versions()) == 1
    argv = ["retrain", "--store", url, "-o", str(tmp_path / "det"), "--labels", "det", "--force"]
    assert _run(argv) == 0
    fixed = json.loads(capsys.readouterr().out)
    chosen = Router.load(fixed["path"]).metadata_["metrics"]["live_holdout"]
    assert chosen["labels"] == "det" and chosen["label_gaps_out_of_fold"] == {}


def test_report_prints_a_summary_that_flags_a_broken_promise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "live.sqlite")
    rows = planted_rows(100, seed=0, identity="any")
    # 40 of the 100 went small, at a loss of 0.5 of quality 1 each: a 20% drop
    rows = [
        dataclasses.replace(r, decision="small", small_quality=0.5, large_quality=1.0)
        if i < 40
        else dataclasses.replace(r, small_quality=1.0, large_quality=1.0)
        for i, r in enumerate(rows)
    ]
    open_store(url).append(rows)
    assert _run(["report", "--store", url, "--max-quality-drop", "0.05"]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0] == (
        f"live store {url}: 100 labelled rows; routing with the starting router (no version "
        "swapped in)"
    )
    assert summary[1].startswith("realised quality drop 20.00% (95% interval ")
    assert summary[1].endswith(" against 5.00% requested: OVER the promise")
    assert _run(["report", "--store", url, "--max-quality-drop", "0.21"]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[1]
        .endswith(" against 21.00% requested: kept, though the interval reaches above it")
    )
    assert _run(["report", "--store", url, "--max-quality-drop", "0.25", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requested_drop"] == 0.25 and report["promise_kept"] is True
    assert report["realised_drop"] == pytest.approx(0.2)
    assert _run(["report", "--store", url, "--max-quality-drop", "5"]) == 2
    assert "in [0, 1] (for 5% write 0.05), got 5.0" in capsys.readouterr().err


def test_a_relative_output_folder_is_recorded_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared_router.routing.router import Router

    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///live.sqlite").append(
        planted_rows(300, seed=0, identity=Router.load("default").encoder_.identity)
    )
    assert _run(["retrain", "--store", "sqlite:///live.sqlite", "-o", "routers"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == str(tmp_path / "routers" / record["version"])
    assert open_store(tmp_path / "live.sqlite").current_version().path == record["path"]


def test_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["report", "--store", "mysql://db/live"]) == 2
    assert "unknown store URL scheme 'mysql'" in capsys.readouterr().err
    typo = str(tmp_path / "typo.sqlite")
    for command in (["report"], ["retrain", "-o", str(tmp_path / "v")]):
        assert _run([*command, "--store", typo]) == 2
        assert f"no live store at '{typo}': the file does not exist" in capsys.readouterr().err
        assert not Path(typo).exists()
    empty = str(tmp_path / "empty.sqlite")
    open_store(empty)
    assert _run(["retrain", "--store", empty, "-o", str(tmp_path / "v")]) == 2
    assert capsys.readouterr().err == (
        "error: the store holds 0 rows and retraining needs at least --min-rows 200; wait for "
        "more shadowed calls, or lower --min-rows (30 at the least)\n"
    )
    # rows the current encoder cannot use (an embedding of another encoder, no text)
    open_store(empty).append(planted_rows(40, seed=0, identity="another-encoder"))
    assert _run(["retrain", "--store", empty, "-o", str(tmp_path / "v"), "--min-rows", "30"]) == 2
    assert capsys.readouterr().err == (
        "error: no retraining: 0 usable rows (with a text, or an embedding of this encoder) of "
        "the 40 read; min_rows is 30 (the store holds 40 rows)\n"
    )
    assert _run(["retrain", "--store", empty, "-o", str(tmp_path / "v"), "--min-rows", "29"]) == 2
    assert "'--min-rows': Input should be greater than or equal to 30" in capsys.readouterr().err
    for store in (empty, typo):  # the flag is checked first, before the store is looked for
        retrain = ["retrain", "--store", store, "-o", str(tmp_path / "v")]
        assert _run([*retrain, "--labels", "prob"]) == 2
        assert capsys.readouterr().err == (
            "error: --labels must be one of det, diff, auto, got 'prob'\n"
        )
    replay = ["replay", str(tmp_path / "rows.jsonl"), "--small", "a", "--large", "b"]
    assert _run([*replay, "--max-quality-drop", "5", "--shadow-rate", "0.1"]) == 2
    assert "in [0, 1] (for 5% write 0.05), got 5.0" in capsys.readouterr().err
    assert _run([*replay, "--max-quality-drop", "0.05", "--shadow-rate", "1.5"]) == 2
    assert "shadow_rate must lie in [0, 1], got 1.5" in capsys.readouterr().err
    cost = [*replay, "--max-quality-drop", "0.05", "--shadow-rate", "0.1", "--small-cost", "2"]
    assert _run(cost) == 2
    assert (
        "small_cost is a small call's price as a share of a large call's (0.1: a tenth), so "
        "it lies in [0, 1]; got 2.0"
    ) in capsys.readouterr().err


def test_commands_that_read_a_pair_say_how_many_lines_they_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    rows = [
        {"id": str(i), "query": f"q {i}", "models": {"a": {"score": 1.0}, "b": {"score": 0.5}}}
        for i in range(40)
    ]
    rows += [{"id": "x1", "query": "q x1", "models": {"a": {"score": 1.0}}}]
    rows += [{"id": "x2", "query": "q x2", "models": {"a": {"score": None}, "b": {"score": 1}}}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    replay = ["replay", str(data), "--small", "a", "--large", "b", "--max-quality-drop", "0.05"]
    assert _run([*replay, "--shadow-rate", "0.1", "--no-retrain"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ("note: 2 of 42 lines have no 'score' for 'a' or 'b' and are left out\n")
    assert json.loads(captured.out)["n"] == 40


def test_a_plot_without_matplotlib_fails_before_any_work_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    rows = [
        {"id": str(i), "query": f"q {i}", "models": {"a": {"score": 1.0}, "b": {"score": 0.5}}}
        for i in range(40)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    url = str(tmp_path / "live.sqlite")
    open_store(url).append(planted_rows(30, seed=0, identity="any"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    pair = ["--small", "a", "--large", "b"]
    commands = [
        ["replay", str(data), *pair, "--max-quality-drop", "0.05", "--shadow-rate", "0.1"],
        ["report", "--store", url],
        ["evaluate", str(data), *pair, "--split", ""],
    ]
    for command in commands:
        assert _run([*command, "--json", str(out), "--plot", str(png)]) == 2
        assert capsys.readouterr().err == (
            f"error: --plot {png} needs matplotlib (matplotlib cannot be imported); install it "
            'with: pip install "hybrid-llm[plot]"\n'
        )
        assert not out.exists() and not png.exists()


def test_the_replay_command_keeps_the_form_outside_benchmarks_rely_on() -> None:
    import typer

    from shared_router.cli import app

    command = typer.main.get_command(app).commands["replay"]  # type: ignore[attr-defined]
    flags = {opt: param.default for param in command.params for opt in param.opts}
    assert {
        "--small",
        "--large",
        "--max-quality-drop",
        "--shadow-rate",
        "--router",
        "--seed",
        "--warmup",
        "--json",
        "--decisions",
        "--plot",
        "--small-cost",
    } <= set(flags)
    assert (flags["--router"], flags["--seed"], flags["--warmup"], flags["--small-cost"]) == (
        "default",
        0,
        0,
        0.1,
    )
    assert [param.name for param in command.params if not param.opts[0].startswith("-")] == ["data"]


def test_help_texts_show_their_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["retrain", "--help"]) == 0
    assert "det(1[q_small>=q_large])" in "".join(capsys.readouterr().out.split())
    assert _run(["collect", "--help"]) == 0
    assert "'ray'(needshybrid-llm[ray])" in "".join(capsys.readouterr().out.split())
