"""Fixed quadrature rules at arbitrary precision, computed once and cached.

Two rules on ``[-1, 1]`` serve every integral of the engine:

* :func:`gauss_legendre` -- the Gauss-Jacobi rule with ``alpha = beta = 0``.
  Nodes are polished by Newton's method on the three-term recurrence
  ``(k+1) P_{k+1} = (2k+1) x P_k - k P_{k-1}`` from float64 starting values,
  so a rule of ``n`` nodes costs ``O(n**2)`` multiplications at the working
  precision (two or three Newton sweeps), and is cached by ``(n, working_dps)``.
  Exact for polynomials of degree ``2n - 1``; for integrands analytic in the
  Bernstein ellipse ``E_r`` the error decays like ``r**(-2n)``.
* :func:`tanh_sinh` -- the double exponential rule of Takahasi and Mori,
  used only on pieces whose integrand has an algebraic singularity at an end
  point (``x**(3/2)`` at a kink, say); its error decays like
  ``exp(-c n / log n)`` whatever the end point behaviour.

Both are indexed by a common *level*: :data:`SIZES` gives the number of
nodes; going one level up multiplies it by about 1.5, and the difference
between two consecutive levels is the error estimate used throughout bnsym.

:func:`panel` maps a rule to an interval ``[lo, hi]``; with ``smooth_lo`` /
``smooth_hi`` it uses the smoothed map ``x = L + (R - L) u**2`` (and its mirror),
which turns a square-root end point singularity into an analytic one.
:func:`legendre_float64` is the Gauss-Legendre rule computed in float64 (for the float64 paths).
:func:`breakpoint_panels` lays out the panels between an integrand's breakpoints
(their kinds from the breakpoints' flags, graded beside a nearby singular point),
for every rule of the engine: the sphere laws' angles and the chi law's radius.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import mpmath
import numpy as np

#: Rule sizes by level.
SIZES = (6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


def size(level: int) -> int:
    """Number of nodes of the rules at ``level`` (0-based, see :data:`SIZES`)."""
    return SIZES[level]


@lru_cache(maxsize=None)
def gauss_legendre(n: int, working_dps: int):
    """Gauss-Legendre nodes and weights on ``[-1, 1]`` to ``working_dps`` digits.

    Returns two tuples of ``mpmath.mpf`` (nodes increasing, weights summing
    to 2).  Cost ``O(n**2)`` at precision ``working_dps``; cached.

    >>> import mpmath
    >>> nodes, weights = gauss_legendre(3, 20)
    >>> mpmath.nstr(nodes[2]**2, 15), mpmath.nstr(weights[1], 15)
    ('0.6', '0.888888888888889')
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    start, _ = np.polynomial.legendre.leggauss(n)
    half = (n + 1) // 2
    nodes, weights = [], []  # non-negative nodes, largest first
    target = working_dps + 10
    with mpmath.workdps(target):
        for i in range(half):
            xi = mpmath.mpf(float(-start[i]))
            digits = 14  # float64 start; each Newton step doubles the correct digits
            while True:
                digits = min(2 * digits, target)
                with mpmath.workdps(digits + 5):
                    p, dp = _legendre_and_derivative(n, xi)
                    step = p / dp
                    xi = xi - step
                if digits >= target:
                    break
            # P_n'(x) at the polished node: one Taylor step using Legendre's equation
            # (1 - x^2) P'' = 2 x P' - n (n + 1) P, instead of another recurrence sweep
            ddp = (2 * xi * dp - n * (n + 1) * p) / (1 - xi * xi)
            dp = dp - ddp * step
            nodes.append(+xi)
            weights.append(2 / ((1 - xi * xi) * dp * dp))
        if n % 2:  # the middle node 0 is shared by both halves
            full_nodes = [-v for v in nodes[:-1]] + nodes[::-1]
            full_weights = weights[:-1] + weights[::-1]
        else:
            full_nodes = [-v for v in nodes] + nodes[::-1]
            full_weights = weights + weights[::-1]
    with mpmath.workdps(working_dps):
        return tuple(+v for v in full_nodes), tuple(+w for w in full_weights)


