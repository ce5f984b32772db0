"""BLAS is held at one thread while small systems are solved, and restored after."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from shared_router._internal.blas_threads import one_blas_thread
from shared_router.training.logistic import fit_logistic


def _blas_threads() -> list[int]:
    return [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_holder_limits_blas_to_one_thread_and_restores_it() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and all(n == 2 for n in before)
        with one_blas_thread():
            assert all(n == 1 for n in _blas_threads())
            with one_blas_thread():  # nested in the same thread: passes
                assert all(n == 1 for n in _blas_threads())
            assert all(n == 1 for n in _blas_threads())
        assert _blas_threads() == before


def test_holders_in_other_threads_wait_for_the_block_to_end() -> None:
    order: list[str] = []
    entered = threading.Event()

    def other() -> None:
        with one_blas_thread():
            order.append("other")

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with one_blas_thread():
            thread = threading.Thread(target=lambda: (entered.set(), other()))
            thread.start()
            assert entered.wait(10)
            thread.join(0.2)
            assert thread.is_alive()  # it waits for this block
            order.append("first")
        thread.join(10)
        assert order == ["first", "other"]
        assert _blas_threads() == before


def test_fitting_a_logistic_head_leaves_the_blas_threads_as_they_were() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float64)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        fit_logistic(X, y, l2=0.1)
        assert _blas_threads() == before
