"""The ``hybrid-llm`` command line.

Every command turns bad input into a one-line error on stderr and exit code 2, never a
traceback. Heavy libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from shared_router.errors import HybridLLMError

__all__ = ["app", "main"]

app = typer.Typer(
    name="hybrid-llm",
    help="Route each LLM query to a small or a large model by predicted difficulty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with code 2.

    Args:
        message: What went wrong and how to fix it.
    """
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, mapping library errors to a one-line message and exit code 2.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="hybrid-llm", standalone_mode=False)
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
