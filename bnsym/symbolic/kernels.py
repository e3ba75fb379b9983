r"""Closed-form Gaussian two-point kernels ``V_phi(K)`` in sympy.

``V_phi(K) = E_{z ~ N(0, K)}[phi(z) phi(z)^T]`` for a 2 x 2 covariance
``K = [[k11, k12], [k12, k22]]`` (docs/theory.md section 7).  Closed forms exist
for three families, all handled here:

* **piecewise power functions** ``F(z) = a_+ z^p`` (``z > 0``),
  ``a_- |z|^p`` (``z < 0``), integer ``p >= 0`` -- identity, ReLU and its
  integer powers, leaky ReLU (any slope, also symbolic), ``|x|``, the step
  function -- and finite sums of them (every polynomial is one).  With
  ``rho = k12 / sqrt(k11 k22) = cos(theta)`` and ``m = p + q``, one orthant
  gives the arc-cosine kernels of Cho and Saul (2009):

      E[z_1^p z_2^q 1{z_1 > 0, z_2 > 0}]
          = k11^(p/2) k22^(q/2) 2^(m/2) Gamma(m/2 + 1) / (2 pi) * J_pq(theta),
      J_pq(theta) = int_{theta - pi/2}^{pi/2} cos(w)^p cos(w - theta)^q dw

  (polar coordinates after whitening); the other orthants follow from
  ``z -> -z`` (same ``rho``) and ``z_2 -> -z_2`` (``rho -> -rho``, ``theta ->
  pi - theta``).  ``J_pq`` is integrated exactly by expanding
  ``cos(w - theta)`` and integrating ``cos^i(w) sin^j(w)`` in sympy.  Pairs
  of monomials (``a_- = (-1)^p a_+``) use Isserlis' theorem instead, through
  the generating function ``exp((k11 s^2 + 2 k12 s t + k22 t^2)/2)``.
* **erf** ``phi = erf(c x)``: the arcsine kernel (Williams 1997),
  ``E[erf(c z_1) erf(c z_2)] = (2/pi) asin(2 c^2 k12 / sqrt((1 + 2 c^2 k11)(1 + 2 c^2 k22)))``.

Anything else raises :class:`~bnsym.errors.BnsymInputError` saying that no
closed form is known.  Cost: ``O(p^2 q^2)`` symbolic integrals of trig
monomials (cached), milliseconds to a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from bnsym.activations import x
from bnsym.errors import BnsymInputError

#: Integration variable of the arc integrals and the positive half-line variable.
_w = sp.Symbol("w", real=True)
_y = sp.Symbol("y", positive=True)
_theta = sp.Symbol("theta", positive=True)


# --------------------------------------------------------------------- terms
@dataclass(frozen=True)
class Power:
    """``F(z) = plus * z**degree`` for ``z > 0`` and ``minus * |z|**degree`` for ``z < 0``."""

    plus: sp.Expr
    minus: sp.Expr
    degree: int

    def __mul__(self, other: "Power") -> "Power":
        return Power(self.plus * other.plus, self.minus * other.minus, self.degree + other.degree)

    def scaled(self, factor) -> "Power":
        return Power(self.plus * factor, self.minus * factor, self.degree)

    def derivative(self) -> "Power | None":
        """``F'`` away from 0 (``None`` for a constant piece: its derivative is 0 there)."""
        p = self.degree
        if p == 0:
            return None
        return Power(p * self.plus, -p * self.minus, p - 1)

    @property
    def is_monomial(self) -> bool:
        """True when ``F(z) = plus * z**degree`` on the whole line."""
        return sp.simplify(self.minus - (-1) ** self.degree * self.plus) == 0


@dataclass(frozen=True)
class PowerSum:
    """A finite sum of :class:`Power` terms (a polynomial, or a piecewise power function)."""

    terms: tuple

    def __mul__(self, other: "PowerSum") -> "PowerSum":
        return PowerSum(tuple(a * b for a in self.terms for b in other.terms))

    def scaled(self, factor) -> "PowerSum":
        return PowerSum(tuple(t.scaled(factor) for t in self.terms))

    def derivative(self) -> "PowerSum":
        return PowerSum(tuple(d for d in (t.derivative() for t in self.terms) if d is not None))

    def times_power(self, k: int) -> "PowerSum":
        """``z**k F(z)``."""
        return self * PowerSum((Power(sp.Integer(1), sp.Integer(-1) ** k, k),))

    @property
    def degrees(self) -> tuple:
        return tuple(sorted({t.degree for t in self.terms}))


