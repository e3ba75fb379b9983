r"""A real finite-width batch-normalized network at initialisation.

The network of docs/theory.md section 1, in float64, with the true batch-norm
forward and backward passes (no mean-field formula is used).  Activations
are stored neurons x batch, ``x^l`` of shape ``(N, B)``:

    h^l = W^l x^{l-1},   W^l_ij ~ N(0, sigma_w^2 / N_{l-1}),
    x^l = B_phi(h^l)     (batch norm over the batch, per neuron; then phi),

``x^0`` is the input batch (``N_0 = width`` unless explicit inputs are
given).  Biases are omitted: centring removes them.  The gradient
``g^L = dLoss/dx^L`` is drawn (or given) at the top and propagated down,
``g^{l-1} = W^{l T} J^T g^l`` per neuron.  Recorded per layer ``l = 0..L``:

* ``grams[s, l] = x^l x^{l T} / N_l`` (``Sigma^l``, B x B),
* ``gradient_grams[s, l] = g^l g^{l T} / N_l`` (``Pi^l``),
* ``gradient_norms[s, l] = tr Pi^l = |g^l|^2 / N_l``,

for each seed ``s``.  The per-layer growth rate of the gradient is fitted
per seed by least squares of ``log |g^l|^2`` on ``l`` over the layers
``fit_layers`` (burn-in layers near the input and the output are skipped),
``rate = exp(-slope)``; the result reports the mean over seeds, its standard
error (sample standard deviation over ``sqrt(seeds)``), and intervals.

**Several batches** (``input=("batches", [spec_1, ..., spec_k])``): the
``k`` batches of size ``B`` go through the same weights, batch norm acting
within each batch; the ``m = k B`` columns are stacked, ``x^l`` is
``N x m`` and every recorded Gram matrix is the full ``m x m`` one (within-
and cross-batch blocks).  With one batch ``m = B``.

Two methods draw the same network law.

``method="explicit"`` (the reference): the ``L`` weight matrices are drawn
(``N x N_{l-1}`` standard normals each, in row blocks by one thread per
core) and applied.  Cost per seed: ``2 L (2 N^2 m)`` flops in matrix
products and ``L N^2`` Gaussian draws (the dominant cost at small ``m``).
Memory: the weights are kept for the backward pass when they fit in
:data:`WEIGHT_MEMORY` bytes (else regenerated from their per-layer seeds:
two ``N x N`` workspaces), plus ``2 L N m`` floats of batch-norm cache.

``method="conditional"`` (the default) draws no weight matrix.  Batch norm
sees ``h^l`` only through its centring within each batch, ``h^l P = W^l
X`` with ``X = x^{l-1} P`` (``P``: block-diagonal centring, ``I - 11^T/B``
per batch).  Let ``X = Q S`` with ``Q`` (``N_{l-1} x r``) an orthonormal
basis of the column span of ``X`` and ``S = Q^T X`` (``r x m``, rank
``r``, ``S^T S = X^T X``).  Then ``W Q`` and ``W (I - Q Q^T)`` are
independent Gaussian matrices, the first with i.i.d. ``N(0, sigma_w^2 /
N_{l-1})`` entries, so exactly in law

* forward: ``h^l = (sigma_w / sqrt(N_{l-1})) A' (X^T X)^{1/2}``, ``A'`` an
  ``N_l x m`` standard normal matrix and the symmetric square root
  ``(X^T X)^{1/2} = V_r S``: the rows of ``h^l`` are i.i.d.
  ``N(0, sigma_w^2 X^T X / N_{l-1})``, and ``h^l = (W Q) S`` with
  ``W Q = (sigma_w / sqrt(N_{l-1})) A' V_r`` i.i.d. as it must be.  (The
  symmetric root is smooth in ``X``, so one seed couples nearby inputs
  like shared weights: antithetic and finite-difference runs keep working);
* backward, with ``dh = J^T g^l`` (``N_l x m``, centred within each batch):
  ``W^T dh = Q S^{+T} h^{lT} dh + (I - Q Q^T) U``, the first term being
  ``X^{+T} H^T dh`` of the Gaussian conditioning ``W = H X^+ + Z (I - P_X)``,
  and ``U = Z^T dh`` drawn afresh (``Z`` is independent of the forward
  pass): ``U = (sigma_w / sqrt(N_{l-1})) E (dh^T dh)^{1/2}``, ``E`` an
  ``N_{l-1} x m`` standard normal matrix, with the symmetric square root
  (eigh, negative eigenvalues clipped to 0: ``dh^T dh`` is singular since
  batch norm's gradient is orthogonal to ``1``).

The joint law of every Gram matrix and gradient is that of the explicit
network at the same width.  ``Q`` comes from the eigendecomposition
``X^T X = V diag(lambda) V^T``: ``Q = X V_r lambda_r^{-1/2}`` over the
``r`` eigenvalues above ``RANK_CUTOFF * lambda_max`` (re-orthonormalised
once when the kept part is ill-conditioned), never an ``N x N`` matrix.
**Singular ``X^T X``** (``m > N_{l-1}``, e.g. ``B > N``; a collapsed or
collinear batch): ``r < m`` and the formulas above are the pseudo-inverse
ones, still exact in law (the conditioning formula holds with the
pseudo-inverse and the projection on the actual column span); directions
of ``X`` with singular value below ``sqrt(RANK_CUTOFF) = 1e-6`` times the
largest are treated as zero.  When ``r = N_{l-1}`` the weights are fully
determined by the forward pass and ``(I - Q Q^T) U = 0``.  Cost per seed:
about ``16 L N m^2`` flops, ``2 L N m`` Gaussian draws and ``O(L N m)``
elementwise work.  Memory: ``L N m`` floats (each layer's ``xhat^l``,
from which ``h^l`` and ``phi'`` are recovered in the backward pass), plus
``L N m`` for the ``x^l`` when they fit in :data:`KEEP_MEMORY` (else
``phi`` is evaluated again), plus ``O(N m)`` workspace.

Both methods refuse, before allocating, a run whose estimated memory
exceeds :data:`MEMORY_LIMIT_GIB` GiB (environment variable
``BNSYM_MEMORY_LIMIT_GIB`` overrides it).  Random streams: seed ``s`` uses
``SeedSequence([seed, s])``, spawned into one child per layer and one for
the output gradient; the input batch ``j`` uses ``SeedSequence([seed, s,
1])`` (``j = 0``) or ``SeedSequence([seed, s, 1, j])``.

>>> sim = simulate("relu", 8, depth=6, width=64, seeds=2)
>>> sim.grams.shape, sim.gradient_norms.shape
((2, 7, 8, 8), (2, 7))
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bnsym import validation
from bnsym.activations import activation as as_activation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.montecarlo.sampling import SampledValue, batchnorm_vjp, normalise

#: Keep the weights of one seed in memory up to this many bytes (else regenerate them).
WEIGHT_MEMORY = 2 * 1024**3

#: Each weight matrix is drawn as this many row blocks, each from its own
#: child seed, so the blocks can be drawn in parallel threads and the draws do
#: not depend on how many threads there are.
WEIGHT_BLOCKS = 8

INPUT_KINDS = ("random", "orthogonal", "collinear")

METHODS = ("conditional", "explicit")

#: Refuse runs estimated to allocate more than this many GiB (``BNSYM_MEMORY_LIMIT_GIB`` overrides).
MEMORY_LIMIT_GIB = 8.0
MEMORY_LIMIT_VARIABLE = "BNSYM_MEMORY_LIMIT_GIB"

#: Conditional method: also keep each layer's ``x^l`` (else recomputed from ``xhat^l``) up to this many bytes.
KEEP_MEMORY = 2 * 1024**3

#: Conditional method: eigenvalues of ``X^T X`` below this fraction of the largest are treated as zero.
RANK_CUTOFF = 1e-12

#: Conditional method: re-orthonormalise ``Q`` once when the kept eigenvalues span more than this ratio.
REORTHONORMALISE = 1e6


class SimulationOverflow(BnsymError, OverflowError):
    """A simulated value left the float64 range; the message says at which layer and why."""


@dataclass(frozen=True, eq=False)
class Simulation:
    """Per-layer statistics of simulated networks (see the module docstring).

    ``rates``: fitted per-seed growth factors of ``|g|^2`` per layer (walking
    towards the input); ``rate``/``rate_stderr``: their mean and standard
    error; ``fit_layers = (lo, hi)``: the layers used in the fit, inclusive.
    Standard errors are across seeds, so with few seeds they are themselves
    uncertain (Student t with ``seeds - 1`` degrees of freedom: with 4 seeds
    a 3-sigma interval covers about 94%, not 99.7%).
    """

    settings: dict
    grams: np.ndarray
    gradient_grams: np.ndarray
    gradient_norms: np.ndarray
    rates: np.ndarray
    rate: float
    rate_stderr: float
    fit_layers: tuple
    flops: float = field(default=0.0, repr=False)

    def rate_interval(self, sigmas: float = 3.0) -> tuple:
        """``(rate - sigmas*stderr, rate + sigmas*stderr)``."""
        return (self.rate - sigmas * self.rate_stderr, self.rate + sigmas * self.rate_stderr)

    def fixed_point(self, first_layer: int | None = None):
        """``(q, c)`` as :class:`~bnsym.montecarlo.sampling.SampledValue` (samples = seeds): mean diagonal and off-diagonal entry of
        ``Sigma^l`` averaged over layers ``first_layer..L`` (default: those after the
        fit's lower burn-in), then over seeds."""
        lo = self.fit_layers[0] if first_layer is None else first_layer
        grams = _within_batches(self.grams[:, max(lo, 1):], self.settings["batch_size"])
        b = grams.shape[-1]
        diag = np.einsum("slaa->sl", grams) / b
        off = (grams.sum(axis=(-1, -2)) - diag * b) / (b * (b - 1))
        return _across_seeds(diag.mean(axis=1)), _across_seeds(off.mean(axis=1))

    def as_dict(self) -> dict:
        """JSON-friendly summary (no per-layer matrices; non-finite errors, e.g. with one seed, as None)."""
        q, c = self.fixed_point()
        return _finite_or_none({
            "settings": self.settings,
            "rate": self.rate,
            "rate_stderr": self.rate_stderr,
            "rates": self.rates.tolist(),
            "fit_layers": list(self.fit_layers),
            "q": q.value, "q_stderr": q.stderr, "c": c.value, "c_stderr": c.stderr,
            "gradient_norms_mean": self.gradient_norms.mean(axis=0).tolist(),
            "log_gradient_norms_mean": np.log(self.gradient_norms).mean(axis=0).tolist(),
            "log_gradient_norms_stderr": _stderr(np.log(self.gradient_norms)).tolist(),
        })


def _within_batches(grams, b):
    """The within-batch diagonal blocks of ``grams[..., k B, k B]``, stacked on the layer axis: ``(s, l k, b, b)``."""
    k = grams.shape[-1] // b
    if k == 1:
        return grams
    blocks = grams.reshape(grams.shape[:-2] + (k, b, k, b))
    diag = np.stack([blocks[..., j, :, j, :] for j in range(k)], axis=2)
    return diag.reshape(grams.shape[0], -1, b, b)


def _finite_or_none(value):
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def simulate(activation, batch_size, depth, width, *, gamma=1, beta=0, eps=0, sigma_w=1, seeds=4, seed=0, input="random",
             output_gradient=None, fit_layers=None, progress=False, method="conditional") -> Simulation:
    r"""Simulate ``seeds`` independent batch-normalized networks at initialisation.

    ``activation``: as for :func:`bnsym.fixed_point`.  ``batch_size >= 2``,
    ``depth >= 1``, ``width >= 1``: integers.  ``gamma`` (nonzero), ``beta``,
    ``eps >= 0``, ``sigma_w > 0``: finite reals.  ``seeds``: number of
    networks (seeded ``(seed, s)``, reproducible).  ``input``:

    * ``"random"``: i.i.d. ``N(0, 1)`` inputs of dimension ``width``;
    * ``"orthogonal"``: ``B`` orthogonal inputs of squared norm ``N_0`` (Gram ``I``; needs ``width >= B``);
    * ``"collinear"``: ``x_a = t_a v`` on one line, ``t_a = 1..B`` (Gram of rank one);
    * an array ``(B, N_0)``: the inputs themselves; a square symmetric PSD
      array is read as a Gram matrix (write ``("inputs", X)`` or
      ``("gram", S)`` to say which);
    * ``("gram", S)``: inputs of dimension ``max(width, B)`` with Gram ``S`` exactly;
    * several batches through the same network: ``("batches", [spec_1, ..., spec_k])``
      or a plain list ``[spec_1, ..., spec_k]`` of the specs above (each a
      string, a tuple or a 2-d array; a nested list of numbers is one array),
      all of batch size ``B`` and the same input dimension.  Batch norm acts
      within each batch; ``grams`` and ``gradient_grams`` are then
      ``(seeds, depth + 1, k B, k B)`` (columns ``j B .. (j+1) B - 1`` are
      batch ``j``: within-batch blocks on the diagonal, cross-batch blocks
      off it) and ``gradient_norms`` is the trace over all ``k B`` columns.

    ``output_gradient``: ``None`` (i.i.d. ``N(0, 1)`` entries centred within
    each batch, independent across batches, so that ``Pi^L ~ G``, the
    eigendirection of ``T`` whose eigenvalue is lambda_G: no transient near
    the output), an array ``(width, k B)``, or a callable
    ``(rng, width, k B) -> array``.  ``fit_layers``: ``(lo, hi)`` layers of
    the rate fit (default: skip ``max(1, L//10)`` layers at each end; layer 0
    is the raw input, whose gradient has no batch norm below it).
    ``method``: ``"conditional"`` (default; no weight matrix, ``O(L N k B)``
    memory) or ``"explicit"`` (the ``N x N`` weights); the two give the same
    law (module docstring), not the same random numbers.

    Raises :class:`BnsymInputError` for bad arguments or when the run would
    need more than :data:`MEMORY_LIMIT_GIB` GiB (checked before any large
    allocation), and :class:`SimulationOverflow` (naming the layer) if a
    value leaves the float64 range; never returns NaN.
    """
    act = as_activation(activation)
    b = validation.integer(batch_size, name="batch_size", minimum=2)
    depth = validation.integer(depth, name="depth", minimum=1)
    width = validation.integer(width, name="width", minimum=1)
    n_seeds = validation.integer(seeds, name="seeds", minimum=1)
    seed = validation.seed(seed)
    method = validation.choice(method, name="method", options=METHODS)
    p = validation.network_parameters(gamma, beta, eps, sigma_w)
    inputs_for, input_label, n0, k = _batches_builder(input, b, width)
    m = k * b
    top_gradient = _output_gradient(output_gradient, width, b, k)
    lo, hi = _fit_layers(fit_layers, depth)
    _check_memory(method, depth, width, n0, m)
    settings = dict(activation=act.label, batch_size=b, depth=depth, width=width, **p, seeds=n_seeds, seed=seed,
                    input=input_label, method=method)
    if k > 1:
        settings["batches"] = k

    grams = np.empty((n_seeds, depth + 1, m, m))
    gradient_grams = np.empty_like(grams)
    bar = _progress(progress, n_seeds * depth, act.label)
    flops = 0.0
    workspace = {}
    network = _Network if method == "explicit" else _ConditionalNetwork
    try:
        for s in range(n_seeds):
            net = network(act, p, depth, width, b, np.random.SeedSequence([seed, s]), workspace)
            x0 = inputs_for(seed, s)
            grams[s], gradient_grams[s] = net.run(x0, top_gradient, bar)
            flops += net.flops
    finally:
        if bar is not None:
            bar.close()
    norms = np.einsum("slaa->sl", gradient_grams)
    if not np.all(norms > 0):
        layer = int(np.argwhere(~(norms > 0))[0, 1])
        if b == 2:
            why = "batch norm with B = 2 has a zero Jacobian"
        elif p["eps"] > 0:
            why = f"eps = {p['eps']:g} dwarfs the batch variance, so batch norm passes almost no gradient"
        else:
            why = "the output gradient or the network's Jacobian is exactly zero there"
        raise BnsymError(f"the gradient vanished exactly at layer {layer}: the growth rate cannot be fitted ({why})")
    rates = _fitted_rates(norms, lo, hi)
    rate = _across_seeds(rates)
    return Simulation(settings, grams, gradient_grams, norms, rates, rate.value, rate.stderr, (lo, hi), flops)


# ----------------------------------------------------------------------------- memory
def memory_limit_gib() -> float:
    """The memory budget in GiB: ``BNSYM_MEMORY_LIMIT_GIB`` if set (a positive real), else :data:`MEMORY_LIMIT_GIB`."""
    value = os.environ.get(MEMORY_LIMIT_VARIABLE)
    if value is None or not value.strip():
        return float(MEMORY_LIMIT_GIB)
    return validation.real_float(value.strip(), name=MEMORY_LIMIT_VARIABLE, positive=True)


def memory_needed(method, depth, width, n0, m) -> int:
    """Estimated peak bytes of one :func:`simulate` run (float64; ``m = k B`` columns, ``n0`` input units).

    explicit: the kept weights (``N sum_l N_{l-1}`` floats if within
    :data:`WEIGHT_MEMORY`, else two regeneration workspaces) plus the
    batch-norm cache ``2 L N m`` and ``8 N m`` workspace; conditional: the
    per-layer ``xhat^l`` (``L N m``; and ``x^l``, another ``L N m``, when that fits in
    :data:`KEEP_MEMORY`) plus ``16 max(N, N_0) m`` workspace.  Both
    add the recorded Gram matrices ``4 (L + 1) m^2`` per seed (one seed's worth).
    """
    wide = max(width, n0)
    if method == "explicit":
        fan_in = n0 + width * (depth - 1)
        weights = width * fan_in if 8 * width * fan_in <= WEIGHT_MEMORY else width * (n0 + (width if depth > 1 else 0))
        floats = weights + 2 * depth * width * m + 8 * wide * m + n0 * m
    else:
        kept = depth * width * (m + 1) + (depth * width * m if 8.0 * depth * width * m <= KEEP_MEMORY else 0)
        floats = kept + 16 * wide * m + n0 * m
    return 8 * (floats + 4 * (depth + 1) * m * m)


def _check_memory(method, depth, width, n0, m):
    need, limit = memory_needed(method, depth, width, n0, m), memory_limit_gib()
    if need > limit * 1024**3:
        hint = " (method='conditional' needs O(L N B), no N x N weights)" if method == "explicit" else ""
        raise BnsymInputError(f"simulate(method={method!r}) would need about {need / 1024**3:.3g} GiB of memory, more than "
                              f"the limit of {limit:g} GiB (set {MEMORY_LIMIT_VARIABLE} to change it){hint}")


# ----------------------------------------------------------------------------- the network
class _Network:
    """One network: per-layer weights from per-layer seeds, forward then backward."""

    def __init__(self, act, p, depth, width, b, seed_sequence, workspace=None):
        self.act, self.p, self.depth, self.width, self.b = act, p, depth, width, b
        # weight storage reused across the seeds of one simulate() call (fresh
        # memory costs page faults comparable to drawing the normals)
        self.workspace = {} if workspace is None else workspace
        *self.layer_seeds, self.gradient_seed = seed_sequence.spawn(depth + 1)
        self.flops = 0.0

    def weights(self, layer, fan_in, out=None):
        """Standard normal ``W^layer`` (N x fan_in); the scale is applied to the product.

        Drawn as :data:`WEIGHT_BLOCKS` row blocks from child seeds of the
        layer's seed, in parallel threads (NumPy's generators release the GIL).
        """
        if out is None or out.shape != (self.width, fan_in):
            out = np.empty((self.width, fan_in))
        blocks = np.array_split(out, min(WEIGHT_BLOCKS, self.width))
        seed = self.layer_seeds[layer - 1]

        def draw(i):  # child i of the layer's seed, built directly: spawn() is stateful
            child = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (i,))
            np.random.Generator(np.random.SFC64(child)).standard_normal(out=blocks[i])

        list(_draw_pool().map(draw, range(len(blocks))))
        return out

    def run(self, x0, top_gradient, bar):
        """Forward then backward pass from ``x0`` (``N_0 x m``, ``m = k B``); returns ``(grams, pis)``, each ``(L+1, m, m)``."""
        act, p, b = self.act, self.p, self.b
        depth, width = self.depth, self.width
        m = x0.shape[1]
        grams = np.empty((depth + 1, m, m))
        pis = np.empty((depth + 1, m, m))
        fan_ins = [x0.shape[0]] + [width] * depth
        keep = 8.0 * width * sum(fan_ins[:-1]) <= WEIGHT_MEMORY
        cache = []
        x = x0
        grams[0] = x.T @ x / x.shape[0]

        def slot(layer):
            return self.workspace.get(layer if keep else min(layer, 2))

        if keep:  # draw every layer first: interleaving draws with BLAS calls slows both
            for layer in range(1, depth + 1):
                self.workspace[layer] = self.weights(layer, fan_ins[layer - 1], slot(layer))
        for layer in range(1, depth + 1):
            if keep:
                w = slot(layer)
            else:
                w = self.workspace[min(layer, 2)] = self.weights(layer, fan_ins[layer - 1], slot(layer))
            h = w @ x
            h *= p["sigma_w"] / math.sqrt(fan_ins[layer - 1])
            try:
                xhat, inv_sigma = normalise(_per_batch(h, b), p["eps"])
            except BnsymError as exc:
                raise SimulationOverflow(f"forward pass, layer {layer}: {exc}") from None
            y = p["gamma"] * xhat + p["beta"]
            with np.errstate(all="ignore"):  # unused branches of piecewise phi may overflow harmlessly
                x = act.np(y).reshape(width, m)
                d = p["gamma"] * act.np(y, derivative=True)
            _check_finite(x, f"forward pass, layer {layer}: phi(gamma xhat + beta) is not finite "
                             f"(its argument reaches {np.abs(y).max():.3g})")
            _check_finite(d, f"forward pass, layer {layer}: phi'(gamma xhat + beta) is not finite "
                             f"(its argument reaches {np.abs(y).max():.3g})")
            cache.append((xhat, inv_sigma, d))
            with np.errstate(all="ignore"):
                grams[layer] = x.T @ x / width
            _check_finite(grams[layer], f"forward pass, layer {layer}: the Gram matrix of phi(gamma xhat + beta) "
                                        f"overflowed float64")
            self.flops += 2.0 * width * fan_ins[layer - 1] * m
            if bar is not None:
                bar.update(0.5)
        self.output = x
        g = top_gradient(np.random.Generator(np.random.SFC64(self.gradient_seed)))
        pis[depth] = g.T @ g / width
        for layer in range(depth, 0, -1):
            xhat, inv_sigma, d = cache.pop()
            with np.errstate(all="ignore"):
                dh = batchnorm_vjp(_per_batch(g, b), xhat, inv_sigma, d).reshape(width, m)
                w = slot(layer) if keep else self.weights(layer, fan_ins[layer - 1], slot(layer))
                g = w.T @ dh
                g *= p["sigma_w"] / math.sqrt(fan_ins[layer - 1])
                pis[layer - 1] = g.T @ g / fan_ins[layer - 1]
            _check_finite(pis[layer - 1], f"backward pass, layer {layer}: the gradient overflowed float64 (its squared "
                                          f"norm per unit was {np.trace(pis[layer]):.3g} one layer above); use a smaller depth")
            self.flops += 2.0 * width * fan_ins[layer - 1] * m
            if bar is not None:
                bar.update(0.5)
        self.input_gradient = g
        return grams, pis

