"""One BLAS thread while small dense problems are solved (the logistic head's Newton steps).

A Newton step of the logistic head solves a few-hundred-square system: a millisecond on one
core. With OpenBLAS's default of one thread per core, on cores other work keeps busy (a
serving process, other workers), its threads wait for each other: a retraining on 300 live
rows took 8-10 s instead of 3.5-3.8 s on 2 loaded cores (52 s against 3.4 s under heavier
load), and the same on idle cores. :func:`one_blas_thread` limits the BLAS libraries numpy
loaded to one thread (threadpoolctl) while it is held. The limit is process-wide: other
threads' BLAS calls run on one thread meanwhile. Holders in other threads wait for the
block to end (OpenBLAS takes a limit back only from the thread that set it), so concurrent
fits in one process run one after the other; a nested block in the same thread passes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["one_blas_thread"]

_held = threading.RLock()
_depth = threading.local()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold BLAS at one thread in this process for the ``with`` block (see the module)."""
    with _held:
        depth = getattr(_depth, "value", 0)
        _depth.value = depth + 1
        try:
            if depth:
                yield
                return
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                yield
        finally:
            _depth.value = depth
