"""Run the code examples of the Markdown docs and compare what they print.

The convention (README.md and docs/*.md):

- Every fenced ```python block is executed, in file order, in one namespace per file (a later
  block uses an earlier block's objects), unless the line before it (blank lines aside) is
  ``<!-- not run: REASON -->``; a marker without a reason is an error.
- A ```text block right after an executed python block, marked ``<!-- output -->``, is what
  that block prints: compared after stripping trailing spaces and leading/trailing blank
  lines; ``...`` in an expected line matches any text within that line (times, paths).
- Other blocks (bash, json, plain) are not executed, and no ``<!-- output -->`` may follow
  them: a command's output is either produced here or not shown.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Block",
    "DocError",
    "Mismatch",
    "compare_output",
    "parse_markdown",
    "run_blocks",
]

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*(?P<body>.*?)\s*-->$")
_NOT_RUN = re.compile(r"^not[ -]run\b\s*:?\s*(?P<reason>.*)$", re.IGNORECASE)


class DocError(Exception):
    """A malformed doc: a marker without a reason, an output block with nothing to compare."""


@dataclass
class Block:
    """One fenced block of a Markdown file.

    Attributes:
        language: The fence's info string up to the first space (``python``, ``bash``, ``""``).
        source: The block's text, without the fences.
        line: The 1-based line of the block's first source line in the file.
        not_run: The reason given by a ``<!-- not run: ... -->`` marker, else None.
        expected: The text of the ``<!-- output -->`` block that follows, else None.
        expected_line: The line of that output block's first line.
        markers: The bodies of the HTML comments right before the block.
    """

    language: str
    source: str
    line: int
    not_run: str | None = None
    expected: str | None = None
    expected_line: int = 0
    markers: list[str] = field(default_factory=list, repr=False)

    @property
    def runs(self) -> bool:
        """Whether the block is executed."""
        return self.language == "python" and self.not_run is None


@dataclass(frozen=True)
class Mismatch:
    """A block that printed something other than its output block shows."""

    where: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return (
            f"{self.where}: the example prints something else than its output block shows\n"
            f"--- shown in the doc\n{self.expected}\n--- printed\n{self.actual}"
        )


def parse_markdown(text: str, name: str = "<doc>") -> list[Block]:
    """Split Markdown into fenced blocks and attach the markers and output blocks.

    Args:
        text: The Markdown text.
        name: The file name used in error messages.

    Returns:
        The code blocks in file order; an ``<!-- output -->`` block is attached to the python
        block before it as ``expected`` and not returned on its own.

    Raises:
        DocError: For an unclosed fence, a not-run marker without a reason or not before a
            python block, or an output block that does not follow an executed python block.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: list[tuple[str, int]] = []  # markers waiting for the next fence
    previous: Block | None = None  # the last block, while only blank lines follow it
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        marker = _MARKER.match(stripped)
        fence = _FENCE.match(line)
        if marker:
            pending.append((marker.group("body"), i + 1))
        elif fence:
            end = _closing(lines, i, fence.group("fence"), name)
            block = Block(
                language=fence.group("info").strip().split(" ")[0].lower(),
                source="\n".join(lines[i + 1 : end]),
                line=i + 2,
                markers=[body for body, _ in pending],
            )
            _apply_markers(block, pending, previous, name)
            pending = []
            if block.language == "text" and "output" in block.markers:
                assert previous is not None  # checked in _apply_markers
                previous.expected, previous.expected_line = block.source, block.line
                previous = None
            else:
                blocks.append(block)
                previous = block
            i = end
        elif stripped:
            if pending:
                body, at = pending[0]
                if _is_ours(body):
                    raise DocError(f"{name}:{at}: marker <!-- {body} --> is not before a block")
                pending = []
            previous = None
        i += 1
    for body, at in pending:
        if _is_ours(body):
            raise DocError(f"{name}:{at}: marker <!-- {body} --> is not before a block")
    return blocks


def _closing(lines: list[str], start: int, fence: str, name: str) -> int:
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == fence:
            return j
    raise DocError(f"{name}:{start + 1}: code fence {fence} is never closed")


def _is_ours(body: str) -> bool:
    return body.lower() == "output" or bool(_NOT_RUN.match(body))


def _apply_markers(
    block: Block, pending: list[tuple[str, int]], previous: Block | None, name: str
) -> None:
    for body, at in pending:
        not_run = _NOT_RUN.match(body)
        if not_run:
            reason = not_run.group("reason").strip()
            if not reason:
                raise DocError(
                    f"{name}:{at}: <!-- {body} --> gives no reason; write "
                    "<!-- not run: why it cannot run here -->"
                )
            if block.language != "python":
                raise DocError(f"{name}:{at}: only python blocks run; drop <!-- {body} -->")
            block.not_run = reason
        elif body.lower() == "output":
            if block.language != "text":
                raise DocError(f"{name}:{at}: <!-- output --> must mark a ```text block")
            if previous is None or not previous.runs or previous.expected is not None:
                raise DocError(
                    f"{name}:{at}: <!-- output --> must follow an executed python block "
                    "(only blank lines and markers between them)"
                )


def _normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def compare_output(expected: str, actual: str) -> bool:
    """Whether ``actual`` is what ``expected`` shows (see the module docstring)."""
    want, got = _normalise(expected), _normalise(actual)
    if len(want) != len(got):
        return False
    for pattern, line in zip(want, got, strict=True):
        regex = ".*".join(re.escape(part) for part in pattern.split("..."))
        if not re.fullmatch(regex, line):
            return False
    return True


def run_blocks(
    blocks: list[Block], path: str | Path, namespace: dict[str, Any] | None = None
) -> list[Mismatch]:
    """Execute the blocks that run, in order, in one namespace, capturing what they print.

    Args:
        blocks: From :func:`parse_markdown`.
        path: The Markdown file, named in tracebacks (line numbers are the file's).
        namespace: The globals to run in; a fresh one by default.

    Returns:
        The blocks whose printed output differs from their output block.

    Raises:
        Exception: Whatever a block raises, with the file and line in its traceback.
    """
    scope: dict[str, Any] = {"__name__": "__doc_example__"} if namespace is None else namespace
    mismatches = []
    for block in blocks:
        if not block.runs:
            continue
        code = compile("\n" * (block.line - 1) + block.source, str(path), "exec")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, scope)
        if block.expected is not None and not compare_output(block.expected, printed.getvalue()):
            where = f"{path}:{block.line} (output block at line {block.expected_line})"
            mismatches.append(Mismatch(where, block.expected, printed.getvalue()))
    return mismatches