def _per_batch(a, b):
    """``a`` (``n x k b``) as ``n x k x b`` (a view) so that batch norm acts within each batch; unchanged if ``k = 1``."""
    return a if a.shape[-1] == b else a.reshape(a.shape[0], -1, b)


def _centred(a, b):
    """``a P``: ``a`` (``n x k b``) minus its mean within each batch of ``b`` columns.  ``O(a.size)``."""
    a3 = _per_batch(a, b)
    return (a3 - a3.mean(axis=-1, keepdims=True)).reshape(a.shape)


def _times(x, t):
    """``x @ t`` for ``x`` (``n x m``) and a small ``t`` (``m x p``), computed as ``(t^T x^T)^T``
    (OpenBLAS is several times faster in this orientation); result column-major.  ``2 n m p`` flops."""
    return (t.T @ np.asarray(x).T).T


def _symmetric_sqrt(k):
    """``K^{1/2}`` of a symmetric PSD ``K`` (eigh; negative rounding eigenvalues clipped to 0). ``O(m^3)``."""
    values, vectors = np.linalg.eigh(k)
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


class _ConditionalNetwork:
    """One network of the conditional method (module docstring): no weight matrix.

    Same interface as :class:`_Network` (``run``, ``output``,
    ``input_gradient``, ``flops``).  Per layer it keeps ``xhat^l``,
    ``1/sigma^l`` (from which ``h^l = xhat^l sigma^l``: the drawn ``h^l`` is
    already centred within each batch), the small ``(P C, S^{+T})`` with
    ``Q = x^{l-1} P C``, and ``x^l`` itself while all of them fit in
    :data:`KEEP_MEMORY` bytes (else ``x^l = phi(gamma xhat^l + beta)`` is
    evaluated again in the backward pass: same bits).  Layer ``l``'s seed
    has the child streams ``(0, i)`` for ``A`` and ``(1, i)`` for ``E``.
    """

    def __init__(self, act, p, depth, width, b, seed_sequence, workspace=None):
        self.act, self.p, self.depth, self.width, self.b = act, p, depth, width, b
        *self.layer_seeds, self.gradient_seed = seed_sequence.spawn(depth + 1)
        self.flops = 0.0

    def _argument(self, xhat):
        """``gamma xhat + beta`` (no pass over the data for the default ``gamma = 1, beta = 0``)."""
        p = self.p
        y = xhat if p["gamma"] == 1 else p["gamma"] * xhat
        return y + p["beta"] if p["beta"] else y

    def _phi(self, xhat, layer):
        """``x^l = phi(gamma xhat + beta)`` as ``n x m``."""
        y = self._argument(xhat)
        with np.errstate(all="ignore"):  # unused branches of piecewise phi may overflow harmlessly
            x = self.act.np(y)
        _check_finite(x, f"forward pass, layer {layer}: phi(gamma xhat + beta) is not finite "
                         f"(its argument reaches {np.abs(y).max():.3g})")
        return x.reshape(x.shape[0], -1)

    def _derivative(self, xhat, layer):
        y = self._argument(xhat)
        with np.errstate(all="ignore"):
            d = self.act.np(y, derivative=True)
            if self.p["gamma"] != 1:
                d = self.p["gamma"] * d
        _check_finite(d, f"forward pass, layer {layer}: phi'(gamma xhat + beta) is not finite "
                         f"(its argument reaches {np.abs(y).max():.3g})")
        return d

    def _frame(self, x):
        """``(PC, Spt, root)`` for ``X = x P`` (``x`` centred within each batch): ``Q = X C = x (P C)``
        has orthonormal columns spanning ``X`` (eigenvalues of ``X^T X`` below ``RANK_CUTOFF``
        times the largest dropped), ``Spt = S^{+T}`` for ``S = Q^T X`` (``r x m``), and
        ``root = V_r S = (X^T X)^{1/2}``, the symmetric square root (``m x m``, centred within
        each batch; smooth in ``X``, so that one seed couples nearby inputs as shared weights
        would).  Cost ``2 n m^2`` flops (+ ``4 n m r`` when re-orthonormalised) and ``O(m^3)``."""
        b = self.b
        xc = _centred(x, b)
        gc = xc.T @ xc
        gc = (gc + gc.T) / 2
        self.flops += 2.0 * x.shape[0] * x.shape[1] ** 2
        _check_finite(gc, "forward pass: the centred Gram matrix of a layer's input overflowed float64")
        values, vectors = np.linalg.eigh(gc)
        top = values[-1]
        keep = values > RANK_CUTOFF * top if top > 0 else np.zeros(values.shape, bool)
        basis = vectors[:, keep]
        c = basis / np.sqrt(values[keep])                       # C1 = V_r lambda_r^{-1/2}
        spt = c.T                                               # S^{+T} = lambda_r^{-1/2} V_r^T for C = C1
        if keep.any() and values[keep][0] * REORTHONORMALISE < top:
            # ill-conditioned: Q1 = X C1 is orthonormal only to eps lambda_max / lambda_min; with
            # R = (Q1^T Q1)^{1/2}, C = C1 R^{-1} and S^{+T} = R C1^T
            q1 = _times(xc, c)
            root = _symmetric_sqrt(q1.T @ q1)
            c, spt = c @ np.linalg.inv(root), root @ c.T
            self.flops += 4.0 * q1.shape[0] * q1.shape[1] * x.shape[1]
        # h = A' root with A' (n x m) i.i.d.: h = (A' V_r R) S, and A' V_r R is i.i.d. (R = I up to
        # rounding: R = (Q1^T Q1)^{1/2} when re-orthonormalised)
        root = _centred(basis @ (c.T @ gc), b)  # V_r S; centred already up to rounding (P gc = gc P = gc)
        return _centred(c.T, b).T, spt, root

    def run(self, x0, top_gradient, bar):
        """Forward then backward pass from ``x0`` (``N_0 x m``); returns ``(grams, pis)``, each ``(L+1, m, m)``."""
        p, depth, width, b = self.p, self.depth, self.width, self.b
        m = x0.shape[1]
        grams = np.empty((depth + 1, m, m))
        pis = np.empty((depth + 1, m, m))
        x = x0 = np.asfortranarray(x0, dtype=float)
        grams[0] = x.T @ x / x.shape[0]
        keep_x = 8.0 * depth * width * m <= KEEP_MEMORY
        kept = []  # per layer: [xhat, inv_sigma, x or None, PC, S^{+T}]
        for layer in range(1, depth + 1):
            n_in = x.shape[0]
            pc, spt, root = self._frame(x)
            a = _normals(self.layer_seeds[layer - 1], 0, width, m)
            h = _times(a, root * (p["sigma_w"] / math.sqrt(n_in)))
            del a
            self.flops += 2.0 * width * m * m
            try:
                xhat, inv_sigma = normalise(_per_batch(h, b), p["eps"])
            except BnsymError as exc:
                raise SimulationOverflow(f"forward pass, layer {layer}: {exc}") from None
            del h
            x = self._phi(xhat, layer)
            kept.append([xhat, inv_sigma, x if keep_x else None, pc, spt])
            with np.errstate(all="ignore"):
                grams[layer] = x.T @ x / width
            _check_finite(grams[layer], f"forward pass, layer {layer}: the Gram matrix of phi(gamma xhat + beta) "
                                        f"overflowed float64")
            self.flops += 2.0 * width * m * m
            if bar is not None:
                bar.update(0.5)
        self.output = x
        del x
        g = np.asfortranarray(top_gradient(np.random.Generator(np.random.SFC64(self.gradient_seed))))
        pis[depth] = g.T @ g / width
        for layer in range(depth, 0, -1):
            xhat, inv_sigma, _, pc, spt = kept[layer - 1]
            kept[layer - 1] = None
            d = self._derivative(xhat, layer)
            with np.errstate(all="ignore"):
                dh = batchnorm_vjp(_per_batch(g, b), xhat, inv_sigma, d).reshape(width, m)
                del g, d
                h = (xhat / inv_sigma[..., None]).reshape(width, m)  # the centred h^l drawn forward
            del xhat
            if layer == 1:
                x_in = x0
            else:
                below = kept[layer - 2]
                x_in = below[2] if below[2] is not None else self._phi(below[0], layer - 1)
            n_in = x_in.shape[0]
            scale = p["sigma_w"] / math.sqrt(n_in)
            with np.errstate(all="ignore"):
                kk = dh.T @ dh
                _check_finite(kk, f"backward pass, layer {layer}: the gradient overflowed float64 (its squared "
                                  f"norm per unit was {np.trace(pis[layer]):.3g} one layer above); use a smaller depth")
                mixed = h.T @ dh                                    # H^T dh
                del h, dh
                e = _normals(self.layer_seeds[layer - 1], 1, n_in, m)
                u = _times(e, _symmetric_sqrt(kk) * scale)         # Z^T dh, drawn afresh
                del e
                inner = spt @ mixed - pc.T @ (x_in.T @ u)          # X^{+T} H^T dh - Q^T U, in Q's coordinates
                g = u + _times(x_in, pc @ inner)                   # U + Q (...) = X^{+T} H^T dh + (I - QQ^T) U
                del u
                pis[layer - 1] = g.T @ g / n_in
            _check_finite(pis[layer - 1], f"backward pass, layer {layer}: the gradient overflowed float64 (its squared "
                                          f"norm per unit was {np.trace(pis[layer]):.3g} one layer above); use a smaller depth")
            self.flops += 2.0 * m * (3 * width * m + n_in * (3 * m + 2 * pc.shape[1]))
            if bar is not None:
                bar.update(0.5)
        self.input_gradient = g
        return grams, pis


