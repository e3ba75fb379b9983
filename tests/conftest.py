"""Shared pytest configuration: hypothesis profiles.

Two profiles are registered for the property tests:

* ``fast`` (the default): few examples, derandomized so that every run of
  the suite draws the same examples (no flaky CI), no deadline;
* ``thorough``: many more random examples and, in tests/meanfield/test_properties.py,
  ten times more Monte Carlo samples.  Select it with
  ``BNSYM_HYPOTHESIS_PROFILE=thorough python -m pytest tests/meanfield/test_properties.py``.

Tests that pass their own ``@settings(max_examples=...)`` keep their count.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "BNSYM_HYPOTHESIS_PROFILE"

settings.register_profile(
    "fast", max_examples=10, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "thorough", max_examples=120, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get(PROFILE_VARIABLE, "fast"))


#: BLAS thread variables set to 1 for the test processes that pytest-xdist starts.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    """Register the ``statistical`` marker: tests whose verdict depends on random draws
    (seeded from ``BNSYM_TEST_SEED``; their design is in tests/statistical.py).

    When pytest-xdist runs the suite in several processes (``-n``, on by default in
    pyproject.toml), the controlling process pins BLAS to one thread per worker before the
    workers start (they inherit its environment): otherwise each worker's BLAS starts one
    thread per core and the workers oversubscribe the machine (measured: the simulator and
    the kernels ran 7 to 25 times slower in wall time on a loaded 2-core machine).  Variables
    the user set are left alone."""
    workers = getattr(config.option, "numprocesses", None)
    if workers and "PYTEST_XDIST_WORKER" not in os.environ:
        for name in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(name, "1")
    config.addinivalue_line(
        "markers", "statistical: random checks with a stated false-failure probability "
        "(rerun with BNSYM_TEST_SEED=k to draw fresh randomness)")


#: A test in a module that takes the master seed itself (``BNSYM_TEST_SEED``, or ``SEED_OFFSET``
#: from tests/statistical.py) is statistical when its source draws
#: random numbers through one of these calls (modules written before the marker existed).
RANDOM_CALLS = ("simulate(", "sampling.", "default_rng(", "master_seed(", "_seed(", "MASTER_SEED", "SEED_OFFSET", "_response(")


def pytest_collection_modifyitems(config, items):
    """Mark as ``statistical`` the random tests of modules that take the master seed
    themselves (``SEED_OFFSET``) and do not carry the marker on each test."""
    import inspect

    import pytest

    sources = {}
    for item in items:
        function = getattr(item, "function", None)
        path = getattr(item, "path", None)
        if function is None or path is None or item.get_closest_marker("statistical"):
            continue
        if path not in sources:
            text = path.read_text(encoding="utf-8")
            sources[path] = "BNSYM_TEST_SEED" in text or "import SEED_OFFSET" in text
        if not sources[path]:
            continue
        try:
            body = inspect.getsource(function)
        except (OSError, TypeError):
            continue
        if any(call in body for call in RANDOM_CALLS):
            item.add_marker(pytest.mark.statistical)
