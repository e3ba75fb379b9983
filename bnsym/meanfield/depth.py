r"""The trainable depth implied by the gradient explosion rate.

The expected squared gradient norm grows by lambda_G per layer (docs/theory.md
section 5), so after ``L`` layers it has grown by ``lambda_G^L``.  The depth
at which the growth reaches a factor ``K`` is

    L* = log(K) / log(lambda_G)      (lambda_G > 1),

``inf`` when ``lambda_G <= 1`` (no explosion) and ``0`` when
``lambda_G = inf`` (``B = 3``, ``eps = 0``).  Its error follows from that of
lambda_G: ``dL* = L* d(lambda_G) / (lambda_G log lambda_G)``.

The default is the paper's convention, ``K = e^16`` (``log K = 16``): Fig. 3 of
Yang et al. (2019) draws the curve ``L = 16 / log(lambda_G)`` over its
trainability heatmaps, and the boundary of trainable networks follows it.
Pass ``factor`` for another growth factor (e.g. ``factor=1e6``, a gradient
ratio of ``10^3`` in norm between the first and last layer).
"""

from __future__ import annotations

import mpmath

from bnsym import validation
from bnsym.errors import BnsymInputError
from bnsym.estimate import ROUNDING, Estimate
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.meanfield.results import TrainableDepth, make_settings

#: ``log K`` of the default growth factor ``K = e^16`` (the paper's Fig. 3 curve ``16 / log lambda_G``).
DEFAULT_LOG_FACTOR = 16


def trainable_depth(
    activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto", factor=None
) -> TrainableDepth:
    r"""``L* = log(factor) / log(lambda_G)``: layers until the squared gradient grows by ``factor``.

    Arguments as for :func:`bnsym.gradient_explosion_rate`; ``factor > 1`` (default ``None``:
    ``K = e^16``, the paper's convention, so ``L* = 16 / log(lambda_G)``).

    >>> import math
    >>> depth = trainable_depth("relu", math.inf, dps=20)
    >>> print(depth)
    41.755821547224407992
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)
    if factor is None:
        with mpmath.workdps(settings.working_dps):
            k = mpmath.exp(DEFAULT_LOG_FACTOR)
    else:
        k = validation.real(factor, name="factor", positive=True)
        if k <= 1:
            raise BnsymInputError(f"factor must be > 1 (the gradient growth that defines the depth), got {factor!r}")
    rate = rate_from_settings(settings)
    with mpmath.workdps(settings.working_dps):
        lam = Estimate(rate.value, rate.error, meaning=rate.meaning)
        if lam.value == mpmath.inf:
            depth = Estimate(mpmath.mpf(0), meaning=ROUNDING)
        elif lam.value <= 1:
            depth = Estimate(mpmath.inf, meaning=ROUNDING)
        else:
            log_k = mpmath.mpf(DEFAULT_LOG_FACTOR) if factor is None else mpmath.log(k)
            depth = lam.apply(lambda x: log_k / mpmath.log(x), lambda x: -log_k / (x * mpmath.log(x) ** 2))
    return TrainableDepth(depth.value, depth.error, settings, factor=k, rate=rate, meaning=depth.meaning)
