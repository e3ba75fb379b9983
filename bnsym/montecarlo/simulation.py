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

* forward: ``h^l = (sigma_w / sqrt(N_{l-1})) A S``, ``A`` an ``N_l x r``
  standard normal matrix (it plays ``W Q``): the rows of ``h^l`` are i.i.d.
  ``N(0, sigma_w^2 X^T X / N_{l-1})`` and centred within each batch;
* backward, with ``dh = J^T g^l`` (``N_l x m``, centred within each batch):
  ``W^T dh = Q S^{+T} h^{lT} dh + (I - Q Q^T) U``, the first term being
  ``X^{+T} H^T dh`` of the Gaussian conditioning ``W = H X^+ + Z (I - P_X)``,
  and ``U = Z^T dh`` drawn afresh (``Z`` is independent of the forward
  pass): ``U = (sigma_w / sqrt(N_{l-1})) E T`` with ``T^T T = dh^T dh`` and
  ``E`` an ``N_{l-1} x (m - k)`` standard normal matrix.

The joint law of every Gram matrix and gradient is that of the explicit
network at the same width.  The frame works in the centred coordinates:
``H`` (``m x (m - k)``, orthonormal columns spanning the vectors that sum
to zero within each batch; :func:`centred_basis`) and ``G' = H^T x^T x H``
(from the layer input's Gram matrix, already recorded).  When ``G'`` is
well conditioned, ``G' = L L^T`` (Cholesky), ``S = L^T H^T``, ``Q = x H
L^{-T}``, ``S^{+T} = L^{-1} H^T``, and ``T = M^T H^T`` with ``M M^T = H^T
dh^T dh H``: ``m - k`` normals per unit and layer in each direction, never
an ``N x N`` matrix.  (Any square root of ``X^T X`` gives the law; this one
is smooth in ``X``, so one seed couples nearby inputs like shared weights:
antithetic and finite-difference runs keep working.)  **Singular or
ill-conditioned ``X^T X``** (``m - k > N_{l-1}``, e.g. ``B > N``; a
collapsed or collinear batch; a condition number above
:data:`REORTHONORMALISE`, or a centred part lost in rounding): ``G'`` is
formed from the explicitly centred input and diagonalised, ``Q = x H V_r
lambda_r^{-1/2}`` over the ``r`` eigenvalues above ``RANK_CUTOFF *
lambda_max`` (re-orthonormalised once when the kept part is
ill-conditioned); the formulas are then the pseudo-inverse ones, still
exact in law (the conditioning formula holds with the pseudo-inverse and
the projection on the actual column span); directions of ``X`` with
singular value below ``sqrt(RANK_CUTOFF) = 1e-6`` times the largest are
treated as zero.  When ``r = N_{l-1}`` the weights are fully determined by
the forward pass and ``(I - Q Q^T) U = 0``.  A singular ``dh^T dh`` (a
unit's batch-norm gradient can vanish) gets ``T`` from eigh instead of
Cholesky.

Networks are run together in groups (:func:`group_size`), their arrays
stacked and stored batch-major (``m x N`` per network, so that batch norm
reduces over contiguous rows and every product is a small matrix times an
``m x N`` block), and a thread draws each layer's normals ahead while the
layer before is computed (NumPy's generators release the GIL).  Neither
changes the numbers: each network draws from its own streams, in the same
order, and is computed by the same operations.  Cost per seed: about
``16 L N m^2`` flops, ``2 L N (m - k)`` Gaussian draws and ``O(L N m)``
elementwise work.  Memory: ``L N m`` floats (each layer's ``xhat^l``, from
which ``h^l`` and ``phi'`` are recovered in the backward pass), plus ``L N
m`` for the ``x^l`` when they fit in :data:`KEEP_MEMORY` (else ``phi`` is
evaluated again), plus ``O(N m)`` workspace, per network of a group.

Both methods refuse, before allocating, a run whose estimated memory
exceeds :data:`MEMORY_LIMIT_GIB` GiB (environment variable
``BNSYM_MEMORY_LIMIT_GIB`` overrides it).  Random streams: seed ``s`` uses
``SeedSequence([seed, s])``, spawned into one child per layer and one for
the output gradient; the input batch ``j`` uses ``SeedSequence([seed, s,
1])`` (``j = 0``) or ``SeedSequence([seed, s, 1, j])``; the conditional
method's layer ``l`` fills its ``A`` and ``E`` from the child streams
``(0, i)`` and ``(1, i)`` of layer ``l``'s seed (:func:`_normals`).

>>> sim = simulate("relu", 8, depth=6, width=64, seeds=2)
>>> sim.grams.shape, sim.gradient_norms.shape
((2, 7, 8, 8), (2, 7))
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from bnsym import validation
from bnsym.activations import activation as as_activation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.montecarlo.sampling import SampledValue, batchnorm_vjp, normalise
from bnsym.text import ShownAsText, table_text

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

#: Conditional method: the Cholesky frame needs the centred Gram matrix's smallest eigenvalue above
#: this fraction of the largest input Gram entry (else the eigh frame, from the explicitly centred input).
ROUNDING_FLOOR = 1e-8


class SimulationOverflow(BnsymError, OverflowError):
    """A simulated value left the float64 range; the message says at which layer and why."""


@dataclass(frozen=True, eq=False)
class Simulation(ShownAsText):
    """Per-layer statistics of simulated networks (see the module docstring).

    ``rates``: fitted per-seed growth factors of ``|g|^2`` per layer (walking
    towards the input); ``rate``/``rate_stderr``: their mean and standard
    error; ``fit_layers = (lo, hi)``: the layers used in the fit, inclusive.
    Standard errors are across seeds, so with few seeds they are themselves
    uncertain (Student t with ``seeds - 1`` degrees of freedom: with 4 seeds
    a 3-sigma interval covers about 94%, not 99.7%).
    """

    settings: dict
    grams: np.ndarray = field(repr=False)  # seeds x layers x B x B: see the text (str) or the attribute
    gradient_grams: np.ndarray = field(repr=False)
    gradient_norms: np.ndarray = field(repr=False)
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

    def text(self, reference: dict | None = None) -> str:
        """The settings and a table of the fitted rate and the fixed point ``q``, ``c`` with standard errors and
        3-sigma intervals (what ``bnsym simulate`` prints).  ``reference``: optional texts for a last column,
        ``"mean field"``, keyed ``"rate"``, ``"q"``, ``"c"`` (the caller's theory; the witness computes none)."""
        s = self.settings
        head = (f"{s['activation']}, B = {s['batch_size']}, depth {s['depth']}, width {s['width']}, {s['seeds']} seeds, "
                f"gamma = {s['gamma']:g}, beta = {s['beta']:g}, eps = {s['eps']:g}, sigma_w = {s['sigma_w']:g}, "
                f"{s['method']} sampler")
        q, c = self.fixed_point()
        lo, hi = self.rate_interval(3)
        rows = [("rate (fit)", f"{self.rate:.6g}", f"{self.rate_stderr:.2g}", f"[{lo:.5g}, {hi:.5g}]")]
        for name, v in (("q", q), ("c", c)):
            v_lo, v_hi = v.interval()
            rows.append((name, f"{v.value:.6g}", f"{v.stderr:.2g}", f"[{v_lo:.5g}, {v_hi:.5g}]"))
        header = ("quantity", "simulated", "stderr", "3-sigma interval")
        if reference is not None:
            rows = [row + (reference.get(key, ""),) for row, key in zip(rows, ("rate", "q", "c"))]
            header += ("mean field",)
        tail = (f"fit over layers {self.fit_layers[0]}..{self.fit_layers[1]}; finite width biases these by O(1/N) "
                f"(see README, 'How wide is wide')")
        return f"{head}\n{table_text(rows, header)}\n{tail}"

    def __str__(self) -> str:
        return self.text()

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
    _check_memory(method, depth, width, n0, m, n_seeds)
    settings = dict(activation=act.label, batch_size=b, depth=depth, width=width, **p, seeds=n_seeds, seed=seed,
                    input=input_label, method=method)
    if k > 1:
        settings["batches"] = k

    grams = np.empty((n_seeds, depth + 1, m, m))
    gradient_grams = np.empty_like(grams)
    bar = _progress(progress, n_seeds * depth, act.label)
    flops = 0.0
    try:
        if method == "explicit":
            workspace = {}
            for s in range(n_seeds):
                net = _Network(act, p, depth, width, b, np.random.SeedSequence([seed, s]), workspace)
                grams[s], gradient_grams[s] = net.run(inputs_for(seed, s), top_gradient, bar)
                flops += net.flops
        else:
            size, workspace = group_size(depth, width, n0, m), {}

            def run_group(first):
                group = range(first, min(first + size, n_seeds))
                if len(group) < size:  # the last, smaller group: the full group's buffers go first
                    workspace.clear()
                nets = _ConditionalNetworks(act, p, depth, width, b, [np.random.SeedSequence([seed, s]) for s in group], k)
                x0s = np.stack([inputs_for(seed, s) for s in group])
                tops = np.stack([top_gradient(np.random.Generator(np.random.SFC64(seeds[-1]))) for seeds in nets.seeds])
                grams[group.start:group.stop], gradient_grams[group.start:group.stop] = nets.run(
                    x0s, tops, bar, workspace)
                return nets.flops

            flops = sum(run_group(first) for first in range(0, n_seeds, size))
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


def memory_needed(method, depth, width, n0, m, seeds=1) -> int:
    """Estimated peak bytes of one :func:`simulate` run of ``seeds`` networks (float64; ``m = k B``
    columns, ``n0`` input units).

    explicit: the kept weights (``N sum_l N_{l-1}`` floats if within
    :data:`WEIGHT_MEMORY`, else two regeneration workspaces) plus the
    batch-norm cache ``2 L N m`` and ``8 N m`` workspace; conditional: one group of
    :func:`group_size` networks (fewer if there are fewer seeds), each keeping its per-layer
    ``xhat^l`` (``L N m``; and ``x^l``, another ``L N m``, when that fits in :data:`KEEP_MEMORY`)
    plus ``16 max(N, N_0) m`` workspace (the normals drawn ahead among it).  Both add the
    recorded Gram matrices, ``2 (L + 1) m^2`` per seed, and ``4 (L + 1) m^2`` of work.
    """
    wide = max(width, n0)
    if method == "explicit":
        fan_in = n0 + width * (depth - 1)
        weights = width * fan_in if 8 * width * fan_in <= WEIGHT_MEMORY else width * (n0 + (width if depth > 1 else 0))
        floats = weights + 2 * depth * width * m + 8 * wide * m + n0 * m
    else:
        group = min(group_size(depth, width, n0, m), seeds)
        kept = depth * width * (m + 1) + (depth * width * m if 8.0 * group * depth * width * m <= KEEP_MEMORY else 0)
        floats = group * (kept + 16 * wide * m + n0 * m)
    return 8 * (floats + (2 * seeds + 4) * (depth + 1) * m * m)


#: Conditional method: networks are run together while a layer's ``m x N`` stack has at most this many floats.
GROUP_FLOATS = 2**18


def group_size(depth, width, n0, m) -> int:
    """How many networks the conditional method runs together as one stack: as many as keep a
    layer's ``m x max(N, N_0)`` stack within :data:`GROUP_FLOATS` floats (cache-sized, so that
    the elementwise passes stay fast) and their kept layers within :data:`KEEP_MEMORY` bytes;
    at least one.  It changes the speed, not the numbers: each network draws from its own
    streams and is computed by the same operations whatever its group.  (Groups in parallel
    threads were tried: on this project's 2-core machines they gave no speed, since the one
    thread that draws the normals ahead already keeps the second core busy.)"""
    per_network = 8.0 * depth * width * (2 * m + 1)
    return max(1, min(GROUP_FLOATS // (m * max(width, n0)), int(KEEP_MEMORY // per_network)))


def _check_memory(method, depth, width, n0, m, seeds):
    need, limit = memory_needed(method, depth, width, n0, m, seeds), memory_limit_gib()
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
            _check_finite(x, f"forward pass, layer {layer}: phi(gamma xhat + beta) is not finite", y)
            _check_finite(d, f"forward pass, layer {layer}: phi'(gamma xhat + beta) is not finite", y)
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
            _check_finite(pis[layer - 1], partial(_gradient_overflow, layer, pis[layer]))
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


def _symmetric_sqrt(k):
    """``K^{1/2}`` of a symmetric PSD ``K`` (eigh; negative rounding eigenvalues clipped to 0). ``O(m^3)``."""
    values, vectors = np.linalg.eigh(k)
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def centred_basis(b, k=1) -> np.ndarray:
    """``H``: ``m x (m - k)`` (``m = k b``) with orthonormal columns spanning the vectors whose
    entries sum to zero within each batch of ``b`` consecutive entries (block-diagonal Helmert
    basis), so ``H^T H = I`` and ``H H^T = P``, the block-diagonal centring ``I - 11^T/b``."""
    helmert = np.zeros((b, b - 1))
    for j in range(1, b):
        helmert[:j, j - 1] = 1.0
        helmert[j, j - 1] = -float(j)
        helmert[:, j - 1] /= math.sqrt(j * (j + 1))
    out = np.zeros((k * b, k * (b - 1)))
    for i in range(k):
        out[i * b:(i + 1) * b, i * (b - 1):(i + 1) * (b - 1)] = helmert
    return out


def _stacked_cholesky(a, scale):
    """Lower Cholesky factors of the stack ``a`` (``S x r x r``, centred Gram matrices formed
    from Gram matrices whose largest entries are ``scale``) and their inverses, or
    ``(None, None)`` if one is not positive definite, is worse conditioned than
    :data:`REORTHONORMALISE` (bound ``kappa = |a|_F |L^{-1}|_F^2``, at most ``r`` times the
    true condition number), or has its smallest eigenvalue (at least ``|a|_F / kappa``) below
    :data:`ROUNDING_FLOOR` times ``scale``, where centring the Gram matrix has lost too many
    digits to rounding.  ``O(r^3)`` per matrix."""
    try:
        chol = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None, None
    inverse = np.linalg.inv(chol)
    size = np.linalg.norm(a, axis=(-2, -1))
    bound = size * np.einsum("sij,sij->s", inverse, inverse)
    if not np.all(np.isfinite(bound)) or np.any(bound > REORTHONORMALISE) or np.any(size < bound * ROUNDING_FLOOR * scale):
        return None, None
    return chol, inverse


class _ConditionalNetworks:
    """A group of independent networks of the conditional method (module docstring), run
    together as stacked arrays: no weight matrix.

    Layout: the networks' activations are stored transposed and stacked, ``xt[s] = (x^l)^T``
    of shape ``m x N`` (batch entries by neurons, neurons contiguous), so that batch norm
    reduces over contiguous rows and every product is a small ``m x m`` matrix times an
    ``m x N`` block (what BLAS does fastest).  With ``H`` (:func:`centred_basis`, ``r = m - k``
    columns) and ``G = x^T x`` the layer input's (uncentred) Gram matrix, the centred Gram
    matrix is ``X^T X = H G' H^T``, ``G' = H^T G H`` (``r x r``).  Frame: ``G' = F F^T``
    (Cholesky, ``F = L``; or, when ``G'`` is singular or ill-conditioned, eigh with the
    rank cut-off and the re-orthonormalisation of the module docstring, dropped directions
    kept as zero columns so that every network of the group has the same shapes), then

    * ``C = H F^{-T}``, ``Q = X C = x C`` orthonormal (``C`` is centred: ``P C = C``),
    * ``S = Q^T X = F^T H^T`` (``r x m``, ``S^T S = X^T X``) and ``S^{+T} = F^{-1} H^T``,
    * forward ``h = (sigma_w / sqrt(N_{l-1})) A S``, ``A`` an ``N x r`` standard normal
      matrix (``r`` normals per unit, not ``m``: ``h`` lies in the centred subspace),
    * backward ``dh^T dh = H K' H^T`` with ``K' = M M^T`` (Cholesky; eigh when singular):
      ``U = (sigma_w / sqrt(N_{l-1})) E M^T H^T`` with ``E`` ``N_{l-1} x r`` standard normal,
      and ``g^{l-1} = U + Q (S^{+T} h^T dh - Q^T U)``.

    The normals are drawn ahead, in order, by a thread (NumPy's generators release the
    GIL) while the previous layer is computed: network ``s``, layer ``l``, stream ``key``
    (0 forward, 1 backward) fills its ``r x N`` block from ``SeedSequence(seed_l.entropy,
    spawn_key=seed_l.spawn_key + (key, i))`` for its chunks ``i``, so the numbers do not
    depend on the threads or on how the networks are grouped.  Kept per layer: ``xhat``,
    ``1/sigma``, the small ``C``, ``S^{+T}``, and ``x^l`` while it fits in
    :data:`KEEP_MEMORY` (else evaluated again in the backward pass: same bits).
    """

    def __init__(self, act, p, depth, width, b, seed_sequences, k=1):
        self.act, self.p, self.depth, self.width, self.b, self.k = act, p, depth, width, b, k
        self.seeds = [sequence.spawn(depth + 1) for sequence in seed_sequences]
        self.basis = centred_basis(b, k)
        self.flops = 0.0

    # ------------------------------------------------------------------ elementwise parts
    def _argument(self, xhat):
        """``gamma xhat + beta`` (no pass over the data for the default ``gamma = 1, beta = 0``)."""
        p = self.p
        y = xhat if p["gamma"] == 1 else p["gamma"] * xhat
        return y + p["beta"] if p["beta"] else y

    def _phi(self, xhat):
        """``x^l`` transposed, ``S x m x N``, from ``xhat`` (``S x k x b x N``).  Not checked here:
        a value that is not finite makes the layer's Gram matrix not finite (:meth:`_finite`)."""
        with np.errstate(all="ignore"):  # unused branches of piecewise phi may overflow harmlessly
            x = self.act.np(self._argument(xhat))
        return x.reshape(x.shape[0], -1, x.shape[-1])

    def _derivative(self, xhat):
        """``gamma phi'(gamma xhat + beta)`` (``S x k x b x N``; checked through ``dh^T dh``)."""
        with np.errstate(all="ignore"):
            d = self.act.np(self._argument(xhat), derivative=True)
            if self.p["gamma"] != 1:
                d *= self.p["gamma"]
        return d

    def _finite(self, gram, values, xhat, layer, what, message):
        """Raise :class:`SimulationOverflow` if the small ``gram`` (formed from ``values``) is not
        finite: naming ``phi`` or ``phi'`` (``what``) when ``values`` themselves are not finite
        (full passes, made only then), else with ``message``."""
        if not np.all(np.isfinite(gram)):
            _check_finite(values, f"forward pass, layer {layer}: {what}(gamma xhat + beta) is not finite",
                          self._argument(xhat))
            raise SimulationOverflow(message)

    # ------------------------------------------------------------------ frames
    def _frame(self, gram, xt):
        """``(C, S, S^{+T})`` (stacks ``m x r``, ``r x m``, ``r x m``) for layer inputs ``xt``
        (``S x m x n``) with Gram matrices ``gram = x^T x`` (class docstring).  Cost
        ``O(m^3)`` per network on the Cholesky route; the eigh route adds ``4 n m r`` flops
        for the re-orthonormalisation of an ill-conditioned input."""
        h = self.basis
        reduced = h.T @ gram @ h
        reduced = (reduced + np.swapaxes(reduced, -1, -2)) / 2
        _check_finite(reduced, "forward pass: the centred Gram matrix of a layer's input overflowed float64")
        scale = np.abs(gram).max(axis=(-2, -1))
        chol, inverse = _stacked_cholesky(reduced, scale)
        if chol is not None:
            return self._cholesky_frame(chol, inverse)
        frames = []  # one network at a time, so that each one's route does not depend on its group
        for s in range(len(xt)):
            chol, inverse = _stacked_cholesky(reduced[s:s + 1], scale[s])
            frames.append(self._eigen_frame(xt[s]) if chol is None
                          else [part[0] for part in self._cholesky_frame(chol, inverse)])
        return tuple(np.stack(parts) for parts in zip(*frames))

    def _cholesky_frame(self, chol, inverse):
        """``C = H L^{-T}``, ``S = L^T H^T``, ``S^{+T} = L^{-1} H^T = C^T`` (stacks)."""
        c = self.basis @ np.swapaxes(inverse, -1, -2)
        return c, np.swapaxes(self.basis @ chol, -1, -2), np.swapaxes(c, -1, -2)

    def _eigen_frame(self, xt):
        """``(C, S, S^{+T})`` of one network (``xt``: ``m x n``) by eigh of ``G' = H^T X^T X H``,
        formed from the explicitly centred ``X = x P`` (so that a collapsed batch gives exact
        zeros): directions with eigenvalue below :data:`RANK_CUTOFF` times the largest are
        dropped (zero columns of ``C``, zero rows of ``S``); when the kept ones span more than
        :data:`REORTHONORMALISE`, ``Q1 = x C1`` is re-orthonormalised, ``C = C1 R^{-1}`` with
        ``R = (Q1^T Q1)^{1/2}``, ``S = Q^T X``, ``S^{+T} = R C1^T``.  Collapsed, collinear
        or rank-deficient inputs (``m - k > N_{l-1}``) take this route.  ``O(n m^2)``."""
        h = self.basis
        r = h.shape[1]
        xc = xt.reshape(self.k, self.b, -1)
        xc = (xc - xc.mean(axis=1, keepdims=True)).reshape(xt.shape)
        reduced = h.T @ (xc @ xc.T) @ h
        values, vectors = np.linalg.eigh((reduced + reduced.T) / 2)
        top = values[-1]
        keep = values > RANK_CUTOFF * top if top > 0 else np.zeros(r, bool)
        n = int(keep.sum())
        y = np.zeros((r, r))  # C = H Y, dropped directions as zero columns
        spt = np.zeros((r, h.shape[0]))
        if n:
            y1 = vectors[:, keep] / np.sqrt(values[keep])
            if values[keep][0] * REORTHONORMALISE < top:
                q1 = (h @ y1).T @ xt
                root = _symmetric_sqrt(q1 @ q1.T)
                y[:, :n] = y1 @ np.linalg.inv(root)
                spt[:n] = root @ (h @ y1).T
                self.flops += 4.0 * xt.shape[1] * n * h.shape[0]
            else:
                y[:, :n] = y1
                spt[:n] = (h @ y1).T
        return h @ y, y.T @ reduced @ h.T, spt  # S = Q^T X = C^T x^T x P = Y^T G' H^T

    def _noise_factor(self, kk):
        """``T`` (stack ``r x m``) with ``T^T T = dh^T dh = kk`` (``kk`` centred within each
        batch): ``M^T H^T`` with ``M`` the Cholesky factor of ``K' = H^T kk H``, or
        ``diag(mu^{1/2}) U^T H^T`` from the eigendecomposition of ``K'`` when it is singular."""
        h = self.basis
        reduced = h.T @ kk @ h
        reduced = (reduced + np.swapaxes(reduced, -1, -2)) / 2
        try:
            factor = np.linalg.cholesky(reduced)
        except np.linalg.LinAlgError:  # one network at a time, so that its route does not depend on its group
            factor = np.stack([_root_factor(one) for one in reduced])
        return np.swapaxes(factor, -1, -2) @ h.T

    # ------------------------------------------------------------------ the passes
    def run(self, x0s, top_gradients, bar, workspace=None):
        """Forward then backward pass of every network: ``x0s`` (``S x N_0 x m``),
        ``top_gradients`` (``S x N x m``); returns ``(grams, pis)``, each ``S x (L+1) x m x m``.
        ``workspace``: a dict whose arrays are reused by the next group of the same shapes
        (fresh memory costs page faults comparable to a pass over it)."""
        p, depth, width, b, k = self.p, self.depth, self.width, self.b, self.k
        n_seeds, n0, m = x0s.shape
        r = self.basis.shape[1]
        workspace = {} if workspace is None else workspace

        def buffer(name, shape):
            key = (name, shape)
            if key not in workspace:
                workspace[key] = np.empty(shape)
            return workspace[key]

        xhats = buffer("xhat", (depth, n_seeds, k, b, width))
        grams = np.empty((n_seeds, depth + 1, m, m))
        pis = np.empty_like(grams)
        xt0 = np.ascontiguousarray(np.swapaxes(x0s, 1, 2), dtype=float)
        grams[:, 0] = xt0 @ np.swapaxes(xt0, 1, 2) / n0
        fan_ins = [n0] + [width] * depth
        # the order in which the normals are used: A^1 .. A^L, then E^L .. E^1
        plan = [(layer, 0, width) for layer in range(1, depth + 1)]
        plan += [(layer, 1, fan_ins[layer - 1]) for layer in range(depth, 0, -1)]
        # buffers reused in turn (fresh memory would cost page faults): draw i is written while
        # draws i - 1 and i - 2 wait or are used, so three buffers of each shape suffice
        turns = _Prefetch.AHEAD + 1
        normals = _Prefetch([(lambda layer=layer, key=key, cols=cols, i=i: self._normals(
            layer, key, r, cols, buffer(f"normals {i % turns}", (n_seeds, r, cols)))) for i, (layer, key, cols) in enumerate(plan)])
        keep_x = 8.0 * n_seeds * depth * width * m <= KEEP_MEMORY
        kept = []  # per layer: [xhat, inv_sigma, x or None, C, S^{+T}]
        xt = xt0
        try:
            for layer in range(1, depth + 1):
                n_in = fan_ins[layer - 1]
                c, s, spt = self._frame(grams[:, layer - 1] * n_in, xt)
                a = normals.next()
                ht = np.matmul(np.swapaxes(s, 1, 2) * (p["sigma_w"] / math.sqrt(n_in)), a,
                               out=xhats[layer - 1].reshape(n_seeds, m, width))
                del a
                self.flops += 2.0 * n_seeds * width * m * r
                try:
                    # h = A S is centred within each batch by construction (the rows of S are)
                    xhat, inv_sigma = normalise(ht.reshape(n_seeds, k, b, width), p["eps"], axis=-2, centred=True)
                except BnsymError as exc:
                    raise SimulationOverflow(f"forward pass, layer {layer}: {exc}") from None
                del ht
                xt = self._phi(xhat)
                if keep_x:  # into the workspace (a copy costs less than the page faults of fresh memory)
                    kept_x = buffer("x", (depth, n_seeds, m, width))[layer - 1]
                    np.copyto(kept_x, xt)
                    xt = kept_x
                kept.append([xhat, inv_sigma, xt if keep_x else None, c, spt])
                with np.errstate(all="ignore"):
                    grams[:, layer] = xt @ np.swapaxes(xt, 1, 2) / width
                self._finite(grams[:, layer], xt, xhat, layer, "phi", f"forward pass, layer {layer}: the Gram "
                             f"matrix of phi(gamma xhat + beta) overflowed float64")
                self.flops += 2.0 * n_seeds * width * m * m
                if bar is not None:
                    bar.update(0.5 * n_seeds)
            self.outputs = np.swapaxes(xt, 1, 2).copy()  # (the workspace's arrays are reused)
            del xt
            gt = np.ascontiguousarray(np.swapaxes(top_gradients, 1, 2), dtype=float)
            pis[:, depth] = gt @ np.swapaxes(gt, 1, 2) / width
            for layer in range(depth, 0, -1):
                xhat, inv_sigma, _, c, spt = kept[layer - 1]
                kept[layer - 1] = None
                d = self._derivative(xhat)
                with np.errstate(all="ignore"):
                    dht = batchnorm_vjp(gt.reshape(xhat.shape), xhat, inv_sigma, d, axis=-2, out=buffer("dh", xhat.shape),
                                        scratch=d).reshape(n_seeds, m, width)
                    del gt
                    del d  # (overwritten: batchnorm_vjp's scratch)
                    kk = dht @ np.swapaxes(dht, 1, 2)
                    if not np.all(np.isfinite(kk)):  # phi' at fault, or the gradient itself
                        _check_finite(self._derivative(xhat), f"backward pass, layer {layer}: phi'(gamma xhat + beta) "
                                      f"is not finite", self._argument(xhat))
                        _check_finite(kk, partial(_gradient_overflow, layer, pis[:, layer], kk))
                    # the centred h^l drawn forward (sigma is per unit and per batch, so it does not
                    # cancel from the cross-batch entries of h^T dh)
                    np.divide(xhat, inv_sigma[:, :, None, :], out=xhat)
                    mixed = xhat.reshape(n_seeds, m, width) @ np.swapaxes(dht, 1, 2)   # H^T dh
                    del xhat, dht
                if layer == 1:
                    xt_in = xt0
                else:
                    below = kept[layer - 2]
                    xt_in = below[2] if below[2] is not None else self._phi(below[0])
                n_in = fan_ins[layer - 1]
                scale = p["sigma_w"] / math.sqrt(n_in)
                with np.errstate(all="ignore"):
                    e = normals.next()
                    ut = np.matmul(np.swapaxes(self._noise_factor(kk), 1, 2) * scale, e,   # (Z^T dh)^T, drawn afresh
                                   out=buffer("u", (n_seeds, m, n_in)))
                    del e
                    inner = spt @ mixed - np.swapaxes(c, 1, 2) @ (xt_in @ np.swapaxes(ut, 1, 2))
                    gt = np.matmul(np.swapaxes(c @ inner, 1, 2), xt_in, out=buffer("g", (n_seeds, m, n_in)))
                    gt += ut                                               # U + Q (S^{+T} H^T dh - Q^T U)
                    del ut
                    pis[:, layer - 1] = gt @ np.swapaxes(gt, 1, 2) / n_in
                _check_finite(pis[:, layer - 1], partial(_gradient_overflow, layer, pis[:, layer], pis[:, layer - 1]))
                self.flops += 2.0 * n_seeds * m * (2 * width * m + n_in * (2 * m + 2 * r))
                if bar is not None:
                    bar.update(0.5 * n_seeds)
        finally:
            normals.close()
        self.input_gradients = np.swapaxes(gt, 1, 2).copy()  # (the workspace's array is reused)
        return grams, pis

    def _normals(self, layer, key, rows, cols, out):
        """``out`` (``S x rows x cols``) filled with standard normals: network ``s``'s block from
        its layer seed's child streams ``(key, i)`` (:func:`_normals`)."""
        for s, seeds in enumerate(self.seeds):
            _normals(seeds[layer - 1], key, out[s])
        return out


def _root_factor(k):
    """``F`` with ``F F^T = K`` for a symmetric PSD ``K``: Cholesky, or ``U diag(mu^{1/2})`` from
    the eigendecomposition when ``K`` is singular.  ``O(r^3)``."""
    try:
        return np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(k)
        return vectors * np.sqrt(np.maximum(values, 0.0))


class _Prefetch:
    """Results of ``tasks`` (callables), taken in order by :meth:`next`, each computed ahead
    in the drawing thread pool while the caller works on the ones before: at most
    :attr:`AHEAD` are pending (submitted, not yet taken) at a time."""

    AHEAD = 2

    def __init__(self, tasks):
        self.tasks, self.pending = list(tasks), []
        self._submit()

    def _submit(self):
        while self.tasks and len(self.pending) < self.AHEAD:
            self.pending.append(_draw_pool().submit(self.tasks.pop(0)))

    def next(self):
        result = self.pending.pop(0).result()
        self._submit()
        return result

    def close(self):
        """Cancel the draws not started and wait for the running one (it writes into a buffer
        that the caller may reuse).  Its own error is dropped: a draw that was not consumed
        cannot have affected a result, and raising here would hide the caller's exception."""
        for future in self.pending:
            future.cancel()
        for future in self.pending:
            if not future.cancelled():
                future.exception()
        self.pending, self.tasks = [], []


#: Conditional method: a block of at least this many normals is drawn in chunks.
PARALLEL_NORMALS = 2**16


def _normals(seed, key, out):
    """Fill ``out`` (C-contiguous) with standard normals: the flat buffer is cut into
    ``min(WEIGHT_BLOCKS, max(1, size // PARALLEL_NORMALS))`` chunks, chunk ``i`` drawn from
    ``SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (key, i))``: the numbers depend on
    the shape, not on the threads."""
    flat = out.reshape(-1)
    for i, chunk in enumerate(np.array_split(flat, min(WEIGHT_BLOCKS, max(1, flat.size // PARALLEL_NORMALS)))):
        child = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (key, i))
        np.random.Generator(np.random.SFC64(child)).standard_normal(out=chunk)
    return out


_POOLS: dict = {}


def _draw_pool() -> ThreadPoolExecutor:
    """Threads that draw weight blocks and normals (one per core), one pool per process: a
    pool inherited through ``fork`` has lost its threads and would never run its work."""
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS.clear()
        _POOLS[pid] = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bnsym-weights")
    return _POOLS[pid]


def _gradient_overflow(layer, above, below=None) -> str:
    """The message for a gradient that overflowed float64 at ``layer``: ``above`` holds the
    gradient Gram matrix one layer above (``m x m``, or a stack ``S x m x m``, in which case the
    first network whose ``below`` matrix (default: whose ``above``) is not finite is named)."""
    if above.ndim == 3:
        bad = ~np.isfinite(above if below is None else below).all(axis=(1, 2))
        s = int(np.argmax(bad))
        above = above[s]
        where = f" in network {s} of its group"
    else:
        where = ""
    return (f"backward pass, layer {layer}: the gradient overflowed float64{where} (its squared norm per unit was "
            f"{np.trace(above):.3g} one layer above); use a smaller depth")


def _check_finite(values, message, argument=None):
    """Raise :class:`SimulationOverflow` with ``message`` if ``values`` are not all finite, adding
    how far ``argument`` (phi's argument, if given) reaches: that pass is made only then.
    ``message`` may be a function returning it, called only then (a message that inspects
    arrays stays off the per-layer path)."""
    if not np.all(np.isfinite(values)):
        if callable(message):
            message = message()
        if argument is not None:
            message += f" (its argument reaches {np.abs(argument).max():.3g})"
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
    with np.errstate(over="ignore"):
        largest = float(np.max(np.einsum("na,na->a", arr, arr))) / width
    if not math.isfinite(largest):
        raise BnsymInputError("output_gradient is too large: its squared norm per unit overflows float64 "
                              "(scale it down; the fitted rates do not depend on its scale)")
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