def _legendre_and_derivative(n, xv):
    """``P_n(x)`` and ``P_n'(x)`` by the three-term recurrence."""
    p0, p1 = mpmath.mpf(1), xv
    for k in range(1, n):
        p0, p1 = p1, ((2 * k + 1) * xv * p1 - k * p0) / (k + 1)
    dp = n * (xv * p1 - p0) / (xv * xv - 1)
    return p1, dp


@lru_cache(maxsize=None)
def tanh_sinh(n: int, working_dps: int):
    """Tanh-sinh nodes on ``[-1, 1]`` with about ``n`` points, to ``working_dps`` digits.

    Returns ``(left, right, weights)``: the distances ``1 + x_k`` and
    ``1 - x_k`` of each node from the two end points (computed without
    cancellation, so integrands singular at an end can be evaluated there)
    and the weights.  The step is ``h = 2 t_max / n`` with ``t_max`` chosen
    so that the discarded weights are below ``10**-working_dps``.
    """
    with mpmath.workdps(working_dps + 10):
        pi2 = mpmath.pi / 2
        # weights ~ exp(-pi/2 exp|t|): discard where that is below 10^-(working_dps+5)
        # the weights decay like exp(-(pi/2) e^|t|): stop where that is 10^-(working_dps+5)
        t_max = mpmath.log(2 * (working_dps + 5) * mpmath.log(10) / mpmath.pi)
        h = 2 * t_max / n
        left, right, weights = [], [], []
        k_max = int(mpmath.ceil(t_max / h))
        for k in range(-k_max, k_max + 1):
            t = k * h
            u = pi2 * mpmath.sinh(t)
            # 1 + tanh(u) = 2 / (1 + exp(-2u)),  1 - tanh(u) = 2 / (1 + exp(2u))
            lo = 2 / (1 + mpmath.exp(-2 * u))
            hi = 2 / (1 + mpmath.exp(2 * u))
            w = h * pi2 * mpmath.cosh(t) / mpmath.cosh(u) ** 2
            left.append(lo)
            right.append(hi)
            weights.append(w)
    with mpmath.workdps(working_dps):
        return tuple(+v for v in left), tuple(+v for v in right), tuple(+w for w in weights)


#: Largest Gauss-Legendre rule used as one block; larger levels use composite rules.
BLOCK = 64
#: Above this working precision the blocks hold twice as many nodes (:func:`block_size`).
HIGH_PRECISION = 80


def block_size(working_dps: int) -> int:
    """Nodes per block of :func:`composite_legendre`: 64, or 128 above ``HIGH_PRECISION`` digits.

    A block of ``m`` nodes and half-width ``h`` whose integrand has its nearest
    complex singularity at distance ``d`` errs by about ``(h / (2 d))^(2m)``
    (a panel of width ``2h``): halving the block count (``h`` twice as large) at
    twice the nodes per block squares the factor ``(h/2d)^2m`` instead of only
    shrinking it, which is what 100 digits on tanh at ``B = 32`` (singularity
    ``0.28 i`` in angle) needs: 1024 nodes in blocks of 64 reached only
    ``1e-86``, in blocks of 128 they reach ``1e-110`` (docs/theory.md section 15).
    """
    return BLOCK if working_dps < HIGH_PRECISION else 2 * BLOCK


