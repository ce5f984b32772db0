"""Run a function in a child process made by ``fork``, as a pre-forking server makes one."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from typing import Any

import pytest

FORK_ONLY = pytest.mark.skipif(
    sys.platform != "linux", reason="fork is the default start method on Linux"
)
"""Marks a test that forks."""


def in_forked_child(function: Callable[..., Any], *args: Any, doing: str) -> Any:
    """``function(*args)`` run in a forked child; fails the test if the child hangs.

    Args:
        function: What the child runs; its return value comes back through a queue.
        args: Its arguments (inherited by the fork, not pickled).
        doing: What the child does, for the failure message.

    Returns:
        What ``function`` returned in the child.
    """
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=lambda: results.put(function(*args)))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail(f"the child process hung on {doing}")
    return results.get(timeout=10)
