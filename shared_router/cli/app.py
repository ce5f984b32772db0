"""The ``hybrid-llm`` command line: the typer app with its commands, and :func:`main`.

Every command turns bad input into a one-line error on stderr and exit code 2, never a
traceback. Heavy libraries are imported inside the commands that need them. The commands
live in :mod:`~shared_router.cli.routing_commands` (demo, route, score, info),
:mod:`~shared_router.cli.training_commands` (train, calibrate, evaluate) and
:mod:`~shared_router.cli.pipeline_commands` (collect, judge, build) and
:mod:`~shared_router.cli.live_commands` (replay, retrain, report); they are registered
here in the order ``hybrid-llm --help`` lists them.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import typer

from shared_router.cli.live_commands import replay, report, retrain
from shared_router.cli.options import EXIT_BAD_INPUT
from shared_router.cli.pipeline_commands import build, collect, judge
from shared_router.cli.routing_commands import demo, info, route, score
from shared_router.cli.training_commands import calibrate, evaluate, train
from shared_router.errors import HybridLLMError

__all__ = ["app", "main"]

app = typer.Typer(
    name="hybrid-llm",
    help="Route each LLM query to a small or a large model by predicted difficulty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help texts are plain: [brackets] are shown, not read as markup
)
_COMMANDS = (demo, route, score, train, calibrate, evaluate, info, collect, judge, build)
for _command in (*_COMMANDS, replay, retrain, report):
    app.command()(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: a bad flag or input is one ``error:`` line on stderr and exit code 2.

    Usage errors (an unknown option or command, a missing or malformed value) come from
    click, or from the copy of click that typer vendors since typer 0.2x; both are caught,
    whatever the installed versions, and shown on one line with a pointer to ``--help``.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="hybrid-llm", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except _EXIT_TYPES as done:
        sys.exit(getattr(done, "exit_code", 1))
    except (HybridLLMError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except _ABORT_TYPES:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except _CLICK_ERROR_TYPES as error:
        _usage_error(error)


def _click_classes(name: str, typer_class: type[BaseException]) -> tuple[type[BaseException], ...]:
    """Click's class ``name`` in every copy of click in use.

    typer up to 0.1x re-exports click's classes; typer 0.2x vendors its own copy of click,
    whose classes are not click's. ``typer_class`` is a public typer class whose bases hold
    typer's ``name``; click's own is added when click is installed.
    """
    found = [cls for cls in typer_class.__mro__ if cls.__name__ == name]
    try:
        click_class = getattr(importlib.import_module("click.exceptions"), name, None)
    except ImportError:
        click_class = None
    if isinstance(click_class, type) and issubclass(click_class, BaseException):
        found.append(click_class)
    return tuple(dict.fromkeys(found))


_CLICK_ERROR_TYPES = _click_classes("ClickException", typer.BadParameter)
_ABORT_TYPES = _click_classes("Abort", typer.Abort)
_EXIT_TYPES = _click_classes("Exit", typer.Exit)


def _usage_error(error: BaseException) -> NoReturn:
    """Show a click usage error as one ``error:`` line (help for no arguments); exit 2."""
    context = getattr(error, "ctx", None)
    format_message = getattr(error, "format_message", None)
    message = format_message() if callable(format_message) else str(error)
    if type(error).__name__ == "NoArgsIsHelpError":  # the message is the help, if not shown yet
        if str(message).strip():
            typer.echo(message, err=True)
        sys.exit(EXIT_BAD_INPUT)
    line = " ".join(str(message).split()) or type(error).__name__
    if context is not None:
        line += f" (see '{context.command_path} --help')"
    typer.echo(f"error: {line}", err=True)
    sys.exit(EXIT_BAD_INPUT)