#: Conditional method: arrays of at least this many normals are drawn in chunks by the thread pool.
PARALLEL_NORMALS = 2**16


def _normals(seed, key, rows, cols):
    """``rows x cols`` standard normals, column-major.  The flat buffer is cut into
    ``min(WEIGHT_BLOCKS, max(1, size // PARALLEL_NORMALS))`` chunks, chunk ``i`` drawn from
    ``SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (key, i))`` (in parallel
    threads when there are several): the numbers depend on the shape, not on the threads."""
    out = np.empty((cols, rows))
    flat = out.reshape(-1)
    chunks = np.array_split(flat, min(WEIGHT_BLOCKS, max(1, flat.size // PARALLEL_NORMALS)))

    def draw(i):
        child = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (key, i))
        np.random.Generator(np.random.SFC64(child)).standard_normal(out=chunks[i])

    if len(chunks) == 1:
        draw(0)
    else:
        list(_draw_pool().map(draw, range(len(chunks))))
    return out.T


_POOLS: dict = {}


def _draw_pool() -> ThreadPoolExecutor:
    """Threads that draw weight blocks (one per core), one pool per process: a pool
    inherited through ``fork`` has lost its threads and would never run its work."""
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS.clear()
        _POOLS[pid] = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bnsym-weights")
    return _POOLS[pid]


def _check_finite(values, message):
    if not np.all(np.isfinite(values)):
        raise SimulationOverflow(message)


# ----------------------------------------------------------------------------- statistics
def _fitted_rates(norms, lo, hi):
    """Per-seed ``exp(-slope)`` of the least-squares line through ``log norms[:, lo..hi]``."""
    layers = np.arange(lo, hi + 1, dtype=float)
    logs = np.log(norms[:, lo:hi + 1])
    centred = layers - layers.mean()
    slopes = (logs - logs.mean(axis=1, keepdims=True)) @ centred / (centred @ centred)
    return np.exp(-slopes)


def _stderr(values):
    n = values.shape[0]
    return values.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(values.shape[1:], math.inf)


def _across_seeds(values) -> SampledValue:
    values = np.asarray(values, dtype=float)
    return SampledValue(float(values.mean()), float(_stderr(values)), values.shape[0])


def _fit_layers(fit_layers, depth):
    if fit_layers is None:
        lo, hi = max(1, depth // 10), depth - max(1, depth // 10)
        if hi - lo < 1:  # shallow network: use everything
            lo, hi = 0, depth
        return lo, hi
    try:
        lo, hi = (int(v) for v in fit_layers)
    except (TypeError, ValueError):
        raise BnsymInputError(f"fit_layers must be a pair (lo, hi) of layer indices, got {fit_layers!r}") from None
    if not 0 <= lo < hi <= depth:
        raise BnsymInputError(f"fit_layers must satisfy 0 <= lo < hi <= depth = {depth}, got {fit_layers!r}")
    return lo, hi


# ----------------------------------------------------------------------------- arguments
def _batches_builder(spec, b, width):
    """``(function (seed, s) -> x0 of shape (N_0, k B), label, N_0, k)`` for one batch spec or several.

    Batch ``j`` of seed ``s`` draws from ``SeedSequence([seed, s, 1])`` (``j = 0``, as with one
    batch) or ``SeedSequence([seed, s, 1, j])``."""
    specs = None
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "batches":
        specs = spec[1]
        if not isinstance(specs, (list, tuple)) or len(specs) < 1:
            raise BnsymInputError("input=('batches', [spec_1, ..., spec_k]) needs a non-empty list of input specs")
    elif isinstance(spec, list) and spec and all(isinstance(v, (str, tuple)) or (isinstance(v, np.ndarray) and v.ndim == 2)
                                                 for v in spec):
        specs = spec
    if specs is None:
        build, label, n0 = _input_builder(spec, b, width)
        return (lambda seed, s: build(_input_rng(seed, s, 0))), label, n0, 1
    parts = [_input_builder(v, b, width) for v in specs]
    n0s = {n0 for _, _, n0 in parts}
    if len(n0s) > 1:
        raise BnsymInputError(f"all batches must have the same input dimension N_0, got {sorted(n0s)}")

    def build_all(seed, s):
        return np.concatenate([build(_input_rng(seed, s, j)) for j, (build, _, _) in enumerate(parts)], axis=1)

    return build_all, f"batches[{', '.join(label for _, label, _ in parts)}]", n0s.pop(), len(parts)


def _input_rng(seed, s, j):
    key = [seed, s, 1] if j == 0 else [seed, s, 1, j]
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(key)))


def _input_builder(spec, b, width):
    """``(function rng -> x0 of shape (N_0, B), label, N_0)``."""
    kind, value = None, None
    if isinstance(spec, str):
        if spec not in INPUT_KINDS:
            raise BnsymInputError(f"input must be one of {', '.join(INPUT_KINDS)}, an array or ('gram', S); got {spec!r}")
        kind = spec
    elif isinstance(spec, tuple) and len(spec) == 2 and spec[0] in ("gram", "inputs"):
        kind, value = spec
    else:
        arr = _as_array(spec, "input")
        kind = "gram" if _looks_like_gram(arr, b) else "inputs"
        value = arr
    if kind == "random":
        return (lambda rng: rng.standard_normal((width, b))), kind, width
    if kind == "orthogonal":
        if width < b:
            raise BnsymInputError(f"input='orthogonal' needs width >= batch_size ({width} < {b})")
        return (lambda rng: np.linalg.qr(rng.standard_normal((width, b)))[0] * math.sqrt(width)), kind, width
    if kind == "collinear":
        t = np.arange(1.0, b + 1.0)
        return (lambda rng: rng.standard_normal((width, 1)) * t), kind, width
    if kind == "inputs":
        arr = _as_array(value, "input")
        if arr.ndim != 2 or arr.shape[0] != b or arr.shape[1] < 1:
            raise BnsymInputError(f"input must have shape (batch_size, N_0) = ({b}, N_0), got {arr.shape}")
        x0 = np.ascontiguousarray(arr.T)
        return (lambda rng: x0), f"array {arr.shape[0]}x{arr.shape[1]}", arr.shape[1]
    gram = validation.gram_matrix(value, name="input gram")
    if gram.shape != (b, b):
        raise BnsymInputError(f"an input Gram matrix must be {b} x {b}, got {gram.shape}")
    values, vectors = np.linalg.eigh(gram)
    # the symmetric square root: unique, and smooth in the Gram matrix (an eigenvector basis is
    # arbitrary where eigenvalues repeat), so nearby Gram matrices give nearby inputs for one seed
    root = (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T
    n0 = max(width, b)
    # x0 = E root sqrt(n0), E the first b columns of the n0 x n0 identity: x0^T x0 / n0 = gram exactly.
    # Any other orthonormal frame O E gives the same law of every Gram matrix and gradient Gram
    # matrix (W O has the law of W for both methods), so no random frame is drawn (a QR of
    # n0 x b normals per seed used to cost more than a layer of the conditional method).
    x0 = np.zeros((n0, b))
    x0[:b] = root.T * math.sqrt(n0)

    return (lambda rng: x0), "gram", n0


def _looks_like_gram(arr, b):
    if arr.ndim != 2 or arr.shape != (b, b):
        return False
    return bool(np.allclose(arr, arr.T) and np.linalg.eigvalsh((arr + arr.T) / 2).min() >= -1e-10 * np.abs(arr).max())


def _as_array(value, name):
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError(f"{name} must be an array of real numbers") from None
    if not np.all(np.isfinite(arr)):
        raise BnsymInputError(f"{name} must be finite (it contains nan or inf)")
    return arr


def _output_gradient(spec, width, b, k=1):
    """Function ``rng -> g^L`` of shape ``(width, k B)`` (default: i.i.d. normals centred within each batch)."""
    m = k * b
    if spec is None:
        def centred(rng):
            g = rng.standard_normal((width, m))
            if k == 1:
                return g - g.mean(axis=1, keepdims=True)
            return _centred(g, b)
        return centred
    if callable(spec):
        def draw(rng):
            return _checked_gradient(spec(rng, width, m), width, m, k)
        return draw
    g = _checked_gradient(spec, width, m, k)
    return lambda rng: g


def _checked_gradient(value, width, m, k=1):
    arr = _as_array(value, "output_gradient")
    if arr.shape != (width, m):
        what = "batch_size" if k == 1 else f"{k} batch_size"
        raise BnsymInputError(f"output_gradient must have shape (width, {what}) = ({width}, {m}), got {arr.shape}")
    return arr


def _progress(enabled, total, label):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"simulate {label}", unit="layer", leave=False)


# ----------------------------------------------------------------------------- width extrapolation
def width_extrapolation(narrow: Simulation, wide: Simulation) -> dict:
    r"""Richardson extrapolation to infinite width of two simulations at widths ``N1 < N2``.

    Finite width biases every simulated quantity by ``b / N + O(1/N^2)``
    (the Gram matrix of ``N`` units fluctuates by ``O(N^{-1/2})`` and the maps
    are curved), so ``(N2 v2 - N1 v1) / (N2 - N1)`` removes the leading term.
    The two simulations are independent, hence the standard error
    ``sqrt(N2^2 s2^2 + N1^2 s1^2) / (N2 - N1)``.  Returns
    :class:`~bnsym.montecarlo.sampling.SampledValue` (samples = seeds) for ``"rate"``, ``"q"`` and ``"c"``; the other
    settings of the two simulations must agree.
    """
    n1, n2 = narrow.settings["width"], wide.settings["width"]
    same = {k: v for k, v in narrow.settings.items() if k not in ("width", "seed")}
    if {k: v for k, v in wide.settings.items() if k not in ("width", "seed")} != same or not n1 < n2:
        raise BnsymInputError("width_extrapolation needs two simulations with the same settings and widths N1 < N2")
    pairs = {
        "rate": (_across_seeds(narrow.rates), _across_seeds(wide.rates)),
        "q": (narrow.fixed_point()[0], wide.fixed_point()[0]),
        "c": (narrow.fixed_point()[1], wide.fixed_point()[1]),
    }
    return {
        name: SampledValue(
            (n2 * b.value - n1 * a.value) / (n2 - n1),
            math.hypot(n2 * b.stderr, n1 * a.stderr) / (n2 - n1),
            min(a.samples, b.samples),
        )
        for name, (a, b) in pairs.items()
    }
