r"""NNGP and neural tangent kernels of a batch-normalized network (docs/theory.md section 14).

A data set of ``M = k B`` inputs is split into ``k`` consecutive batches of ``B``; each layer is
``h^l = sigma_w W^l x^{l-1} / sqrt(N_{l-1})`` (``W`` i.i.d. N(0, 1)), batch norm within each batch,
then ``x^l = phi(gamma xhat + beta)``.  At infinite width:

* **NNGP**: ``Sigma^l``, the ``M x M`` Gram matrix of ``x^l`` (``Sigma^0 = X X^T / d``), follows the
  joint map of :mod:`bnsym.meanfield.joint`: each block ``(p, q)`` of ``Sigma^l`` is the cross map of
  the pair ``(p, q)`` of ``Sigma^{l-1}`` (``p = q``: the duplicated pair, i.e. the single-batch map).
  ``Sigma^l`` is the kernel of a readout ``f = v^T x^l / sqrt(N_l)``, ``v ~ N(0, I)``.
* **NTK** of that readout with respect to every weight ``W^1..W^l`` and ``v`` (``gamma`` and ``beta``
  are *not* trained: fixed constants), in the parametrisation above:

      Theta^0 = Sigma^0,    Theta^l = Sigma^l + dC_{Sigma^{l-1}}[Theta^{l-1}],

  blockwise, where ``dC_Sigma[Theta]_pq = E[J_p Theta_pq J_q^T]`` (``J`` the Jacobian of batch norm
  and ``phi`` within a batch), which by Price's theorem is the derivative of the cross map of the
  pair ``(p, q)`` along its cross block ``Theta_pq``.

Exact (to the quadrature error, estimated per layer) for positively homogeneous ``phi`` of integer
degree at ``beta = 0``, any ``eps >= 0`` and ``sigma_w > 0``; every other ``phi`` and ``beta`` by
sampling the same joint map (``method="sampling"``: Monte Carlo, with its standard error; bnsym
has no exact route for a cross block, whose pair has two batches' normalizers, at a non-homogeneous ``phi``:
docs/theory.md section 14.5).  Cost per layer of the Laplace path:
``k (k + 1)/2`` pairs, each ``O(n_w n_rho B^2 r)`` flops (``O(n_w n_rho B^3)`` for the NTK) with
``n_w = 16``, ``n_rho = 32`` nodes at the first rule level (raised where the error estimate asks); memory ``(depth + 1) M^2`` floats per kernel kind.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import mpmath
import numpy as np

from bnsym import validation
from bnsym.blas import one_thread
from bnsym.errors import BnsymInputError, PrecisionError
from bnsym.estimate import STANDARD_ERROR, Value
from bnsym.meanfield import joint
from bnsym.meanfield.results import Settings, make_settings
from bnsym.numerics.gaussian_kernels import homogeneous_coefficients
from bnsym.text import ShownAsText, error_text, table_text

KINDS = ("nngp", "ntk")

#: Refuse kernels whose storage would exceed this many GiB (``BNSYM_KERNEL_MEMORY_GIB`` overrides).
MEMORY_LIMIT_GIB = 4.0
MEMORY_VARIABLE = "BNSYM_KERNEL_MEMORY_GIB"

#: Factor on the two-level difference, and the relative rounding floor, in the error estimate.
SAFETY, ROUNDING = 3.0, 3e-12

#: Times the rule levels may be raised per layer to reach the tolerance.
MAX_RAISES = 3

#: Relative accuracy the float64 kernel path aims at per layer (raised rule levels until the estimate is below it).
FLOAT_TOLERANCE = 1e-6

#: The float64 path's method name.
FLOAT_METHOD = "two-parameter Laplace, float64"

#: The sampling path's method name, and its defaults: draws per layer and chain, chains.
SAMPLED_METHOD = "Monte Carlo of the joint map, float64"
SAMPLES, CHAINS = 10_000, 8

#: The high-precision path's method name, and the most digits it promises.
HIGH_PRECISION_METHOD = "two-parameter Laplace, mpmath"
HIGH_PRECISION_MAX_DPS = 60

#: The ``method`` argument of :func:`kernel`.
KERNEL_METHODS = ("auto", "laplace", "sampling")


@dataclass(frozen=True, eq=False)
class Kernel(ShownAsText, Value):
    """The kernel at the output of the last layer (``value``, ``M x M``) and every layer's.

    ``nngp[l]`` (``l = 0..depth``; ``nngp[0] = X X^T / d``) and, for ``kind="ntk"``, ``ntk[l]``;
    ``layer_errors[l]``: an estimate of the largest absolute quadrature error made at layer ``l``
    (two rule levels on a sample of pairs; the errors of earlier layers are carried forward by
    the map, which contracts them); ``error``: their sum (a bound to first order when the map is
    a contraction); ``method``, ``precision`` say how it was computed.  Sampled kernels
    (``meaning == "standard error"``): ``layer_errors[l]`` is the largest entrywise standard error
    at layer ``l`` (over independent chains, so it includes the noise of earlier layers) and
    ``error`` that of the last layer.
    """

    settings: Settings = None
    kind: str = "nngp"
    batch_size: int = 0
    nngp: tuple = ()
    ntk: tuple | None = None
    layer_errors: tuple = ()
    method: str = ""
    precision: str = ""

    @property
    def depth(self) -> int:
        return len(self.nngp) - 1

    @property
    def layers(self) -> tuple:
        """Per-layer kernels of the requested ``kind``."""
        return self.ntk if self.kind == "ntk" else self.nngp

    def cross_batch_correlation(self, layer: int) -> float:
        """Mean off-diagonal-block entry over mean diagonal entry of ``nngp[layer]`` (needs ``k >= 2``)."""
        gram = _as_array(self.nngp[layer])
        b = self.batch_size
        k = gram.shape[0] // b
        if k < 2:
            raise BnsymInputError("cross_batch_correlation needs at least two batches")
        blocks = gram.reshape(k, b, k, b)
        cross = sum(blocks[p, :, q, :].mean() for p in range(k) for q in range(k) if p != q) / (k * (k - 1))
        return float(cross / np.mean(np.diag(gram)))

    def as_array(self) -> np.ndarray:
        """The last layer's kernel as a float64 array (the high-precision path's mpmath matrix rounded)."""
        return _as_array(self.value)

    def __repr__(self) -> str:  # the matrices are attributes (thousands of entries)
        return (f"Kernel(kind={self.kind!r}, inputs={_size(self.value)}, batch_size={self.batch_size}, depth={self.depth}, "
                f"method={self.method!r}, precision={self.precision!r}, error={error_text(self.error)}, meaning={self.meaning!r})")

    def __str__(self) -> str:
        """The settings, the precision and per layer the mean diagonal entry and the error estimate (what
        ``bnsym kernel`` prints, before the file it wrote)."""
        head = (f"{self.settings.line(detail=f'{self.method}; {self.precision}', digits=False)}\n{self.kind.upper()} kernel of "
                f"{_size(self.value)} inputs in batches of {self.batch_size}, depth {self.depth}")
        rows = [(str(l), f"{float(mpmath.fsum(_diagonal(k))) / _size(k):.10g}", error_text(e))
                for l, (k, e) in enumerate(zip(self.layers, self.layer_errors))]
        table = table_text(rows, header=("layer", "mean diagonal entry", f"error ({self.meaning})"))
        return f"{head}\n{table}"

    def as_dict(self) -> dict:
        """A JSON-friendly summary (no matrices)."""
        last = self.as_array()
        return {
            "settings": self.settings.as_dict(), "kind": self.kind, "batch_size": self.batch_size,
            "inputs": int(last.shape[0]), "depth": self.depth, "method": self.method, "precision": self.precision,
            "error": float(self.error), "error_meaning": self.meaning, "layer_errors": [float(e) for e in self.layer_errors],
            "diagonal_mean": float(np.mean(np.diag(last))), "trace": float(np.trace(last)),
        }


def _size(matrix) -> int:
    """Rows of a kernel matrix (NumPy array or mpmath matrix)."""
    return matrix.shape[0] if isinstance(matrix, np.ndarray) else matrix.rows


def _diagonal(matrix) -> list:
    return list(np.diag(matrix)) if isinstance(matrix, np.ndarray) else [matrix[i, i] for i in range(matrix.rows)]


def _as_array(matrix) -> np.ndarray:
    """A kernel matrix as float64 (the high-precision path stores mpmath matrices)."""
    return matrix if isinstance(matrix, np.ndarray) else np.array(matrix.tolist(), dtype=float)


def distinct_batches(gram, b: int) -> list:
    """``index`` with row ``i`` of the data set a copy of row ``index[i]``, where a batch that is an
    earlier batch reordered copies it (else ``index[i] = i``).  Input ``c`` of batch ``q`` copies
    input ``a`` of batch ``p`` when ``G[a, a] = G[c, c] = G[a, c]`` exactly: then
    ``Var(h_a - h_c) = 0`` at every layer, so the two pre-activations are equal almost surely
    (docs/theory.md section 14.4).  When every input of batch ``q`` copies a distinct input of batch
    ``p``, batch norm's output on ``q`` is its output on ``p`` reordered, at every layer: every
    kernel entry of ``q`` is an entry of ``p``, exactly (the two-parameter rule would meet a singular
    pair and not converge).  Cost ``O(k^2 B log B)`` comparisons for ``k`` batches (``O(B^2)`` more
    for a pair with the same variances)."""
    m = gram.shape[0] if isinstance(gram, np.ndarray) else gram.rows
    k = m // b
    index = list(range(m))
    variances = [sorted(gram[i, i] for i in range(p * b, (p + 1) * b)) for p in range(k)]
    for q in range(1, k):
        for p in range(q):
            if index[p * b] != p * b or variances[p] != variances[q]:  # p is a copy (its original was tried),
                continue  # or the variances differ
            perm = []
            for c in range(q * b, (q + 1) * b):
                found = next((a for a in range(p * b, (p + 1) * b) if a not in perm
                              and gram[a, a] == gram[c, c] == gram[a, c]), None)
                if found is None:
                    break
                perm.append(found)
            if len(perm) == b:
                index[q * b:(q + 1) * b] = perm
                break
    return index


def on_distinct_batches(layers):
    """Wrap a ``layers(settings, gram, depth, *, ntk, ...) -> (nngp, ntk, layer_errors)`` map so that it
    runs on the distinct batches of :func:`distinct_batches` only and spreads their kernels over the
    copies (exact: a copy's entries are its original's).  Float64 (NumPy) and mpmath Gram matrices."""
    @functools.wraps(layers)
    def wrapped(settings, gram, depth, *, ntk=False, **options):
        index = distinct_batches(gram, settings.batch_size)
        if index == list(range(len(index))):
            return layers(settings, gram, depth, ntk=ntk, **options)
        rows = sorted(set(index))
        nngp, kernels, errors = layers(settings, _take(gram, rows), depth, ntk=ntk, **options)
        position = {row: n for n, row in enumerate(rows)}
        where = [position[i] for i in index]
        return (tuple(_take(m, where) for m in nngp), tuple(_take(m, where) for m in kernels) if ntk else None,
                errors)
    return wrapped


def input_gram(x: np.ndarray) -> np.ndarray:
    """``X X^T / d`` with the entries of equal rows equal bit for bit (computed once, on the distinct
    rows), so that :func:`distinct_batches` sees copies whatever the BLAS's summation order."""
    rows, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    with np.errstate(over="ignore"):
        gram = rows @ rows.T / x.shape[1]
    if not np.all(np.isfinite(gram)):
        raise BnsymInputError(f"inputs: their Gram matrix X X^T / d overflows float64 (largest |x| = "
                              f"{np.abs(x).max():.3g}); divide them by a common factor (at eps = 0 the kernel "
                              f"does not depend on their scale)")
    largest = np.abs(np.diag(gram)).max(initial=0.0)
    if largest < np.finfo(float).tiny and np.any(x):
        raise BnsymInputError(f"inputs: their Gram matrix X X^T / d underflows float64 (largest |x| = "
                              f"{np.abs(x).max():.3g}); multiply them by a common factor (at eps = 0 the kernel "
                              f"does not depend on their scale)")
    return gram[np.ix_(inverse, inverse)]


