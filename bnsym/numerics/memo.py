"""A memo of values known to a tolerance: a value computed to ``rtol`` answers every later
request at ``rtol`` or looser, and is recomputed when a tighter one comes.

May import: mpmath.
"""

from __future__ import annotations

import mpmath


def cached_at_tolerance(cache: dict, points, rtol, compute, digits: int) -> list:
    """Values at ``points`` to ``rtol``, from ``cache`` where known to ``rtol`` or better.

    ``cache`` maps ``mpmath.nstr(point, digits)`` to ``(tolerance, value)``; the points missing
    from it, or known only to a looser tolerance, are computed in one call
    ``compute(points, rtol)`` (a list of values) and stored.
    """
    keys = [mpmath.nstr(x, digits) for x in points]
    new = {k: x for k, x in zip(keys, points) if k not in cache or cache[k][0] > rtol}
    if new:
        cache.update((k, (rtol, value)) for k, value in zip(new, compute(list(new.values()), rtol)))
    return [cache[k][1] for k in keys]
