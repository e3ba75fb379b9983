"""bnsym.blas.one_thread: the BLAS pools hold one thread inside the call and their size is restored after."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import bnsym
from bnsym.blas import one_thread
from bnsym.meanfield import joint


def _blas_threads():
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture(autouse=True)
def _needs_a_blas():
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library loaded in this process (numpy built without one?)")


def test_one_thread_inside_the_call_and_restored_after():
    with threadpool_limits(limits=2, user_api="blas"):  # the suite pins one thread; a user's process may have more
        before = _blas_threads()
        inside = one_thread(_blas_threads)()
        assert inside == {1}
        assert _blas_threads() == before


def test_the_float_kernel_runs_its_eigendecompositions_on_one_thread(monkeypatch):
    seen = []
    original = joint.cross_map

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(joint, "cross_map", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        bnsym.kernel("relu", np.random.default_rng(0).standard_normal((8, 5)), 1, batch_size=4)
    assert seen and all(threads == {1} for threads in seen)