def _take(matrix, rows):
    """The submatrix ``matrix[rows, rows]`` of a NumPy or mpmath matrix."""
    if isinstance(matrix, np.ndarray):
        return matrix[np.ix_(rows, rows)]
    return mpmath.matrix([[matrix[i, j] for j in rows] for i in rows])


def kernel_memory(m: int, depth: int, kind: str) -> int:
    """Bytes the per-layer kernels take: ``(depth + 1) M^2`` float64 (twice for the NTK)."""
    return 8 * (depth + 1) * m * m * (2 if kind == "ntk" else 1)


def kernel_memory_limit() -> float:
    """The memory limit in GiB (:data:`MEMORY_LIMIT_GIB`, or the environment variable)."""
    text = os.environ.get(MEMORY_VARIABLE)
    return float(text) if text else MEMORY_LIMIT_GIB


def kernel(activation, inputs, depth, *, batch_size, kind="nngp", gamma=1, beta=0, eps=0, sigma_w=1, dps=None,
           method="auto", samples=SAMPLES, chains=CHAINS, seed=0, progress=False) -> Kernel:
    r"""The NNGP or NTK kernel of a batch-normalized network at every layer (module docstring).

    ``inputs``: an ``(M, d)`` array, ``M`` a multiple of ``batch_size`` (consecutive rows form a
    batch), or a list of ``(batch_size, d)`` arrays.  ``depth >= 1``; ``kind``: ``"nngp"`` or
    ``"ntk"``.  ``dps=None`` is the float64 path (error estimated per layer, below
    :data:`FLOAT_TOLERANCE` = 1e-6 of the largest entry); ``dps`` a number of digits is the mpmath
    path (NNGP or NTK, any ``B >= 4``, Laplace method only: :func:`high_precision_layers`; ``value``,
    ``nngp`` and ``ntk`` are then mpmath matrices, each entry promised to ``dps`` digits of the
    layer's largest entry).
    ``method``: ``"laplace"`` (the two-parameter Laplace formula, exact to the quadrature error:
    positively homogeneous ``phi`` of integer degree at ``beta = 0``), ``"sampling"`` (any ``phi``,
    ``beta``: :func:`bnsym.montecarlo.sampling.joint_map` with ``samples`` draws per layer in each
    of ``chains`` independent chains through all the layers, seeded by ``seed``; the kernel is the
    mean over chains (``chains >= 4``) and ``layer_errors[l]`` the largest entrywise standard error of that mean at
    layer ``l``, which carries the noise of the layers below; relative error about
    ``1/sqrt(samples chains)``; the sampled NTK needs ``B >= 6`` at ``eps = 0``), or ``"auto"``
    (``"laplace"`` where it applies).  A kernel whose storage would exceed
    :func:`kernel_memory_limit` GiB is refused before allocating.

    >>> x = np.random.default_rng(0).standard_normal((8, 5))
    >>> k = kernel("relu", x, 2, batch_size=4)
    >>> k.value.shape, k.method
    ((8, 8), 'two-parameter Laplace, float64')
    """
    b = validation.finite_batch_size(batch_size, minimum=4, why="a kernel (batch norm needs B >= 4 here)")
    x = validation.kernel_inputs(inputs, batch_size=b)
    depth = validation.integer(depth, name="depth", minimum=1)
    kind = validation.choice(kind, name="kind", options=KINDS)
    settings = make_settings(activation, b, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=15 if dps is None else dps)
    method = validation.choice(method, name="method", options=KERNEL_METHODS)
    if dps is not None:  # (its own rules refuse a batch of identical inputs)
        return _high_precision(settings, x, depth, kind, method)
    obstacle = joint_obstacle(settings)
    if method == "auto":
        method = "laplace" if obstacle is None else "sampling"
    elif method == "laplace" and obstacle is not None:
        raise BnsymInputError(f"method='laplace' does not apply: {obstacle}; use method='sampling' or 'auto'")
    if method == "laplace" and kind == "ntk" and b < 5:
        raise BnsymInputError("batch_size: the NTK needs B >= 5 (at B = 4 the within-batch backward term's "
                              "integrand, E|Gh|^-2 with |Gh|^2 ~ chi^2_3, defeats the float64 rules)")
    if method == "sampling":
        samples = validation.integer(samples, name="samples", minimum=2)
        chains = validation.integer(chains, name="chains", minimum=4)
        seed = validation.integer(seed, name="seed", minimum=0)
        if kind == "ntk" and b < 6 and settings.eps == 0:
            raise BnsymInputError("batch_size: the sampled NTK needs B >= 6 at eps = 0 (its backward term carries "
                                  "1/|Gh|^2, whose square has no finite mean for |Gh|^2 ~ chi^2_(B-1) with B <= 5)")
    m = x.shape[0]
    need = kernel_memory(m, depth, kind) * (chains + 1 if method == "sampling" else 1)
    if need > kernel_memory_limit() * 2**30:
        raise BnsymInputError(f"the {kind} kernel of M = {m} inputs at depth {depth} needs {need / 2**30:.1f} GiB "
                              f"(limit {kernel_memory_limit():g} GiB; set {MEMORY_VARIABLE} to raise it)")
    gram = input_gram(x)
    if method == "sampling":
        nngp, ntk, errors = sampled_layers(settings, gram, depth, ntk=kind == "ntk", samples=samples, chains=chains,
                                           seed=seed, progress=progress)
        last = ntk[-1] if kind == "ntk" else nngp[-1]
        return Kernel(last, float(errors[-1]), settings=settings, kind=kind, batch_size=b, nngp=nngp, ntk=ntk,
                      layer_errors=errors, method=f"{SAMPLED_METHOD} ({samples} samples per layer, {chains} chains)",
                      precision="double (float64), sampled", meaning=STANDARD_ERROR)
    nngp, ntk, errors = joint_layers(settings, gram, depth, ntk=kind == "ntk", tolerance=FLOAT_TOLERANCE, progress=progress)
    last = ntk[-1] if kind == "ntk" else nngp[-1]
    return Kernel(last, float(sum(errors)), settings=settings, kind=kind, batch_size=b, nngp=nngp, ntk=ntk,
                  layer_errors=errors, method=FLOAT_METHOD, precision="double (float64)")


