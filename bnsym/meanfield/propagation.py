r"""The batch Gram matrix layer by layer, for any input batch (docs/theory.md sections 2, 6, 7).

``propagate`` iterates the mean-field map ``Sigma^l = V(Sigma^{l-1})`` from
an arbitrary positive semidefinite input Gram matrix and reports, per layer,
the distance to the BSB1 fixed point ``Sigma*`` and its parts on the
invariant subspaces ``L`` and ``M`` of docs/theory.md section 6 (whose per-layer
ratios tend to the forward eigenvalues of :func:`bnsym.spectrum`).

Three methods:

* ``"laplace"`` (positively homogeneous ``phi`` of degree ``alpha`` at
  ``beta = 0``, any ``eps >= 0``): docs/theory.md sections 7 and 15,

      V(Sigma) = B^alpha / Gamma(alpha) int_0^inf s^(alpha-1) e^{-s B eps / sigma_w^2} det(I + 2 s K)^(-1/2)
                 V_phi(K (I + 2 s K)^(-1)) ds,      K = G Sigma G,

  one integral per entry, all entries on one rule with the scale ``c = 1/(2 g + B eps / sigma_w^2)``
  (``g`` the geometric mean of the nonzero eigenvalues of K): tanh-sinh after ``s = c (1 + x)/(1 - x)``
  at ``eps = 0``, the double-exponential rule for exponential decay at ``eps > 0``
  (:mod:`bnsym.meanfield.laplace`); ``K`` is diagonalised once per layer so each node
  costs ``O(B r)`` per entry (``r = rank K``).  At ``eps > 0`` past the critical eps the
  iterates tend to the degenerate point ``G Sigma G = 0`` (where the map is exactly 0).  The rule level is raised
  until two consecutive levels agree to ``dps`` digits (their difference is
  the error).  ``V_phi`` is :func:`bnsym.numerics.gaussian_kernels.homogeneous_kernel`.
* ``"spherical"`` (any activation, ``beta``, ``eps >= 0``, an input whose ``G Sigma G`` has rank ``B - 1``):
  docs/theory.md section 7.1, :mod:`bnsym.meanfield.spherical`; every entry a two-dimensional
  integral against the law of a pair of batch-normalized coordinates, which has a closed form; to
  ``dps`` digits, with the error of the rule.  ``"auto"`` takes it for activations without kinks
  (seconds per pair of inputs at 15 digits; up to 10 digits a float64 rule for every pair at once, about
  2 s a layer at B = 32); for kinked ones (ReLU at ``beta != 0``, ``elu``...) its rule
  costs about thirty times more (a minute a pair), so ``"auto"`` takes them only up to
  ``FLOAT_DPS`` = 10 digits, where a float64 rule cut at the kink lines serves (ReLU at ``beta = 0.2``:
  3 s a layer at B = 4 to 8, 20 s at B = 16, 2.6 min at B = 32), and samples at more digits or where that
  rule does not converge; above 10 digits ``method="spherical"`` asks for the nested rule.
* ``"sampling"`` (every other case: kinks reached above 10 digits, ``G Sigma G`` of rank below ``B - 1`` or condition
  number above 1000, or eps more than ``10^6`` away from its scale): ``R`` independent Monte Carlo chains of
  :func:`bnsym.montecarlo.sampling.gram_map`; the mean over chains is reported with its
  standard error over chains (which includes the compounding of earlier
  layers' noise) and the result says so (``method``, ``stderr``).

**Several batches** (docs/theory.md section 14): ``input_gram`` a list of ``k`` input batches
(``B x d`` arrays; the Gram matrix is ``X X^T / d``), a ``k x k`` nested list of ``B x B`` blocks,
or a full ``kB x kB`` Gram matrix with ``batch_size``: the joint map is iterated (within-batch
blocks are the single-batch map, cross blocks the two-parameter Laplace cross map of
:mod:`bnsym.meanfield.joint`, in float64 with per-layer error estimates, for positively
homogeneous ``phi`` of integer degree at ``beta = 0``, any ``eps``, for ``dps <= 10``; in mpmath
above, :func:`bnsym.meanfield.kernels.high_precision_layers`, seconds to minutes per layer for
small batches) and a :class:`JointPropagation` is returned.

Cost: Laplace ``O(depth * levels * nodes * B^2 r)`` mpmath operations
(about a second per layer for B = 8 at 15 digits); sampling
``O(depth * R * samples * B^2)`` flops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import numpy as np

from bnsym import validation
from bnsym.errors import BnsymInputError, PrecisionError
from bnsym.meanfield.bsb1 import bsb1_state
from bnsym.meanfield.kernels import high_precision_layers, input_gram, joint_layers
from bnsym.meanfield.laplace import laplace_applies, laplace_map, laplace_obstacle
from bnsym.meanfield.results import FixedPoint, Settings, make_settings
from bnsym.meanfield.spherical import (
    AUTO_CONDITION,
    FLOAT_DPS,
    kinks_in_support,
    spherical_map,
    spherical_obstacle,
)
from bnsym.subspaces import subspace_parts
from bnsym.text import ShownAsText, table_text

METHODS = ("auto", "laplace", "spherical", "sampling")
INPUTS = ("random", "orthogonal", "collinear")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Propagation(ShownAsText):
    """The Gram matrix per layer and its distance to the BSB1 point.

    ``grams[l]`` (NumPy, ``l = 0..depth``; ``grams[0]`` the input) with
    ``errors[l]`` (Laplace and spherical: the quadrature error made at layer ``l``, entrywise, not
    counting what earlier layers' errors carry in; sampling: standard error over chains, entrywise);
    ``grams_mp`` the Laplace or spherical trajectory at full precision (None for sampling).  ``distance[l] = ||Sigma^l - Sigma*||_F``; ``distance_L``/``distance_M``
    the Frobenius norms of the ``L`` and ``M`` parts of ``G (Sigma^l - Sigma*) G``;
    ``*_error`` their error estimates (one standard error for sampling, zero-based
    quadrature error for Laplace and spherical).  Layer 0 is the raw input (not normalised).
    """

    settings: Settings
    method: str
    grams: tuple = field(repr=False)  # (depth + 1) matrices: see the text (str) or the attribute
    errors: tuple = field(repr=False)
    distance: tuple
    distance_L: tuple
    distance_M: tuple
    distance_error: tuple
    fixed_point: FixedPoint
    grams_mp: tuple | None = field(default=None, repr=False)
    samples: int | None = None
    chains: int | None = None

    @property
    def depth(self) -> int:
        return len(self.grams) - 1

    def __str__(self) -> str:
        """The settings, the method and per layer the distance to the BSB1 point with its ``L`` and ``M``
        parts (what ``bnsym propagate`` prints)."""
        how = {"laplace": "exact, Laplace method", "spherical": "exact, spherical route"}.get(
            self.method, f"Monte Carlo, {self.chains} chains x {self.samples} samples per layer")
        rows = [(str(l), f"{self.distance[l]:.6g}", f"{self.distance_error[l]:.2g}", f"{self.distance_L[l]:.6g}",
                 f"{self.distance_M[l]:.6g}") for l in range(self.depth + 1)]
        table = table_text(rows, header=("layer", "||Sigma-Sigma*||_F", "error", "L part", "M part"))
        return f"{self.settings.line(detail=how, digits=self.method != 'sampling')}\ndepth {self.depth}\n{table}"

    def as_dict(self) -> dict:
        return {
            "settings": self.settings.as_dict(),
            "method": self.method,
            "samples_per_layer": self.samples,
            "chains": self.chains,
            "layers": [
                {
                    "layer": l,
                    "distance": float(self.distance[l]),
                    "distance_error": float(self.distance_error[l]),
                    "distance_L": float(self.distance_L[l]),
                    "distance_M": float(self.distance_M[l]),
                    "gram": self.grams[l].tolist(),
                }
                for l in range(len(self.grams))
            ],
        }


@dataclass(frozen=True, eq=False)
class JointPropagation(ShownAsText):
    """The joint ``kB x kB`` Gram matrix of ``k`` batches per layer (docs/theory.md section 14).

    ``grams[l]`` (``l = 0..depth``, ``grams[0]`` the input); ``errors[l]``: the estimated largest
    absolute quadrature error made at layer ``l``; ``method``: how it was computed; ``grams_mp``:
    the mpmath matrices when computed above 10 digits (else None).
    """

    settings: Settings
    method: str
    batches: int
    grams: tuple = field(repr=False)  # (depth + 1) matrices: see the text (str) or the attribute
    errors: tuple
    grams_mp: tuple | None = field(default=None, repr=False)

    @property
    def depth(self) -> int:
        return len(self.grams) - 1

    def block(self, layer: int, p: int, q: int) -> np.ndarray:
        """The ``(p, q)`` block (batch ``p`` against batch ``q``) of ``grams[layer]``."""
        b = self.settings.batch_size
        return self.grams[layer][p * b:(p + 1) * b, q * b:(q + 1) * b]

    def cross_batch_correlation(self, layer: int) -> float:
        """Mean entry of the cross blocks over the mean diagonal entry of ``grams[layer]``."""
        k = self.batches
        cross = np.mean([self.block(layer, p, q).mean() for p in range(k) for q in range(k) if p != q])
        return float(cross / np.mean(np.diag(self.grams[layer])))

    def __str__(self) -> str:
        """The settings and per layer the cross-batch correlation with the error estimate (what ``bnsym
        propagate`` prints for several batches)."""
        rows = [(str(l), f"{self.cross_batch_correlation(l):.8g}", f"{self.errors[l]:.2g}") for l in range(self.depth + 1)]
        table = table_text(rows, header=("layer", "cross-batch correlation", "error"))
        head = self.settings.line(detail=self.method, digits=self.grams_mp is not None)  # (float64 below 11 digits)
        return f"{head}\n{self.batches} batches, depth {self.depth}\n{table}"

    def as_dict(self) -> dict:
        return {
            "settings": self.settings.as_dict(), "method": self.method, "batches": self.batches,
            "layers": [{"layer": l, "error": float(self.errors[l]), "gram": self.grams[l].tolist(),
                        "cross_batch_correlation": self.cross_batch_correlation(l)} for l in range(len(self.grams))],
        }


# --------------------------------------------------------------------------- public API
def propagate(
    activation, input_gram, depth, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto",
    batch_size=None, samples=10**5, chains=4, seed=0,
) -> Propagation:
    r"""Iterate the mean-field Gram map ``depth`` times from ``input_gram``.

    ``input_gram``: a symmetric positive semidefinite ``B x B`` array
    (``B >= 4``; checked: square, finite, symmetric, PSD, ``G Sigma G != 0``);
    ``batch_size``, if given, must equal ``B``.  ``depth``: integer >= 1.
    ``method``: ``"auto"`` (Laplace where it applies: positively homogeneous ``phi`` at ``beta = 0``,
    any ``eps``; else the spherical route when ``gamma x + beta`` reaches no kink of ``phi`` (or
    ``dps <= FLOAT_DPS`` = 10 and its float64 rule converges) and
    ``G Sigma G`` has rank ``B - 1``, condition number at most ``AUTO_CONDITION`` = 1000 and, at
    ``eps > 0``, a scale within ``10^6`` of ``eps B / sigma_w^2``; else sampling), ``"laplace"``, ``"spherical"`` (each refused with
    :class:`~bnsym.errors.BnsymInputError` where it does not apply) or ``"sampling"`` (``samples``
    per layer and chain, ``chains`` independent chains, seeds from ``seed``).  Laplace and spherical
    values are promised to ``dps`` digits relative to the largest entry; ``method`` on the result
    says which ran.

    >>> p = propagate("relu", np.diag([1.0, 2.0, 3.0, 4.0]), 3, dps=10)
    >>> p.method, [round(float(d), 6) for d in p.distance_L[1:]]
    ('laplace', [0.143759, 0.076757, 0.040659])
    >>> round(p.distance_L[3] / p.distance_L[2], 3)  # -> lambda_L = 0.5258 (bnsym.spectrum("relu", 4))
    0.53
    """
    joint = joint_input(input_gram, batch_size)
    if joint is not None:
        return _joint(activation, joint[0], joint[1], depth, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps,
                      method=method)
    gram = input_gram_matrix(input_gram, batch_size=batch_size)
    b = gram.shape[0]
    depth = validation.integer(depth, name="depth", minimum=1)
    settings = make_settings(activation, b, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps)
    if method not in METHODS:
        raise BnsymInputError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    exact = laplace_applies(settings)
    if method == "laplace" and not exact:
        raise BnsymInputError(f"method='laplace' does not apply: {laplace_obstacle(settings)}; use method='spherical', "
                              "'sampling' or 'auto'")
    if method == "spherical" or (method == "auto" and not exact):
        with mpmath.workdps(settings.working_dps):
            blocked = spherical_obstacle(settings, mpmath.matrix(gram.tolist()),
                                         condition=AUTO_CONDITION if method == "auto" else None)
        if method == "spherical" and blocked is not None:
            raise BnsymInputError(f"method='spherical' does not apply: {blocked}; use method='sampling'")
    float_only = False  # "auto" on a kinked activation: the float64 cut rule or sampling, never the nested rule
    if method == "auto":
        kinked = bool(kinks_in_support(settings))
        if exact:
            method = "laplace"
        elif blocked is None and (not kinked or settings.dps <= FLOAT_DPS):
            method, float_only = "spherical", kinked
        else:
            method = "sampling"
    fp = bsb1_state(settings).fixed_point
    star = fp.array()
    if method in ("laplace", "spherical"):
        grams_mp, errors_mp = [mpmath.matrix(gram.tolist())], [mpmath.matrix(b, b)]
        with mpmath.workdps(settings.working_dps):
            for _ in range(depth):
                try:
                    value, error = (laplace_map(settings, grams_mp[-1]) if method == "laplace"
                                    else spherical_map(settings, grams_mp[-1], float_only=float_only))
                except PrecisionError:
                    if not float_only:
                        raise
                    return _sampled(settings, gram, depth, star, fp, samples, chains, seed)
                grams_mp.append(value)
                errors_mp.append(error)
        grams = [np.array(g.tolist(), dtype=float) for g in grams_mp]
        errors = [np.array(e.tolist(), dtype=float) for e in errors_mp]
        dist = [_distances(g, star) for g in grams]
        dist_err = [float(np.sqrt((e**2).sum())) for e in errors]
        return Propagation(
            settings, method, tuple(grams), tuple(errors), *_columns(dist), tuple(dist_err), fp, grams_mp=tuple(grams_mp)
        )
    return _sampled(settings, gram, depth, star, fp, samples, chains, seed)


def joint_input(value, batch_size):
    """``(gram, B)`` when ``value`` describes several batches (list of ``B x d`` batches, nested ``k x k``
    list of blocks, or a ``kB x kB`` matrix with ``batch_size = B < kB``), else None."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value) \
            and all(np.ndim(block) == 2 for row in value for block in row):
        try:
            gram = np.block([[np.asarray(block, dtype=np.float64) for block in row] for row in value])
        except (TypeError, ValueError):
            raise BnsymInputError("input_gram: a nested list must be a k x k grid of B x B blocks of real numbers") from None
        b = np.shape(value[0][0])[0]
        if gram.shape != (len(value) * b, len(value) * b):
            raise BnsymInputError(f"input_gram: a nested list must be a k x k grid of B x B blocks, got shape {gram.shape}")
        return validation.gram_matrix(gram, name="input_gram"), validation.finite_batch_size(b, minimum=4, why="propagation")
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) and v.ndim == 2 for v in value):
        b = value[0].shape[0]
        x = validation.kernel_inputs(list(value), name="input_gram", batch_size=b)
        return input_gram(x), validation.finite_batch_size(b, minimum=4, why="propagation")
    if batch_size is not None and np.ndim(value) == 2 and np.shape(value)[0] == np.shape(value)[1]:
        b = validation.finite_batch_size(batch_size, minimum=4, why="propagation")
        if np.shape(value)[0] > b:
            gram = validation.gram_matrix(value, name="input_gram")
            if gram.shape[0] % b:
                raise BnsymInputError(f"input_gram is {gram.shape[0]} x {gram.shape[0]}, not a multiple of batch_size = {b}")
            return gram, b
    return None


