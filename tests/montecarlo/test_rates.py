"""The rates measured in simulated networks (:mod:`bnsym.montecarlo.rates`) against the engine's
forward and backward eigenvalues (docs/theory.md section 6), ReLU at B = 8.

Statistical design (tests/statistical.py): one test function, four comparisons (forward L and M,
backward L and M), each within ``t_sigmas(seeds - 1, 4)`` (4.5 and 4.3) jackknife standard errors over
the seeds plus a bound on its known bias; false-failure probability at most 1e-4 by Bonferroni.

Biases, measured on 2026-12-07 (width 4096 forward, 100 seeds; 200 seeds backward):

* forward: the least-squares slope of ``X_{l+1}`` on ``X_l`` sees the map's second-order term, a bias
  of order ``delta`` (the size of the input's perturbation of ``Sigma*``).  At ``delta = 0.2`` it was
  +0.0236 +- 0.0015 (L) and +0.0105 +- 0.0015 (M), 16 and 7 standard errors; at 0.1, +0.004 +- 0.003 and
  +0.001 +- 0.003.  The test takes ``delta = 0.05`` and allows the ``delta = 0.2`` offset plus three of
  its errors, scaled linearly (an upper bound whether the bias is linear or quadratic in ``delta``):
  0.0070 (L), 0.0038 (M), against standard errors of about 0.006.
* backward: the gradient map is linear, and the bias is finite width, O(1/N): at N = 128 the
  deviations were +0.011 +- 0.014 (L) and -0.001 +- 0.012 (M), within errors at every width tried
  (128 to 2048).  Allowance ``7 / N`` (the N = 128 deviation plus three errors, times N).
"""

from __future__ import annotations

import numpy as np
import pytest
from statistical import seed, t_sigmas

import bnsym
from bnsym.montecarlo.rates import backward_rate, forward_rate, seeded_gradient
from bnsym.subspaces import subspace_direction

B = 8
DELTA = 0.05
FORWARD_BIAS = {"L": (0.0236 + 3 * 0.0015) * DELTA / 0.2, "M": (0.0105 + 3 * 0.0015) * DELTA / 0.2}
BACKWARD_WIDTH = 2048
BACKWARD_BIAS = 7 / BACKWARD_WIDTH


@pytest.mark.slow
@pytest.mark.statistical
def test_measured_rates_agree_with_the_spectrum():
    spectrum = bnsym.spectrum("relu", B, dps=15)
    fixed = spectrum.fixed_point
    star = float(fixed.c) + (float(fixed.value) - float(fixed.c)) * np.eye(B)
    for k, subspace in enumerate(("L", "M")):
        direction = subspace_direction(B, subspace)
        direction = direction / np.abs(np.linalg.eigvalsh(direction)).max()
        run = bnsym.simulate("relu", B, 4, 4096, seeds=100, seed=seed(2 * k),
                             input=("gram", star + DELTA * direction))
        measured = forward_rate(run.grams, star, subspace, (0, 3))
        theory = float(spectrum.eigenvalue("forward", subspace).value)
        assert abs(measured.value - theory) <= t_sigmas(99, 4) * measured.error + FORWARD_BIAS[subspace], (subspace, measured, theory)

        run = bnsym.simulate("relu", B, 12, BACKWARD_WIDTH, seeds=200, seed=seed(2 * k + 1),
                             output_gradient=seeded_gradient(B, subspace))
        measured = backward_rate(run.gradient_grams, subspace, (2, 10))
        theory = float(spectrum.eigenvalue("backward", subspace).value)
        assert abs(measured.value - theory) <= t_sigmas(199, 4) * measured.error + BACKWARD_BIAS, (subspace, measured, theory)