def _high_precision(settings, x, depth, kind, method):
    obstacle = joint_obstacle(settings)
    if method == "sampling" or obstacle is not None:
        raise BnsymInputError(f"dps: the high-precision path is the Laplace method only"
                              f"{'' if obstacle is None else ' (' + obstacle + ')'}; use dps=None")
    with mpmath.workdps(settings.working_dps):
        xm = mpmath.matrix(x.tolist())
        gram = xm * xm.T / x.shape[1]
        grams, kernels, errors = high_precision_layers(settings, gram, depth, ntk=kind == "ntk")
    last = kernels[-1] if kind == "ntk" else grams[-1]
    return Kernel(last, mpmath.fsum(errors), settings=settings, kind=kind,
                  batch_size=settings.batch_size, nngp=grams, ntk=kernels, layer_errors=errors,
                  method=HIGH_PRECISION_METHOD, precision=f"{settings.dps} digits (mpmath)")


@on_distinct_batches
def high_precision_layers(settings: Settings, gram, depth: int, *, ntk: bool = False):
    """``(nngp, ntk, layer_errors)``: the joint map iterated ``depth`` times from the mpmath ``M x M``
    ``gram``, in mpmath: within-batch NNGP blocks by the single-batch Laplace map
    (:func:`bnsym.meanfield.laplace.laplace_map`; with ``ntk``, by
    :func:`~bnsym.meanfield.laplace.backward_term`, which converges it with the backward term), cross blocks by
    :func:`bnsym.meanfield.joint.cross_block`, each to ``settings.dps`` digits of the layer's largest
    entry.  With ``ntk``, also ``Theta^l = Sigma^l + dC[Theta^{l-1}]`` (module docstring): the
    derivative along ``Theta``'s cross block by :func:`~bnsym.meanfield.joint.cross_block` with a
    direction, on the duplicated pair ``[[A, A], [A, A]]`` for a within-batch block; ``ntk`` is
    None otherwise.  ``layer_errors[l]``: the largest entry error of layer ``l``'s blocks, NNGP
    and NTK (the errors of earlier layers are carried by the map; :func:`kernel` reports their
    sum).  Domain: positively homogeneous ``phi`` at ``beta = 0`` (:func:`joint_obstacle`), any
    ``eps >= 0``, ``dps`` up to :data:`HIGH_PRECISION_MAX_DPS`.  Runs at ``settings.working_dps``.
    Cost per layer ``k`` single-batch maps and ``k (k - 1)/2`` cross blocks (seconds each at
    ``B = 4``, 15 digits; much more at larger B); the NTK adds ``k`` duplicated pairs and
    differentiates every pair (``O(B^3)`` more per node, twice the kernel values)."""
    from bnsym.meanfield.laplace import backward_term, laplace_map

    obstacle = joint_obstacle(settings)
    if obstacle is not None:
        raise BnsymInputError(obstacle)
    if settings.dps > HIGH_PRECISION_MAX_DPS:
        raise BnsymInputError(f"dps: the high-precision joint map promises at most {HIGH_PRECISION_MAX_DPS} digits "
                              f"(its rules stop at 192 x 192 nodes), got {settings.dps}")

    b = settings.batch_size
    k = gram.rows // b
    coefficients = homogeneous_coefficients(settings.activation, settings.gamma)
    sw2 = settings.sigma_w**2
    grams, kernels, errors = [gram], ([gram] if ntk else None), [mpmath.mpf(0)]
    centre = mpmath.eye(b) - mpmath.ones(b, b) / b

    def blocks(matrix):
        return {(p, q): sw2 * centre * matrix[p * b:(p + 1) * b, q * b:(q + 1) * b] * centre
                for p in range(k) for q in range(k)}

    def pair(parts, p, q, cross_only=False):
        out = mpmath.matrix(2 * b, 2 * b)
        for u, v in ((0, p), (1, q)):
            for w, z in ((0, p), (1, q)):
                if not (cross_only and u == w):
                    out[u * b:(u + 1) * b, w * b:(w + 1) * b] = parts[v, z]
        return out

    def cross(s, p, q, scale, slope_scale=None):
        direction = pair(theta, p, q, cross_only=True) if ntk else None
        return joint.cross_block(coefficients, s, batch_size=b, eps=settings.eps, dps=settings.dps,
                                 working_dps=settings.working_dps, scale=scale, direction=direction,
                                 slope_scale=slope_scale)

    for _ in range(depth):
        current, out, worst = grams[-1], mpmath.matrix(k * b, k * b), mpmath.mpf(0)
        sigma = blocks(current)
        theta = blocks(kernels[-1]) if ntk else None
        new_theta = mpmath.matrix(k * b, k * b) if ntk else None
        for p in range(k):  # within-batch blocks: the single-batch map, and for the NTK the backward term with it
            within = current[p * b:(p + 1) * b, p * b:(p + 1) * b]
            if ntk:  # the duplicated pair's value and slope, converged together
                value, slope, error = backward_term(settings, within, kernels[-1][p * b:(p + 1) * b, p * b:(p + 1) * b])
                new_theta[p * b:(p + 1) * b, p * b:(p + 1) * b] = value + slope
            else:
                value, error = laplace_map(settings, within)
            out[p * b:(p + 1) * b, p * b:(p + 1) * b] = value
            worst = max(worst, max(error))
        scale = max(abs(out[i, i]) for i in range(k * b))  # the digits are those of the layer's largest entry
        theta_scale = max(abs(new_theta[i, i]) for i in range(k * b)) if ntk else None
        for p in range(k):
            for q in range(p + 1, k):
                value, slope, error = cross(pair(sigma, p, q), p, q, scale, theta_scale)
                for a in range(b):
                    for c in range(b):
                        out[p * b + a, q * b + c] = out[q * b + c, p * b + a] = value[a][c]
                        if ntk:
                            new_theta[p * b + a, q * b + c] = new_theta[q * b + c, p * b + a] = value[a][c] + slope[a][c]
                worst = max(worst, max(max(row) for row in error))
        grams.append(out)
        if ntk:
            kernels.append(new_theta)
        errors.append(worst)
    return tuple(grams), (tuple(kernels) if ntk else None), tuple(errors)


