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
