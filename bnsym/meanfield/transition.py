r"""The alpha-ReLU transition: the degree at which the BSB1 point of ``relu_power(alpha)`` loses stability.

docs/theory.md section 16.  For ``phi(x) = x_+^alpha`` (``gamma`` scales out and its sign
mirrors the batch law, ``beta = 0``, ``eps = 0``) the forward eigenvalues of the linearised
Gram map at the BSB1 point are

    lambda_L = [A1 - q* - kap (C1 - c*)] / (2 (q* - c*)),        kap = 2n/(B-2),
    lambda_M = n [n P1 + (2n C1 - B c*)/(B-2)] / (B (B-3) (q* - c*)),      n = B - 1,

with ``q* = E1[s_+^(2 alpha)]``, ``A1 = E1[s_+^(2 alpha + 2)]``, ``c* = E2[s_a+^alpha s_b+^alpha]``,
``C1 = E2[s_a+^(alpha+2) s_b+^alpha]``, ``P1 = E2[s_a+^(alpha+1) s_b+^(alpha+1)]`` in closed
form for real ``alpha`` (:func:`bnsym.numerics.closed_forms.orthant_moment`, docs/theory.md section 16).  These formulas (the brief's
appendix section 3.3, step 1, whose final expressions are right although its intermediate
``n u^T Delta u`` should read ``(n/2) u^T Delta u``) agree with :func:`bnsym.spectrum`.

``lambda_L`` is the eigenvalue that crosses 1 (``lambda_M < 1`` there at every ``B`` tried,
and ``lambda_L -> alpha`` as ``B -> inf``); :func:`alpha_transition` returns the smallest
``alpha`` in ``(1/2, alpha_max]`` with ``lambda_L = 1``: a scan in steps of 1/8 brackets the
first crossing, then the Anderson-Bjorck bracketing root finder of mpmath refines it at
``dps + 10`` digits.  ``B = 4`` has none up to 8 (``lambda_L = 0.617`` at ``alpha = 2``).

Domain: finite ``B >= 5`` (``B = 4`` is accepted and reports that no crossing exists).
Cost: about 60 closed-form evaluations (10 hypergeometric functions each): a few hundred ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mpmath

from bnsym import validation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.estimate import ROUNDING, Value
from bnsym.numerics.closed_forms import half_moment, orthant_moment

#: Step of the bracketing scan in alpha.
SCAN_STEP = mpmath.mpf(1) / 8


@dataclass(frozen=True)
class Transition(Value):
    """``alpha*`` with ``lambda_L(alpha*) = 1`` for ``relu_power``; ``lambda_M`` there; the scan bracket."""

    value: mpmath.mpf
    error: mpmath.mpf
    batch_size: int = 0
    dps: int = 15
    lambda_M: mpmath.mpf = field(default_factory=mpmath.mpf)
    bracket: tuple = ()

    def __str__(self) -> str:
        return mpmath.nstr(self.value, self.dps)

    def as_dict(self) -> dict:
        return {"batch_size": self.batch_size, "alpha": mpmath.nstr(self.value, self.dps), "error": mpmath.nstr(self.error, 2),
                "meaning": self.meaning, "lambda_M": mpmath.nstr(self.lambda_M, self.dps),
                "bracket": [mpmath.nstr(x, 6) for x in self.bracket]}


def power_forward_eigenvalues(alpha, batch_size: int, working_dps: int) -> tuple:
    """``(lambda_L, lambda_M)`` of ``relu_power(alpha)`` at the BSB1 point (closed form, finite ``B >= 4``, ``alpha > 0``)."""
    b = batch_size
    with mpmath.workdps(working_dps):
        a, n = mpmath.mpf(alpha), b - 1
        q = half_moment(2 * a, n)
        a1 = half_moment(2 * a + 2, n)
        rho = -1 / mpmath.mpf(n)  # the sphere law's <w_a, w_b>
        c = orthant_moment(a, a, rho, n)
        c1 = orthant_moment(a + 2, a, rho, n)
        p1 = orthant_moment(a + 1, a + 1, rho, n)
        spread = q - c
        kap = mpmath.mpf(2 * n) / (b - 2)
        lam_l = (a1 - q - kap * (c1 - c)) / (2 * spread)
        lam_m = n * (n * p1 + (2 * n * c1 - b * c) / (b - 2)) / (b * (b - 3) * spread)
    return lam_l, lam_m


def alpha_transition(batch_size, *, dps=15, alpha_max=8) -> Transition:
    r"""The smallest ``alpha`` at which ``relu_power(alpha)`` loses BSB1 stability at batch size ``B``.

    That is where the forward eigenvalue ``lambda_L`` crosses 1 (docs/theory.md section 16);
    ``batch_size``: finite integer ``>= 4``; ``alpha_max``: end of the search (``> 1``).  Returns
    :class:`Transition`, promised to ``dps`` digits (error: the root finder's residual over the
    slope plus rounding, meaning ``"rounding"``).  Raises :class:`~bnsym.errors.BnsymError` when
    ``lambda_L < 1`` on all of ``(1/2, alpha_max]`` (as at ``B = 4``).  Cost: see the module docstring.

    >>> print(alpha_transition(8, dps=10))
    1.619263847
    """
    b = validation.finite_batch_size(batch_size, minimum=4, why="the alpha-ReLU transition (B -> inf tends to alpha = 1)")
    digits = validation.dps(dps)
    top = validation.real(alpha_max, name="alpha_max", positive=True)
    if top <= 1:
        raise BnsymInputError(f"alpha_max must be > 1 (relu_power(alpha) is BSB1-stable for alpha <= 1), got {alpha_max!r}")
    wdps = digits + 10
    with mpmath.workdps(wdps):
        def excess(alpha):
            return power_forward_eigenvalues(alpha, b, wdps)[0] - 1

        lo = mpmath.mpf(1)
        g_lo = excess(lo)
        hi = None
        while lo < top:
            x = min(lo + SCAN_STEP, top)
            g = excess(x)
            if g_lo < 0 <= g:
                hi = x
                break
            lo, g_lo = x, g
        if hi is None:
            raise BnsymError(
                f"no alpha-ReLU transition at B = {b} up to alpha = {mpmath.nstr(top, 6)}: lambda_L stays below 1 "
                f"({mpmath.nstr(g_lo + 1, 6)} at alpha = {mpmath.nstr(lo, 6)})"
            )
        root = mpmath.findroot(excess, (lo, hi), solver="anderson", tol=mpmath.mpf(10) ** -(2 * wdps - 10))
        h = mpmath.mpf(10) ** -(wdps // 2)
        slope = (excess(root + h) - excess(root - h)) / (2 * h)
        error = abs(excess(root)) / abs(slope) + mpmath.mpf(10) ** -(wdps - 5) * abs(root)
        lam_m = power_forward_eigenvalues(root, b, wdps)[1]
    if error > mpmath.mpf(10) ** -digits * abs(root):
        raise BnsymError(f"the alpha-ReLU transition at B = {b} reached only {mpmath.nstr(error, 3)}, short of {digits} digits")
    return Transition(+root, error, batch_size=b, dps=digits, lambda_M=lam_m, bracket=(lo, hi), meaning=ROUNDING)


def transition_scan(batch_size, alphas, *, dps=15) -> list:
    """``[(alpha, lambda_L, lambda_M)]`` of ``relu_power(alpha)`` at ``batch_size`` (closed forms; ``alpha > 0``)."""
    b = validation.finite_batch_size(batch_size, minimum=4, why="the forward eigenvalues")
    digits = validation.dps(dps)
    out = []
    for alpha in alphas:
        a = validation.real(alpha, name="alpha", positive=True)
        lam_l, lam_m = power_forward_eigenvalues(a, b, digits + 10)
        out.append((a, lam_l, lam_m))
    return out