def sampled_layers(settings: Settings, gram, depth: int, *, ntk: bool, samples: int, chains: int, seed=0, progress=False):
    """``(nngp, ntk, layer_errors)`` by sampling the joint map (:func:`kernel`'s ``"sampling"`` method):
    ``chains`` independent chains of ``depth`` layers, each layer
    :func:`bnsym.montecarlo.sampling.joint_map` with ``samples`` draws (chain ``c``, layer ``l``
    seeded ``(seed, c, l)``); per layer the mean over chains and the largest entrywise standard
    error of that mean (of the NTK when ``ntk``).  The chains are independent, so that error
    includes the noise carried up from the layers below; the iteration of a noisy map also has
    an ``O(1/samples)`` bias, below the error at these sizes.  Cost ``chains depth`` maps."""
    from bnsym.montecarlo.sampling import joint_map

    b = settings.batch_size
    params = dict(gamma=float(settings.gamma), beta=float(settings.beta), eps=float(settings.eps), sigma_w=float(settings.sigma_w))
    runs_c = np.empty((chains, depth + 1) + gram.shape)
    runs_t = np.empty_like(runs_c) if ntk else None
    bar = _bar(progress, chains * depth, unit="layer")
    try:
        for chain in range(chains):
            runs_c[chain, 0] = gram
            if ntk:
                runs_t[chain, 0] = gram
            for layer in range(1, depth + 1):
                c, dc = joint_map(settings.activation, runs_c[chain, layer - 1], b, theta=runs_t[chain, layer - 1] if ntk else None,
                                  samples=samples, seed=[seed, chain, layer], **params)
                runs_c[chain, layer] = (c.mean + c.mean.T) / 2
                if ntk:
                    runs_t[chain, layer] = runs_c[chain, layer] + (dc.mean + dc.mean.T) / 2
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    watched = runs_t if ntk else runs_c
    errors = watched.std(axis=0, ddof=1).max(axis=(1, 2)) / np.sqrt(chains)
    nngp = tuple(runs_c.mean(axis=0))
    kernels = tuple(runs_t.mean(axis=0)) if ntk else None
    return nngp, kernels, tuple(float(e) for e in errors)