def _joint(activation, gram, b, depth, *, gamma, beta, eps, sigma_w, dps, method):
    depth = validation.integer(depth, name="depth", minimum=1)
    settings = make_settings(activation, b, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps)
    if method not in ("auto", "laplace"):
        raise BnsymInputError(f"method must be 'auto' or 'laplace' for several batches, got {method!r}")
    if settings.dps > JOINT_MAX_DPS:
        with mpmath.workdps(settings.working_dps):  # high_precision_layers refuses what it cannot compute
            grams_mp, _, errors = high_precision_layers(settings, mpmath.matrix(gram.tolist()), depth)
        grams = tuple(np.array(g.tolist(), dtype=float) for g in grams_mp)
        return JointPropagation(settings, "two-parameter Laplace, mpmath", gram.shape[0] // b, grams,
                                tuple(float(e) for e in errors), grams_mp=grams_mp)
    grams, _, errors = joint_layers(settings, gram, depth, tolerance=10.0 ** -settings.dps)
    return JointPropagation(settings, "two-parameter Laplace, float64", gram.shape[0] // b, grams, errors)


#: Most digits the float64 joint map of several batches promises.
JOINT_MAX_DPS = 10


def input_gram_matrix(value, *, batch_size=None) -> np.ndarray:
    """Validate an input Gram matrix: square ``B x B`` (``B >= 4``), finite, symmetric, PSD, not constant."""
    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError("input_gram must be a square matrix of real numbers") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise BnsymInputError(f"input_gram must be a square B x B matrix, got shape {m.shape}")
    b = m.shape[0]
    if b < 4:
        raise BnsymInputError(f"input_gram must be at least 4 x 4 (batch size >= 4), got {b} x {b}")
    if batch_size is not None and validation.finite_batch_size(batch_size, minimum=4, why="propagation") != b:
        raise BnsymInputError(f"input_gram is {b} x {b} but batch_size is {batch_size}")
    if not np.all(np.isfinite(m)):
        raise BnsymInputError("input_gram must be finite (it contains nan or inf)")
    scale = float(np.abs(m).max())
    if np.abs(m - m.T).max() > 1e-12 * max(scale, 1e-300):
        raise BnsymInputError("input_gram must be symmetric")
    m = (m + m.T) / 2
    low = float(np.linalg.eigvalsh(m).min())
    if low < -1e-10 * max(scale, 1e-300):
        raise BnsymInputError(f"input_gram must be positive semidefinite (smallest eigenvalue {low:.3g})")
    if validation.constant_batch([m]) is not None:
        raise BnsymInputError("input_gram has G Sigma G = 0: every input is the same up to a constant (batch norm "
                              "divides by zero at eps = 0; at eps > 0 every later layer is the constant phi(beta)^2, "
                              "which propagate does not iterate)")
    return m


def example_input(kind: str, batch_size: int, *, seed: int = 0) -> np.ndarray:
    """A named input Gram matrix far from (or, for ``orthogonal``, on) the BSB1 family.

    ``random``: Gram of ``B`` Gaussian vectors in ``R^B`` divided by ``B``;
    ``orthogonal``: the identity (BSB1 already); ``collinear``: rank one,
    ``x_a = (1 + a/B) v`` plus 1% independent noise (so ``K`` has full rank).
    """
    if kind not in INPUTS:
        raise BnsymInputError(f"input must be one of {', '.join(INPUTS)} or a .npy file, got {kind!r}")
    b = validation.finite_batch_size(batch_size, minimum=4, why="propagation (a B x B Gram matrix is iterated)")
    rng = np.random.default_rng(validation.seed(seed))
    if kind == "orthogonal":
        return np.eye(b)
    if kind == "random":
        x = rng.standard_normal((b, b))
        return x @ x.T / b
    scales = 1 + np.arange(b) / b
    x = scales[:, None] * np.ones((b, b)) / np.sqrt(b) + 0.01 * rng.standard_normal((b, b)) / np.sqrt(b)
    return x @ x.T


# --------------------------------------------------------------------------- sampling fallback
def _sampled(settings, gram, depth, star, fp, samples, chains, seed):
    from bnsym.montecarlo import sampling

    samples = validation.integer(samples, name="samples", minimum=1)
    chains = validation.integer(chains, name="chains", minimum=2)
    kw = {"gamma": float(settings.gamma), "beta": float(settings.beta), "eps": float(settings.eps), "sigma_w": float(settings.sigma_w)}
    runs = []
    for chain in range(chains):
        current, path = gram, [gram]
        for layer in range(depth):
            name = "gram" if layer == 0 else f"layer {layer}'s output Gram matrix (sampled; layer {layer + 1}'s input)"
            current = sampling.gram_map(settings.activation, current, samples=samples, seed=[seed, chain, layer],
                                        name=name, **kw).mean
            current = (current + current.T) / 2
            path.append(current)
        runs.append(np.array(path))
    runs = np.array(runs)  # chains, depth+1, B, B
    mean = runs.mean(axis=0)
    stderr = runs.std(axis=0, ddof=1) / math.sqrt(chains)
    per_chain = np.array([[_distances(g, star) for g in run] for run in runs])  # chains, depth+1, 3
    dist = [_distances(g, star) for g in mean]
    dist_err = per_chain[:, :, 0].std(axis=0, ddof=1) / math.sqrt(chains)
    return Propagation(
        settings, "sampling", tuple(mean), tuple(stderr), *_columns(dist), tuple(float(x) for x in dist_err), fp,
        samples=samples, chains=chains,
    )


# --------------------------------------------------------------------------- helpers
def _distances(gram, star):
    diff = gram - star
    _, part_l, part_m = subspace_parts(diff)
    return float(np.linalg.norm(diff)), float(np.linalg.norm(part_l)), float(np.linalg.norm(part_m))


def _columns(dist):
    return tuple(d[0] for d in dist), tuple(d[1] for d in dist), tuple(d[2] for d in dist)