def power_terms(expr, gain=1, shift=0):
    """``phi(gain * z + shift)`` as a :class:`PowerSum`, or ``None`` if it is not one.

    Polynomials in ``x`` work for any ``gain`` and ``shift`` (also symbolic).
    Functions that are a polynomial on each half-line (kink at 0: relu,
    its powers, leaky relu, ``|x|``, ``relu(x) + x^2/8``...) need
    ``shift == 0``; a symbolic ``gain`` is taken as a nonzero real and
    enters through ``|gain|^p`` (exact for every quantity even in ``z -> -z``,
    which is all this package uses).  Cost: one polynomial expansion or two
    substitutions.
    """
    expr = sp.sympify(expr)
    gain, shift = sp.sympify(gain), sp.sympify(shift)
    z = sp.Dummy("z", real=True)
    if expr.is_polynomial(x):
        poly = sp.Poly(sp.expand(expr.subs(x, gain * z + shift)), z)
        return PowerSum(
            tuple(Power(c, (-1) ** k * c, k) for (k,), c in poly.terms() if c != 0)
        )
    if sp.simplify(shift) != 0:
        return None
    halves = []
    for sign in (1, -1):
        half = sp.piecewise_fold(expr.subs(x, sign * _y))
        if half.has(sp.Piecewise):
            return None
        coefficients = _half_line_powers(half)
        if coefficients is None:
            return None
        halves.append(coefficients)
    plus, minus = halves
    if gain.is_number and gain.is_negative:
        plus, minus = minus, plus
    degrees = sorted(set(plus) | set(minus))
    zero = sp.Integer(0)
    return PowerSum(
        tuple(
            Power(plus.get(k, zero) * sp.Abs(gain) ** k, minus.get(k, zero) * sp.Abs(gain) ** k, k)
            for k in degrees
        )
    )


def _half_line_powers(half):
    """``{k: c_k}`` when ``half = sum_k c_k y^k`` (integer ``k >= 0``) on ``y > 0``, else ``None``."""
    half = sp.expand(half)
    if half.is_zero:
        return {}
    if half.is_polynomial(_y):
        return {k: c for (k,), c in sp.Poly(half, _y).terms() if c != 0}
    degree = sp.simplify(_y * sp.diff(half, _y) / half)  # a single power c y^p, p possibly symbolic-free
    if degree.free_symbols or not (degree.is_integer and degree >= 0):
        return None
    coefficient = sp.simplify(half / _y**degree)
    return None if coefficient.has(_y) else {int(degree): coefficient}


# --------------------------------------------------------------- arc integrals
@lru_cache(maxsize=None)
def _trig_antiderivative(i: int, j: int):
    return sp.integrate(sp.cos(_w) ** i * sp.sin(_w) ** j, _w)


_C, _S = sp.symbols("C S", real=True)


@lru_cache(maxsize=None)
def _arc_polynomial(p: int, q: int):
    """``J_pq`` as ``A(C, theta) + S * B(C, theta)`` with ``C = cos(theta)``, ``S = sin(theta)``."""
    # cos(w - theta)^q = sum_k binom(q, k) cos(theta)^k sin(theta)^(q-k) cos(w)^k sin(w)^(q-k)
    total = sp.Integer(0)
    for k in range(q + 1):
        anti = _trig_antiderivative(p + k, q - k)
        definite = anti.subs(_w, sp.pi / 2) - anti.subs(_w, _theta - sp.pi / 2)
        total += sp.binomial(q, k) * sp.cos(_theta) ** k * sp.sin(_theta) ** (q - k) * definite
    total = sp.expand(sp.expand_trig(sp.expand(total)))
    total = total.xreplace({sp.cos(_theta): _C, sp.sin(_theta): _S})
    return sp.expand(sp.rem(total, _S**2 + _C**2 - 1, _S))


def arc_integral(p: int, q: int, theta, cosine=None, sine=None) -> sp.Expr:
    r"""``J_pq(theta) = int_{theta - pi/2}^{pi/2} cos(w)^p cos(w - theta)^q dw``, exactly.

    ``cosine``/``sine`` may be given to write ``cos(theta)``/``sin(theta)``
    in a chosen form (e.g. ``-1/n`` and ``sqrt(n^2-1)/n``).

    >>> t = sp.Symbol("t")
    >>> sp.simplify(arc_integral(1, 1, t) - (sp.sin(t) + (sp.pi - t) * sp.cos(t)) / 2)
    0
    """
    cosine = sp.cos(theta) if cosine is None else cosine
    sine = sp.sin(theta) if sine is None else sine
    return _arc_polynomial(int(p), int(q)).xreplace({_C: cosine, _S: sine, _theta: theta})


def half_moment(p: int, variance=1) -> sp.Expr:
    """``E[z^p 1{z > 0}]`` for ``z ~ N(0, variance)``: ``variance^(p/2) 2^(p/2) Gamma((p+1)/2) / (2 sqrt(pi))``."""
    return sp.sympify(variance) ** sp.Rational(p, 2) * 2 ** sp.Rational(p, 2) * sp.gamma(sp.Rational(p + 1, 2)) / (2 * sp.sqrt(sp.pi))


def orthant_moment(p: int, q: int, rho, sine=None, theta=None) -> sp.Expr:
    """``E[z_1^p z_2^q 1{z_1 > 0, z_2 > 0}]`` for unit variances and correlation ``rho``.

    ``sine = sqrt(1 - rho^2)`` and ``theta = acos(rho)`` may be passed in a chosen form.
    """
    m = p + q
    rho = sp.sympify(rho)
    sine = sp.sqrt(1 - rho**2) if sine is None else sine
    theta = sp.acos(rho) if theta is None else theta
    return 2 ** sp.Rational(m, 2) * sp.gamma(sp.Rational(m, 2) + 1) / (2 * sp.pi) * arc_integral(p, q, theta, rho, sine)


@lru_cache(maxsize=None)
def _isserlis(i: int, j: int):
    if (i + j) % 2:
        return sp.Integer(0)
    s, t, a, b, c = sp.symbols("s t a b c")
    k = (i + j) // 2
    quadratic = sp.expand(((a * s**2 + 2 * b * s * t + c * t**2) / 2) ** k / sp.factorial(k))
    return sp.Poly(quadratic, s, t).coeff_monomial(s**i * t**j) * sp.factorial(i) * sp.factorial(j), (a, b, c)


def gaussian_moment(i: int, j: int, k11=1, k12=0, k22=1) -> sp.Expr:
    """``E[z_1^i z_2^j]`` for ``(z_1, z_2) ~ N(0, [[k11, k12], [k12, k22]])`` (Isserlis)."""
    value = _isserlis(int(i), int(j))
    if value == 0:
        return value
    expr, (a, b, c) = value
    return expr.subs({a: k11, b: k12, c: k22}, simultaneous=True)


def gaussian_mean(f: PowerSum, variance=1) -> sp.Expr:
    """``E[F(z)]`` for ``z ~ N(0, variance)``."""
    return sp.Add(*[(t.plus + t.minus) * half_moment(t.degree, variance) for t in f.terms])


def gaussian_pair(f: PowerSum, g: PowerSum, rho, k11=1, k22=1, *, sine=None, theta=None) -> sp.Expr:
    """``E[F(z_1) G(z_2)]`` for variances ``k11``, ``k22`` and correlation ``rho``.

    ``sine = sqrt(1 - rho^2)`` and ``theta = acos(rho)`` may be passed in a chosen form.
    """
    rho = sp.sympify(rho)
    sine = sp.sqrt(1 - rho**2) if sine is None else sine
    theta = sp.acos(rho) if theta is None else theta
    k11, k22 = sp.sympify(k11), sp.sympify(k22)
    total = sp.Integer(0)
    for a in f.terms:
        for b in g.terms:
            p, q = a.degree, b.degree
            if a.is_monomial and b.is_monomial:
                k12 = rho * sp.sqrt(k11 * k22)
                total += a.plus * b.plus * gaussian_moment(p, q, k11, k12, k22)
                continue
            scale = k11 ** sp.Rational(p, 2) * k22 ** sp.Rational(q, 2)
            same = orthant_moment(p, q, rho, sine, theta)
            mixed = orthant_moment(p, q, -rho, sine, sp.pi - theta)  # z_2 -> -z_2
            total += scale * ((a.plus * b.plus + a.minus * b.minus) * same + (a.plus * b.minus + a.minus * b.plus) * mixed)
    return total


# ----------------------------------------------------------------- kernels
def _erf_scale(expr):
    """``c`` if ``expr == erf(c x)`` with ``c`` free of ``x``, else ``None``."""
    if isinstance(expr, sp.erf):
        c = sp.simplify(expr.args[0] / x)
        if not c.has(x) and c != 0:
            return c
    return None


def kernel_entry(expr, k11, k12, k22) -> sp.Expr:
    """``E[phi(z_1) phi(z_2)]`` for ``z ~ N(0, [[k11, k12], [k12, k22]])`` in closed form.

    Raises :class:`~bnsym.errors.BnsymInputError` when no closed form is known.
    """
    k11, k12, k22 = (sp.sympify(k) for k in (k11, k12, k22))
    c = _erf_scale(expr)
    if c is not None:
        return 2 / sp.pi * sp.asin(2 * c**2 * k12 / sp.sqrt((1 + 2 * c**2 * k11) * (1 + 2 * c**2 * k22)))
    terms = power_terms(expr)
    if terms is None:
        raise BnsymInputError(
            f"activation: no closed-form Gaussian kernel is known for {expr} (closed forms exist for "
            "polynomials, piecewise powers such as relu, relu_power, leaky_relu, abs and the step function, "
            "and erf(c*x)); use numerical integration instead"
        )
    if k12 == k11 and k12 == k22:  # the diagonal: one coordinate
        return gaussian_mean(terms * terms, k11)
    return gaussian_pair(terms, terms, k12 / sp.sqrt(k11 * k22), k11, k22)


def gaussian_kernel(phi, covariance=None, *, simplify: bool = True) -> sp.Matrix:
    r"""``V_phi(K)``: the 2 x 2 matrix ``E_{z ~ N(0, K)}[phi(z) phi(z)^T]`` in closed form.

    ``phi``: anything :func:`bnsym.symbolic.expressions.symbolic_activation`
    accepts (a name such as ``"relu"``, ``"relu_power(3)"``,
    ``"leaky_relu(a)"`` with a symbolic slope, ``"step"``, ``"erf"``, or an
    expression in ``x``).  ``covariance``: a 2 x 2 sympy Matrix (default the
    symbols ``[[k11, k12], [k12, k22]]``, positive variances).  Domain: ``K``
    positive semi-definite with positive diagonal.  Cost: milliseconds to a
    second (symbolic integration of trig monomials, cached).

    >>> from sympy import Symbol
    >>> gaussian_kernel("relu")[0, 0]
    k11/2
    >>> gaussian_kernel("identity")[0, 1]
    k12
    """
    from bnsym.symbolic.expressions import symbolic_activation

    expr = symbolic_activation(phi).expr
    if covariance is None:
        k11, k22 = sp.symbols("k11 k22", positive=True)
        k12 = sp.Symbol("k12", real=True)
    else:
        cov = sp.Matrix(covariance)
        if cov.shape != (2, 2) or sp.simplify(cov[0, 1] - cov[1, 0]) != 0:
            raise BnsymInputError(f"covariance must be a symmetric 2 x 2 matrix, got shape {cov.shape}")
        k11, k12, k22 = cov[0, 0], cov[0, 1], cov[1, 1]
    entries = [kernel_entry(expr, k11, k11, k11), kernel_entry(expr, k11, k12, k22), kernel_entry(expr, k22, k22, k22)]
    if simplify:
        entries = [sp.simplify(e) for e in entries]
    return sp.Matrix([[entries[0], entries[1]], [entries[1], entries[2]]])
