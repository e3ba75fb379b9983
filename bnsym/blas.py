"""One BLAS thread for loops of small linear algebra (base layer: imports nothing from bnsym).

The float64 paths call LAPACK on thousands of small matrices (the joint map's ``2B x 2B``
eigendecompositions, one per quadrature node).  A multi-threaded BLAS (OpenBLAS by default
uses every core) gains nothing on such sizes, and where another process holds a core its
threads wait for each other: measured on this 2-core machine beside one busy process, the
kernels notebook's ReLU kernel (M = 256, B = 32, depth 5) took 112 s with OpenBLAS's two
threads and 12 s with one, the eigendecompositions 92 s against 2.8 s.  :func:`one_thread`
limits the BLAS thread pools of the process (through ``threadpoolctl``) for the duration of a
call and restores them after; it is applied at the entry points of such loops only.
"""

from __future__ import annotations

import functools

from threadpoolctl import threadpool_limits


def one_thread(function):
    """Decorator: run ``function`` with the BLAS thread pools limited to one thread."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapped
