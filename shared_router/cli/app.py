"""The ``hybrid-llm`` command line: the typer app with its commands, and :func:`main`.

Every command turns bad input into a one-line error on stderr and exit code 2, never a
traceback. Heavy libraries are imported inside the commands that need them. The commands
live in :mod:`~shared_router.cli.routing_commands` (demo, route, score, info),
:mod:`~shared_router.cli.training_commands` (train, calibrate, evaluate) and
:mod:`~shared_router.cli.pipeline_commands` (collect, judge, build); they are registered
here in the order ``hybrid-llm --help`` lists them.
"""

from __future__ import annotations

import sys

import typer

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
)
for _command in (demo, route, score, train, calibrate, evaluate, info, collect, judge, build):
    app.command()(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, mapping library errors to a one-line message and exit code 2.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="hybrid-llm", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (HybridLLMError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as error:  # click usage errors carry their own exit code
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(EXIT_BAD_INPUT)
        raise
