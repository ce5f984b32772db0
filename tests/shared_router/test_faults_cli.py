"""Faults at the command line: every usage error is one ``error:`` line and exit code 2.

typer 0.2x raises the click exceptions of its own vendored copy of click, which ``main`` used
to miss (a traceback and exit code 1). Each command gets at least one usage error here; the
library's own errors keep their one line and exit code; texts whose bytes were not UTF-8
(lone surrogates in ``sys.argv``) are routed, not a crash.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from shared_router.cli.app import main

EXIT_USAGE = 2


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0) if not isinstance(done.code, str) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


DATA = "data.jsonl"
PAIR = ["--small", "a", "--large", "b"]
SPECS = ["--small", "mod:small", "--large", "mod:large"]

USAGE_ERRORS = [
    pytest.param(["demo", "--bogus"], "No such option: --bogus", id="demo-unknown-option"),
    pytest.param(["route", "--threshold", "abc", "hi"], "--threshold", id="route-threshold-abc"),
    pytest.param(["route"], "Missing argument", id="route-missing-argument"),
    pytest.param(["score", DATA], "--output", id="score-missing-o"),
    pytest.param(["train", DATA, *PAIR], "--output", id="train-missing-o"),
    pytest.param(
        ["train", DATA, *PAIR, "-o", "r", "--epochs", "many"], "--epochs", id="train-epochs"
    ),
    pytest.param(["calibrate", DATA, "--large", "b", "-o", "r"], "--small", id="calibrate-missing"),
    pytest.param(["evaluate", DATA, *PAIR, "--cache=maybe"], "--cache", id="evaluate-flag-value"),
    pytest.param(["info", "extra"], "extra", id="info-extra-argument"),
    pytest.param(
        ["collect", DATA, *SPECS, "-o", "out.jsonl", "--samples", "0"], "--samples", id="collect"
    ),
    pytest.param(["judge", DATA], "--metric", id="judge-missing-metric"),
    pytest.param(
        ["judge", DATA, "--metric", "match", "--batch-size", "0"], "--batch-size", id="judge"
    ),
    pytest.param(
        ["build", DATA, *SPECS, "-o", "o", "--concurrency", "0"], "--concurrency", id="build"
    ),
    pytest.param(["nonsense"], "No such command 'nonsense'", id="unknown-command"),
    pytest.param(["--bogus"], "No such option: --bogus", id="unknown-top-option"),
]


@pytest.mark.parametrize(("argv", "fragment"), USAGE_ERRORS)
def test_a_usage_error_is_one_error_line_and_exit_2(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / DATA).write_text('{"id": "1", "query": "q"}\n')
    argv = [str(tmp_path / arg) if arg == DATA else arg for arg in argv]
    code, out, err = run(argv, capsys)
    assert code == EXIT_USAGE
    assert_one_error_line(err, fragment)
    assert out == ""


def test_the_error_line_points_at_the_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["score", "in.jsonl"], capsys)
    assert code == EXIT_USAGE
    assert_one_error_line(err, "Missing option '--output'", "'hybrid-llm score --help'")


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "0", "-1"])
@pytest.mark.parametrize("command", ["collect", "build"])
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused(
    command: str, timeout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "q"}\n')
    argv = [command, str(queries), *SPECS, "-o", str(tmp_path / "o"), "--timeout", timeout]
    code, _, err = run(argv, capsys)
    assert code == EXIT_USAGE
    assert_one_error_line(err, "--timeout", "finite")
    assert not (tmp_path / "o").exists()


def test_no_arguments_show_the_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([], capsys)
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    assert "route" in out + err and "collect" in out + err


def test_help_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["route", "--help"], capsys)
    assert code == 0 and "--threshold" in out and not err


def test_a_library_error_keeps_its_error_line_and_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["route", "--threshold", "0.5", "--large-share", "0.2", "hi"], capsys)
    assert code == EXIT_USAGE
    assert_one_error_line(err, "at most one")


def test_a_missing_input_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["score", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "o")], capsys)
    assert code == EXIT_USAGE
    assert_one_error_line(err, "none.jsonl")


def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize("origin", ["click", "typer"])
def test_usage_errors_of_either_copy_of_click_are_caught(
    origin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever typer raises, click's own classes (typer <= 0.1x) or its vendored ones (0.2x)."""
    if origin == "click":
        click_exceptions = pytest.importorskip("click.exceptions")
        error: BaseException = click_exceptions.UsageError("bad flag from click")
    else:
        error = typer.BadParameter("bad flag from click")
    from shared_router.routing.router import Router

    monkeypatch.setattr(Router, "load", classmethod(lambda cls, *a, **k: _raise(error)))
    code, _, err = run(["info"], capsys)
    assert code == EXIT_USAGE
    assert_one_error_line(err, "bad flag from click")


def test_an_abort_from_either_copy_of_click_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared_router.routing.router import Router

    aborts: list[BaseException] = [typer.Abort()]
    with contextlib.suppress(ImportError):
        aborts.append(importlib.import_module("click.exceptions").Abort())
    for abort in aborts:
        monkeypatch.setattr(Router, "load", classmethod(lambda cls, *a, _e=abort, **k: _raise(_e)))
        code, _, err = run(["info"], capsys)
        assert (code, err.strip()) == (130, "aborted")


def test_route_takes_text_whose_bytes_are_not_utf8() -> None:
    """Bytes that are not UTF-8 reach ``sys.argv`` as lone surrogates; they are routed."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from shared_router.cli.app import main; main()",
            "route",
            "--threshold",
            "0.5",
            b"caf\xe9 \xff\xfe?",
            "fine",
        ],
        capture_output=True,
        check=False,
        timeout=300,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, err
    assert "Traceback" not in err
    decisions = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [d["text"] for d in decisions] == ["caf\ufffd \ufffd\ufffd?", "fine"]
    assert all(d["model"] in ("small", "large") and d["score"] is not None for d in decisions)


def test_a_default_cache_that_cannot_be_opened_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from shared_router.cli.options import embedding_cache

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HYBRID_LLM_CACHE", str(blocker / "cache.sqlite"))
    with caplog.at_level("WARNING"):
        assert embedding_cache(True) is None
    assert "going on without an embedding cache" in caplog.text
    assert embedding_cache(False) is None