def joint_obstacle(settings: Settings):
    """Why the float64 joint map does not apply (None when it does)."""
    act = settings.activation
    if act.degree is None:
        return f"{act.label} is not positively homogeneous (the joint map of several batches needs phi(c x) = c^alpha phi(x))"
    if not float(act.degree).is_integer() or act.degree < 1:
        return f"{act.label} has degree {act.degree}; the float64 joint map needs an integer degree >= 1"
    if settings.beta != 0:
        return "beta != 0 breaks homogeneity (the joint map of several batches needs beta = 0)"
    return None


@on_distinct_batches
@one_thread
def joint_layers(settings: Settings, gram, depth: int, *, ntk: bool = False, tolerance: float = 1e-8, progress=False):
    """``(nngp, ntk, layer_errors)``: the joint map iterated ``depth`` times from the ``M x M`` ``gram``
    (``M`` a multiple of ``settings.batch_size``), float64.  ``ntk`` is None unless asked for.

    Per layer the rule levels start at :data:`bnsym.meanfield.joint.FLOAT_LEVELS` and are raised
    (at most :data:`MAX_RAISES` times) until the difference from the next levels, on a sample of
    pairs (:func:`error_sample`), times :data:`SAFETY`, plus :data:`ROUNDING` times
    the largest entry, is below ``tolerance`` times the largest entry; that is the layer's error
    estimate (measured: the difference from rules three levels up was at most 2.3 times the
    one-level difference for B >= 5, and the float64 rounding floor about 2e-12 relative).
    Raises :class:`~bnsym.errors.PrecisionError` if the tolerance is not reached.
    """
    obstacle = joint_obstacle(settings)
    if obstacle is not None:
        raise BnsymInputError(obstacle)
    b = settings.batch_size
    k = gram.shape[0] // b
    constant = validation.constant_batch(gram[p * b:(p + 1) * b, p * b:(p + 1) * b] for p in range(k))
    if constant is not None:  # (the rules below raised a NumPy reshape error on it)
        raise BnsymInputError(
            f"inputs: batch {constant} (rows {constant * b} to {constant * b + b - 1}) has identical or nearly "
            "identical inputs: its centred Gram block G Sigma G is at most 1e-12 of its Gram block, below what "
            "float64 resolves; " + ("batch norm divides by zero at eps = 0" if settings.eps == 0 else
                                    "the Laplace path needs a nonzero centred block in every batch (method='sampling' "
                                    "takes such a batch at eps > 0: its output is the constant phi(beta))"))
    coefficients = tuple(float(c) for c in homogeneous_coefficients(settings.activation, settings.gamma))
    eps, sigma_w = float(settings.eps), float(settings.sigma_w)
    pairs = [(p, q) for p in range(k) for q in range(p, k)]
    sample = error_sample(pairs)
    nngp, kernels, errors = [gram], [gram] if ntk else None, [0.0]
    bar = _bar(progress, depth * len(pairs))
    try:
        for _ in range(depth):
            s = joint.centred_pairs(nngp[-1], b, pairs, sigma_w)
            ds = None
            if ntk:
                ds = joint.centred_pairs(kernels[-1], b, pairs, sigma_w)
                ds[:, :b, :b] = 0
                ds[:, b:, b:] = 0
            levels = joint.FLOAT_LEVELS
            low = None
            for attempt in range(MAX_RAISES + 1):
                low = low or joint.cross_map(coefficients, s[sample], None if ds is None else ds[sample], batch_size=b,
                                             eps=eps, levels=levels)
                high = joint.cross_map(coefficients, s[sample], None if ds is None else ds[sample], batch_size=b, eps=eps,
                                       levels=tuple(v + 1 for v in levels))
                scale = max(np.abs(low[0]).max(), np.abs(low[1]).max() if ntk else 0.0)
                error = max(np.abs(high[i] - low[i]).max() for i in ((0, 1) if ntk else (0,)))
                error = SAFETY * error + ROUNDING * scale
                if error <= tolerance * scale:
                    break
                levels, low = tuple(v + 1 for v in levels), high  # the higher levels' values are the next lower ones
            else:
                raise PrecisionError(f"the joint map did not reach {tolerance:.1g} relative accuracy in float64 "
                                     f"(estimated {error / scale:.1g}); float64 cannot promise more")
            rest = np.setdiff1d(np.arange(len(pairs)), sample)  # the sample's values at these levels are `low`
            c = np.empty((len(pairs), b, b))
            dc = np.empty_like(c) if ntk else None
            c[sample] = low[0]
            if ntk:
                dc[sample] = low[1]
            if bar is not None:
                bar.update(len(sample))
            if len(rest):
                rest_c, rest_dc = _in_chunks(coefficients, s[rest], None if ds is None else ds[rest], b, eps, levels, bar)
                c[rest] = rest_c
                if ntk:
                    dc[rest] = rest_dc
            errors.append(float(error))
            nngp.append(_assemble(c, pairs, k, b))
            if ntk:
                kernels.append(_assemble(c + dc, pairs, k, b))
    finally:
        if bar is not None:
            bar.close()
    return tuple(nngp), (tuple(kernels) if ntk else None), tuple(errors)


