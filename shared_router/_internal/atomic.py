"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

Every file the package writes for keeps (router folders, data files, the ONNX graph cache,
the CLI's outputs) goes through :func:`atomic_path`: the content is written to a temporary
file in the destination's folder, flushed and fsynced, renamed over the destination with
``os.replace``, and the folder is fsynced so that the rename survives a power cut. A failure
at any point removes the temporary file and leaves the destination as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Literal, overload

__all__ = ["atomic_open", "atomic_path", "write_bytes_atomic", "write_text_atomic"]


def _umask() -> int:
    current = os.umask(0)  # the only way to read it; set back at once, at import
    os.umask(current)
    return current


_NEW_FILE_MODE = 0o666 & ~_umask()
"""The mode ``open`` gives a new file in this process: what every written file gets."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Give a temporary path to write; on success it replaces ``path`` durably.

    For writers that take a file name (``safetensors.numpy.save_file``, ...). The folder of
    ``path`` is created when absent. The file gets the permissions any new file gets (the
    umask's), whatever mode the writer created it with (``safetensors`` makes its files
    private), so that workers running as other users can read a router folder.

    Args:
        path: The destination.

    Yields:
        A temporary path in the destination's folder, not yet created; whatever the block
        writes there becomes ``path`` when the block ends without an exception.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        os.chmod(temporary, _NEW_FILE_MODE)
        _fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


@overload
def atomic_open(path: str | Path, mode: Literal["w"] = "w") -> AbstractContextManager[IO[str]]: ...
@overload
def atomic_open(path: str | Path, mode: Literal["wb"]) -> AbstractContextManager[IO[bytes]]: ...
def atomic_open(
    path: str | Path, mode: Literal["w", "wb"] = "w"
) -> AbstractContextManager[IO[Any]]:
    """Open a file for writing that replaces ``path`` atomically when the block ends.

    Args:
        path: The destination.
        mode: ``"w"`` (UTF-8 text) or ``"wb"``.

    Returns:
        A context manager giving the open file.
    """
    return _atomic_open(path, mode)


@contextmanager
def _atomic_open(path: str | Path, mode: Literal["w", "wb"]) -> Iterator[IO[Any]]:
    with atomic_path(path) as temporary:
        if mode == "wb":
            with open(temporary, "xb") as binary:
                yield binary
        else:
            with open(temporary, "x", encoding="utf-8", newline="") as text:
                yield text


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically and durably."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
