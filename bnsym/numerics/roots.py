r"""The engine's one bisection: a sign change of a real function, halved to a relative width.

Used where a root must stay inside a known bracket whatever the function's shape: the ends of
the chi law's support (:mod:`bnsym.numerics.radial`) and the windows of the radial scale
equation that its secant runs off from (:mod:`bnsym.meanfield.bsb1`).

May import: mpmath.
"""

from __future__ import annotations

import mpmath


def bisect(g, a, b, rtol, *, ga=None):
    """``(a', b')``: a bracket of a sign change of ``g`` inside ``[a, b]`` (either order), with
    ``|b' - a'| <= rtol |b'|`` or ``g(a') = g(b') = 0`` at an exact root, ``a'`` on ``a``'s side of the
    sign change (``g(a')`` of the sign of ``g(a)``, ``g(b')`` of the other sign or zero).

    ``g(a)`` and ``g(b)`` must have opposite signs (``ga``: ``g(a)`` if already known); each step
    evaluates ``g`` once at the midpoint.  ``rtol`` relative to ``|b'|``, so a root at 0 must be
    bracketed away from it.  Cost: about ``log2(|b - a| / (rtol |root|))`` evaluations, at most
    ``4 mpmath.mp.prec`` (the width then is below the working precision's spacing).
    """
    ga = g(a) if ga is None else ga
    sign = mpmath.sign(ga)
    for _ in range(4 * mpmath.mp.prec):
        if abs(b - a) <= rtol * abs(b):
            break
        m = (a + b) / 2
        gm = g(m)
        if gm == 0:
            return m, m
        if mpmath.sign(gm) == sign:
            a = m
        else:
            b = m
    return a, b