@lru_cache(maxsize=None)
def composite_legendre(n: int, working_dps: int):
    """Gauss-Legendre on ``[-1, 1]`` with ``n`` nodes in all: one rule if ``n`` is at most
    :func:`block_size` ``(working_dps)``, else an even number of equal sub-intervals each
    with a rule of at most that many nodes.

    Past a few dozen nodes the convergence of a single rule is limited by the
    nearest complex singularity of the integrand, and a composite rule of the
    same total size does as well while its nodes stay cheap to compute.
    """
    block = block_size(working_dps)
    if n <= block:
        return gauss_legendre(n, working_dps)
    # an even number of blocks puts a block boundary at the centre, where the
    # sphere law has its mass and where the complex singularities of odd
    # activations project; an odd count would leave one there mid-block
    blocks = 2 * -(-n // (2 * block))
    per_block = -(-n // blocks)
    u_nodes, u_weights = gauss_legendre(per_block, working_dps)
    nodes, weights = [], []
    with mpmath.workdps(working_dps):
        width = mpmath.mpf(2) / blocks
        for b in range(blocks):
            mid = -1 + width * (b + mpmath.mpf(1) / 2)
            for u, w in zip(u_nodes, u_weights):
                nodes.append(mid + width / 2 * u)
                weights.append(w * width / 2)
    return tuple(nodes), tuple(weights)


def panel(lo, hi, level: int, working_dps: int, *, kind: str = "gauss", smooth_lo: bool | int = False,
          smooth_hi: bool | int = False):
    """Nodes and weights of a rule on ``[lo, hi]``.

    ``kind="gauss"``: the (composite) Gauss-Legendre rule of :func:`size`
    ``(level)`` nodes; ``smooth_lo``/``smooth_hi`` compose it with the map
    ``x = lo + (hi-lo) v**2`` (or its mirror image; both:
    ``x = lo + (hi-lo) (1 - cos(pi v))/2``) so that a square-root singularity
    at that end becomes analytic.  An integer ``k >= 3`` at either end (a
    :class:`LogEnd`'s order) instead maps ``v`` in ``[0, 1]`` by the regularized
    incomplete beta function, ``x = lo + (hi-lo) I_v(k_lo, k_hi)`` (``True`` is
    order 2, ``False`` order 1): near such an end ``x - lo ~ v^k``, so that
    ``delta^p log delta`` becomes ``v^(k(p+1)-1) log v`` times the Jacobian's
    analytic rest, which one Gauss rule of ``N`` nodes integrates to about
    ``N^(-2k(p+1))`` (:func:`gauss_legendre`, not composite: the map packs the
    nodes towards the end, and blocks would spend theirs evenly).
    ``kind="tanh-sinh"``: the double exponential rule, for any algebraic end
    point singularity.

    Returns ``(nodes, weights)`` as lists of mpf.
    """
    n = size(level)
    width = hi - lo
    if kind == "tanh-sinh":
        left, right, weights = tanh_sinh(n, working_dps)
        nodes = []
        for a, b in zip(left, right):
            # evaluate from the nearer end to keep relative accuracy there
            nodes.append(lo + width * a / 2 if a < b else hi - width * b / 2)
        return nodes, [w * width / 2 for w in weights]
    orders = [k if type(k) is int else (2 if k else 1) for k in (smooth_lo, smooth_hi)]
    if max(orders) >= 3:
        return _beta_mapped(lo, hi, n, working_dps, *orders)
    # a mapped end is where the panel's nearest singularities are (a square root's mirror image just beyond it):
    # one rule, whose nodes crowd the ends, converges there where equal blocks do not
    single = max(orders) == 2 and n <= MAPPED_SINGLE_RULE
    u_nodes, u_weights = gauss_legendre(n, working_dps) if single else composite_legendre(n, working_dps)
    nodes, weights = [], []
    if smooth_lo and smooth_hi:
        pi = mpmath.pi
        for u, w in zip(u_nodes, u_weights):
            v = (u + 1) / 2  # in [0, 1]
            nodes.append(lo + width * (1 - mpmath.cos(pi * v)) / 2)
            weights.append(w * width * pi * mpmath.sin(pi * v) / 4)
    elif smooth_lo:
        for u, w in zip(u_nodes, u_weights):
            v = (u + 1) / 2
            nodes.append(lo + width * v * v)
            weights.append(w * width * v)
    elif smooth_hi:
        for u, w in zip(u_nodes, u_weights):
            v = (1 - u) / 2
            nodes.append(hi - width * v * v)
            weights.append(w * width * v)
    else:
        half = width / 2
        mid = lo + half
        for u, w in zip(u_nodes, u_weights):
            nodes.append(mid + half * u)
            weights.append(w * half)
    return nodes, weights


#: The precision a float64 rule is designed for (:func:`float64_rule`): the double-exponential rules are
#: truncated where their terms fall below ``10^-17``, float64's reach.
FLOAT_RULE_DPS = 17
#: Digits of the arithmetic that maps a rule to its interval in :func:`float64_rule`: a node within
#: ``10^-34`` of an end keeps 16 digits of its distance from it.
FLOAT_RULE_WORKING_DPS = 50


def float64_rule(rule, *args, complements: bool = False, **kwargs):
    """A rule of this module as float64 arrays: ``(nodes, weights)`` of ``rule(*args, FLOAT_RULE_DPS, **kwargs)``
    (the rule's ``working_dps`` is supplied: a rule for float64, its values given to 17 digits), mapped
    to its interval at :data:`FLOAT_RULE_WORKING_DPS` digits and rounded once to float64.  With
    ``complements=True``, ``(nodes, weights, 1 - nodes)``, the distances from 1 taken before the
    rounding (the float64 ``1 - node`` loses them near 1: a tanh-sinh node 10^-20 from 1 rounds to 1).
    Cost: the rule's, plus ``O(n)`` conversions."""
    with mpmath.workdps(FLOAT_RULE_WORKING_DPS):
        nodes, weights = rule(*args, FLOAT_RULE_DPS, **kwargs)
        out = (np.array([float(x) for x in nodes]), np.array([float(w) for w in weights]))
        return out + (np.array([float(1 - x) for x in nodes]),) if complements else out


@lru_cache(maxsize=8)
def legendre_float64(nodes: int):
    """Gauss-Legendre nodes and weights on ``[-1, 1]`` in float64 (ascending), by Newton on the
    three-term recurrence (``numpy.polynomial.legendre.leggauss`` solves an eigenproblem: seconds on
    a busy machine).  Cached per size."""
    x = np.cos(np.pi * (np.arange(1, nodes + 1) - 0.25) / (nodes + 0.5))
    for _ in range(20):
        p0, p1 = np.ones_like(x), x.copy()
        for j in range(2, nodes + 1):
            p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
        dp = nodes * (x * p1 - p0) / (x * x - 1)
        step = p1 / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    weights = 2 / ((1 - x * x) * dp * dp)
    return x[::-1].copy(), weights[::-1].copy()


def exponential_rule(scale, rate, alpha, n, working_dps):
    """Nodes ``s`` and weights (Jacobian included) for ``int_0^inf s^(alpha-1) e^{-rate s} g(s) ds``, ``rate > 0``.

    The double-exponential map for exponentially decaying integrands (Ooura and Mori),
    ``s = c exp(t - e^{-t})``, and the trapezoidal rule with ``n`` steps on ``[t_lo, t_hi]``: ``t_lo`` where
    ``(s/c)^alpha`` falls to ``10^-(working_dps+5)``, ``t_hi`` where ``rate s`` exceeds ``(working_dps + 5) ln 10 + 10``.
    In ``t`` the factor ``e^{-rate s}`` decays double-exponentially and stays analytic in the strip
    ``|Im t| < pi/2`` (the map ``s = c (1+x)/(1-x)`` of the tanh-sinh rule narrows that strip to about
    ``1/(2 cosh t)`` where ``rate s ~ 1``, and needed 4-6 times the nodes).
    """
    big = (working_dps + 5) * mpmath.log(10)
    t_lo = -mpmath.log(big / alpha + 1)
    t_hi = mpmath.log((big + 10) / (rate * scale)) + mpmath.mpf(1) / 2
    h = (t_hi - t_lo) / n
    nodes, weights = [], []
    for k in range(n + 1):
        t = t_lo + k * h
        e = mpmath.exp(-t)
        s = scale * mpmath.exp(t - e)
        nodes.append(s)
        weights.append(h * s * (1 + e) * (mpmath.mpf(1) / 2 if k in (0, n) else 1))
    return nodes, weights


def schwinger_rule(scale, rate, alpha, n, working_dps):
    """Nodes ``s`` and weights (Jacobian included) for ``int_0^inf s^(alpha-1) e^{-rate s} g(s) ds`` with about
    ``n`` nodes: :func:`exponential_rule` when ``rate > 0``, else tanh-sinh after ``s = scale (1 + x)/(1 - x)``
    (for algebraic decay; the rule of the Laplace method, docs/theory.md section 7, and of the spherical
    route, section 7.1).  ``scale`` should be the width of the integrand's bulk."""
    if rate:
        return exponential_rule(scale, rate, alpha, n, working_dps)
    left, right, weights = tanh_sinh(n, working_dps)
    return ([scale * lo / hi for lo, hi in zip(left, right)],
            [w * 2 * scale / (hi * hi) for hi, w in zip(right, weights)])


def geometric_mean(values):
    """``exp(mean(log v))`` of positive mpf values."""
    return mpmath.exp(mpmath.fsum(mpmath.log(v) for v in values) / len(values))


def schwinger_scale(eigenvalues, rate):
    """``c = 1 / (2 g + rate)``, ``g`` the :func:`geometric_mean` of the (positive) eigenvalues of ``K``: the
    width of the bulk of ``det(I + 2 s K)^(-1/2) e^{-rate s}``, the ``scale`` of :func:`schwinger_rule`."""
    return 1 / (2 * geometric_mean(eigenvalues) + rate)


#: Up to this many nodes a Gauss panel with a mapped end is one rule, not :func:`composite_legendre`'s blocks
#: (:func:`panel`).  Measured at B = 6 (``x_+^(3/2)``, ``beta = 0.2``, wp 70), the panel of the pair of derivatives
#: between a kink and a tangency, square-root maps at both ends: blocks of 64 reached 5e-42, 3e-45 and 2e-58 with
#: 96, 128 and 192 nodes (a singularity lies 0.14 of the panel's width beyond one end).
MAPPED_SINGLE_RULE = 256


def _beta_mapped(lo, hi, n, working_dps, k_lo, k_hi):
    """The Gauss rule of ``n`` nodes through ``x = lo + (hi - lo) I_v(k_lo, k_hi)`` (see :func:`panel`); a node is
    computed from its nearer end (``1 - I_v(a, b) = I_(1-v)(b, a)``), so that nodes within ``10^-30`` of an end keep
    their distance from it.  Cost: ``n`` incomplete beta functions (polynomials of degree ``k_lo + k_hi - 1``)."""
    width = hi - lo
    u_nodes, u_weights = gauss_legendre(n, working_dps)
    scale = width / (2 * mpmath.beta(k_lo, k_hi))
    nodes, weights = [], []
    for u, w in zip(u_nodes, u_weights):
        v, v_rest = (1 + u) / 2, (1 - u) / 2
        if v < v_rest:
            nodes.append(lo + width * mpmath.betainc(k_lo, k_hi, 0, v, regularized=True))
        else:
            nodes.append(hi - width * mpmath.betainc(k_hi, k_lo, 0, v_rest, regularized=True))
        weights.append(w * scale * v ** (k_lo - 1) * v_rest ** (k_hi - 1))
    return nodes, weights


# ------------------------------------------------------------------ panels between breakpoints
@dataclass(frozen=True)
class LogEnd:
    """A breakpoint flag: the integrand is analytic plus ``delta^p log delta`` (``p >= 1`` an integer) at distance
    ``delta`` from it, on each side; the Gauss panels beside it use the map of order ``order`` there
    (:func:`panel`).  Between ``False`` (any singularity: tanh-sinh) and ``"sqrt"`` (:func:`weaker_flag`)."""

    order: int


def weaker_flag(a, b):
    """The weaker of two breakpoint flags: ``False`` (singular) before a :class:`LogEnd` (the higher order first)
    before ``"sqrt"`` before ``True`` (regular)."""
    if a is False or b is False:
        return False
    logs = [f for f in (a, b) if isinstance(f, LogEnd)]
    if logs:
        return max(logs, key=lambda f: f.order)
    return "sqrt" if "sqrt" in (a, b) else True


def end_order(flag):
    """The map order of :func:`panel` at a Gauss panel's end of breakpoint flag ``flag``: a :class:`LogEnd`'s
    order, ``True`` for ``"sqrt"`` (the square-root map), ``False`` for an analytic end."""
    return flag.order if isinstance(flag, LogEnd) else flag == "sqrt"


def cut_key(point, working_dps):
    """The key under which breakpoints are one (:func:`merged_cuts`): ``point`` to ``working_dps - 3`` digits."""
    return mpmath.nstr(point, working_dps - 3)


def merged_cuts(groups, working_dps):
    """Union of breakpoint lists ``[(point, flag)]``, sorted: points with the same :func:`cut_key` are one,
    with the weakest flag any list gives it (:func:`weaker_flag`)."""
    merged = {}
    for group in groups:
        for point, flag in group:
            key = cut_key(point, working_dps)
            merged[key] = (point, flag) if key not in merged else (merged[key][0], weaker_flag(merged[key][1], flag))
    return sorted(merged.values(), key=lambda item: item[0])


def breakpoint_panels(lo, hi, cuts, working_dps, *, grade=True, beyond=()):
    """Panels ``(lo, hi, kind, (smooth_lo, smooth_hi))`` between the breakpoints ``cuts`` inside ``(lo, hi)``.

    A cut is ``(point, flag)`` with flag ``True`` (analytic on both sides),
    ``False`` (algebraic singularity: tanh-sinh panels), ``"sqrt"``
    (square-root behaviour: smoothing map on the adjacent panels) or a :class:`LogEnd`
    (an integer power with a logarithm: the map of its order); cuts are merged by
    :func:`merged_cuts`.  With ``grade``, a panel with a singular cut (``False`` or ``"sqrt"``)
    just beyond one of its ends is split geometrically towards that end (:func:`_graded`);
    ``beyond`` lists singular points of the integrand outside ``[lo, hi]`` (no panel ends there),
    which the grading sees too.
    """
    points = [(point, flag) for point, flag in merged_cuts([cuts], working_dps) if lo < point < hi]
    bounds = [(lo, True)] + points + [(hi, True)]
    singular = [point for point, flag in points if flag is not True] + list(beyond) if grade else []
    edges = []
    for (a, fa), (b, fb) in itertools.pairwise(bounds):
        splits = _graded(a, b, singular)
        ends = [(a, fa)] + [(x, True) for x in splits] + [(b, fb)]
        for (x, fx), (y, fy) in itertools.pairwise(ends):
            if fx is False or fy is False:
                edges.append((x, y, "tanh-sinh", (False, False)))
            else:
                edges.append((x, y, "gauss", (end_order(fx), end_order(fy))))
    return edges


#: A panel is graded towards an end when a singular breakpoint lies outside it, closer to that end
#: than ``1 / NEAR_SINGULARITY`` of the panel's width (:func:`_graded`).
NEAR_SINGULARITY = 8


def _graded(a, b, singular):
    """Interior split points of the panel ``[a, b]`` that keep a singular point just outside it from
    slowing its rule: with the nearest singular breakpoint at distance ``d`` beyond ``a`` (or ``b``)
    and ``d < (b - a) / NEAR_SINGULARITY``, the splits ``a + 2^k d`` (``k = 1, 2, ...``), up to the
    middle when both ends are graded.  Each piece is then at most three times as wide as its
    distance from the singularity (a Bernstein ellipse of parameter 3 or better: about one digit
    per Gauss node), where an ungraded Gauss rule would converge as
    ``exp(-2 N sqrt(4 d / (b - a)))`` (docs/theory.md sections 3.2 and 15.3).  Cost: about
    ``log2((b - a) / d)`` pieces, each with the panel's nodes."""
    width = b - a
    left = [a - p for p in singular if p < a]
    right = [p - b for p in singular if p > b]
    d_lo = min(left) if left else None
    d_hi = min(right) if right else None
    grade_lo = d_lo is not None and d_lo * NEAR_SINGULARITY < width
    grade_hi = d_hi is not None and d_hi * NEAR_SINGULARITY < width
    if not (grade_lo or grade_hi):
        return []
    limit_lo = a + width / 2 if grade_hi else b
    limit_hi = b - width / 2 if grade_lo else a
    splits = []
    if grade_lo:
        step = 2 * d_lo
        while a + 2 * step <= limit_lo:
            splits.append(a + step)
            step *= 2
    if grade_hi:
        step = 2 * d_hi
        mirrored = []
        while b - 2 * step >= limit_hi:
            mirrored.append(b - step)
            step *= 2
        splits += mirrored[::-1]
    if grade_lo and grade_hi:
        splits.append(a + width / 2)
    return sorted(splits)
