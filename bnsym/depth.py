r"""The trainable depth implied by the gradient explosion rate.

The expected squared gradient norm grows by lambda_G per layer (THEORY.md
section 5), so after ``L`` layers it has grown by ``lambda_G^L``.  The depth
at which the growth reaches a factor ``K`` is

    L* = log(K) / log(lambda_G)      (lambda_G > 1),

``inf`` when ``lambda_G <= 1`` (no explosion) and ``0`` when
``lambda_G = inf`` (``B = 3``, ``eps = 0``).  Its error follows from that of
lambda_G: ``dL* = L* d(lambda_G) / (lambda_G log lambda_G)``.

The default ``K = 10^6`` is a convention, not a law: the paper reports no
single threshold, and Fig. 3 of Yang et al. (2019) shows the boundary of
trainability tracking a curve of constant ``lambda_G^L`` whose height depends
on the optimiser and learning rate.  ``10^6`` (a gradient ratio of ``10^3``
in norm between the first and last layer) is the value at which float32 SGD
with a single learning rate visibly stops training the early layers in our
sweeps; pass ``factor`` to use another.
"""

from __future__ import annotations

import mpmath

from . import validation
from .estimate import Estimate
from .gradients import rate_from_settings
from .results import TrainableDepth, make_settings

DEFAULT_FACTOR = 10**6


def trainable_depth(
    activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto", factor=DEFAULT_FACTOR
) -> TrainableDepth:
    r"""``L* = log(factor) / log(lambda_G)``: layers until the squared gradient grows by ``factor``.

    Arguments as for :func:`bnsym.gradient_explosion_rate`; ``factor > 1``.

    >>> import math
    >>> depth = trainable_depth("relu", math.inf, dps=20)
    >>> print(depth)
    36.054874590134433755
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)
    k = validation.real(factor, name="factor", positive=True)
    if k <= 1:
        from .errors import BnsymInputError

        raise BnsymInputError(f"factor must be > 1 (the gradient growth that defines the depth), got {factor!r}")
    rate = rate_from_settings(settings)
    with mpmath.workdps(settings.working_dps):
        lam = Estimate(rate.value, rate.error)
        if lam.value == mpmath.inf:
            depth = Estimate(mpmath.mpf(0))
        elif lam.value <= 1:
            depth = Estimate(mpmath.inf)
        else:
            log_k = mpmath.log(k)
            depth = lam.apply(lambda x: log_k / mpmath.log(x), lambda x: -log_k / (x * mpmath.log(x) ** 2))
    return TrainableDepth(depth.value, depth.error, settings, factor=k, rate=rate)