#: Most pairs on which the float64 path estimates a layer's error.
ERROR_SAMPLE = 16


def error_sample(pairs) -> list:
    """Indices of the pairs whose two-level difference estimates the layer's error: the first and the
    last pair and cross pairs evenly spread, a quarter of the pairs in all (at least 6, at most
    :data:`ERROR_SAMPLE`; every cross pair when there are no more).  Cross pairs of different batches are the hard ones
    (measured: two random batches of 5, ReLU, first levels, 1.5e-7 against 2.5e-9 for a
    within-batch pair); an estimate from three pairs (the first, the second, the last, before
    2026-12-03) missed such a pair and reported 7.6e-9 for an error of 1.5e-7.  The sample's values
    at the final levels are kept, so it costs about twice its size in extra pair evaluations."""
    size = min(len(pairs), max(6, min(ERROR_SAMPLE, len(pairs) // 4)))
    ends = {0, len(pairs) - 1}
    cross = [i for i, (p, q) in enumerate(pairs) if p != q]
    if len(ends) + len(cross) <= size:
        return sorted(ends.union(cross))
    spread = [cross[round(j * (len(cross) - 1) / (size - 3))] for j in range(size - 2)]  # here size >= 6
    return sorted(ends.union(spread))


def _in_chunks(coefficients, s, ds, b, eps, levels, bar):
    step = 16
    c = np.empty((s.shape[0], b, b))
    dc = np.empty_like(c) if ds is not None else None
    for lo in range(0, s.shape[0], step):
        hi = min(lo + step, s.shape[0])
        part_c, part_d = joint.cross_map(coefficients, s[lo:hi], None if ds is None else ds[lo:hi], batch_size=b, eps=eps, levels=levels)
        c[lo:hi] = part_c
        if dc is not None:
            dc[lo:hi] = part_d
        if bar is not None:
            bar.update(hi - lo)
    return c, dc


def _assemble(blocks, pairs, k, b):
    out = np.empty((k * b, k * b))
    for (p, q), block in zip(pairs, blocks):
        out[p * b:(p + 1) * b, q * b:(q + 1) * b] = block
        out[q * b:(q + 1) * b, p * b:(p + 1) * b] = block.T
    for p in range(k):  # the duplicated pair's block is symmetric up to rounding
        d = out[p * b:(p + 1) * b, p * b:(p + 1) * b]
        out[p * b:(p + 1) * b, p * b:(p + 1) * b] = (d + d.T) / 2
    return out


def _bar(enabled, total, unit="pair"):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="kernel", unit=unit, leave=False)


