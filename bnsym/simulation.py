r"""A real finite-width batch-normalized network at initialisation.

The network of THEORY.md section 1, in float64, with explicit Gaussian
weights and the true batch-norm forward and backward passes (no mean-field
formula is used).  Activations are stored neurons x batch, ``x^l`` of shape
``(N, B)``:

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

Cost per seed: ``2 L (2 N^2 B)`` flops in matrix products (forward and
input-gradient), ``L N^2`` Gaussian draws for the weights (the dominant
cost at small ``B``; drawn in row blocks by one thread per core),
``O(L N B)`` elementwise work and ``2 activation`` evaluations per unit.
Memory: the ``L`` weight matrices are kept for the backward pass when they
fit in :data:`WEIGHT_MEMORY` bytes, and are otherwise regenerated from their
per-layer seeds.

>>> sim = simulate("relu", 8, depth=6, width=64, seeds=2)
>>> sim.grams.shape, sim.gradient_norms.shape
((2, 7, 8, 8), (2, 7))
"""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import validation
from .errors import BnsymError, BnsymInputError
from .sampling import _activation, _gram, _parameters, batchnorm_vjp, normalise

#: Keep the weights of one seed in memory up to this many bytes (else regenerate them).
WEIGHT_MEMORY = 2 * 1024**3

#: Each weight matrix is drawn as this many row blocks, each from its own
#: child seed, so the blocks can be drawn in parallel threads and the draws do
#: not depend on how many threads there are.
WEIGHT_BLOCKS = 8

INPUT_KINDS = ("random", "orthogonal", "collinear")


class SimulationOverflow(BnsymError, OverflowError):
    """A simulated value left the float64 range; the message says at which layer and why."""


@dataclass(frozen=True)
class SimulatedValue:
    """A mean over seeds with its standard error (``inf`` with one seed)."""

    value: float
    stderr: float
    seeds: int

    def interval(self, sigmas: float = 3.0) -> tuple:
        return (self.value - sigmas * self.stderr, self.value + sigmas * self.stderr)

    def __float__(self):
        return float(self.value)

    def __str__(self):
        return f"{self.value:.6g} ± {self.stderr:.2g}"


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
        """``(q, c)`` as :class:`SimulatedValue`: mean diagonal and off-diagonal entry of
        ``Sigma^l`` averaged over layers ``first_layer..L`` (default: those after the
        fit's lower burn-in), then over seeds."""
        lo = self.fit_layers[0] if first_layer is None else first_layer
        grams = self.grams[:, max(lo, 1):]
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


def _finite_or_none(value):
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def simulate(activation, batch_size, depth, width, *, gamma=1, beta=0, eps=0, sigma_w=1, seeds=4, seed=0, input="random",
             output_gradient=None, fit_layers=None, progress=False) -> Simulation:
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
    * ``("gram", S)``: inputs of dimension ``max(width, B)`` with Gram ``S`` exactly.

    ``output_gradient``: ``None`` (i.i.d. ``N(0, 1)`` entries centred over
    the batch, so that ``Pi^L ~ G``, the eigendirection of ``T`` whose
    eigenvalue is lambda_G: no transient near the output), an array
    ``(width, B)``, or a callable ``(rng, width, B) -> array``.
    ``fit_layers``: ``(lo, hi)`` layers of the rate fit (default: skip
    ``max(1, L//10)`` layers at each end; layer 0 is the raw input, whose
    gradient has no batch norm below it).

    Raises :class:`BnsymInputError` for bad arguments and
    :class:`SimulationOverflow` (naming the layer) if a value leaves the
    float64 range; never returns NaN.
    """
    act = _activation(activation)
    b = _integer(batch_size, "batch_size", 2)
    depth = _integer(depth, "depth", 1)
    width = _integer(width, "width", 1)
    n_seeds = _integer(seeds, "seeds", 1)
    p = _parameters(gamma, beta, eps, sigma_w)
    inputs_for, input_label = _input_builder(input, b, width)
    top_gradient = _output_gradient(output_gradient, width, b)
    lo, hi = _fit_layers(fit_layers, depth)
    settings = dict(activation=act.label, batch_size=b, depth=depth, width=width, **p, seeds=n_seeds, seed=seed, input=input_label)

    grams = np.empty((n_seeds, depth + 1, b, b))
    gradient_grams = np.empty_like(grams)
    bar = _progress(progress, n_seeds * depth, act.label)
    flops = 0.0
    workspace = {}
    try:
        for s in range(n_seeds):
            net = _Network(act, p, depth, width, b, np.random.SeedSequence([seed, s]), workspace)
            x0 = inputs_for(np.random.Generator(np.random.SFC64(np.random.SeedSequence([seed, s, 1]))))
            grams[s], gradient_grams[s] = net.run(x0, top_gradient, bar)
            flops += net.flops
    finally:
        if bar is not None:
            bar.close()
    norms = np.einsum("slaa->sl", gradient_grams)
    if not np.all(norms > 0):
        layer = int(np.argwhere(~(norms > 0))[0, 1])
        raise BnsymError(f"the gradient vanished exactly at layer {layer}: the growth rate cannot be fitted "
                         f"(batch norm with B = 2 has a zero Jacobian)")
    rates = _fitted_rates(norms, lo, hi)
    rate = _across_seeds(rates)
    return Simulation(settings, grams, gradient_grams, norms, rates, rate.value, rate.stderr, (lo, hi), flops)


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
        act, p, b = self.act, self.p, self.b
        depth, width = self.depth, self.width
        grams = np.empty((depth + 1, b, b))
        pis = np.empty((depth + 1, b, b))
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
                xhat, inv_sigma = normalise(h, p["eps"])
            except BnsymError as exc:
                raise SimulationOverflow(f"forward pass, layer {layer}: {exc}") from None
            y = p["gamma"] * xhat + p["beta"]
            with np.errstate(all="ignore"):  # unused branches of piecewise phi may overflow harmlessly
                x = act.np(y)
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
            self.flops += 2.0 * width * fan_ins[layer - 1] * b
            if bar is not None:
                bar.update(0.5)
        self.output = x
        g = top_gradient(np.random.Generator(np.random.SFC64(self.gradient_seed)))
        pis[depth] = g.T @ g / width
        for layer in range(depth, 0, -1):
            xhat, inv_sigma, d = cache.pop()
            with np.errstate(all="ignore"):
                dh = batchnorm_vjp(g, xhat, inv_sigma, d)
                w = slot(layer) if keep else self.weights(layer, fan_ins[layer - 1], slot(layer))
                g = w.T @ dh
                g *= p["sigma_w"] / math.sqrt(fan_ins[layer - 1])
                pis[layer - 1] = g.T @ g / fan_ins[layer - 1]
            _check_finite(pis[layer - 1], f"backward pass, layer {layer}: the gradient overflowed float64 (its squared "
                                          f"norm per unit was {np.trace(pis[layer]):.3g} one layer above); use a smaller depth")
            self.flops += 2.0 * width * fan_ins[layer - 1] * b
            if bar is not None:
                bar.update(0.5)
        self.input_gradient = g
        return grams, pis


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


def _across_seeds(values) -> SimulatedValue:
    values = np.asarray(values, dtype=float)
    return SimulatedValue(float(values.mean()), float(_stderr(values)), values.shape[0])


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
def _integer(value, name, minimum) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise BnsymInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise BnsymInputError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _input_builder(spec, b, width):
    """``(function rng -> x0 of shape (N_0, B), label)``."""
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
        return (lambda rng: rng.standard_normal((width, b))), kind
    if kind == "orthogonal":
        if width < b:
            raise BnsymInputError(f"input='orthogonal' needs width >= batch_size ({width} < {b})")
        return (lambda rng: np.linalg.qr(rng.standard_normal((width, b)))[0] * math.sqrt(width)), kind
    if kind == "collinear":
        t = np.arange(1.0, b + 1.0)
        return (lambda rng: rng.standard_normal((width, 1)) * t), kind
    if kind == "inputs":
        arr = _as_array(value, "input")
        if arr.ndim != 2 or arr.shape[0] != b or arr.shape[1] < 1:
            raise BnsymInputError(f"input must have shape (batch_size, N_0) = ({b}, N_0), got {arr.shape}")
        x0 = np.ascontiguousarray(arr.T)
        return (lambda rng: x0), f"array {arr.shape[0]}x{arr.shape[1]}"
    gram = _gram(value, "input gram")
    if gram.shape != (b, b):
        raise BnsymInputError(f"an input Gram matrix must be {b} x {b}, got {gram.shape}")
    values, vectors = np.linalg.eigh(gram)
    # the symmetric square root: unique, and smooth in the Gram matrix (an eigenvector basis is
    # arbitrary where eigenvalues repeat), so nearby Gram matrices give nearby inputs for one seed
    root = (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T
    n0 = max(width, b)

    def build(rng):
        frame = np.linalg.qr(rng.standard_normal((n0, b)))[0]  # n0 x b orthonormal columns
        return frame @ root.T * math.sqrt(n0)

    return build, "gram"


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


def _output_gradient(spec, width, b):
    """Function ``rng -> g^L`` of shape ``(width, B)``."""
    if spec is None:
        def centred(rng):
            g = rng.standard_normal((width, b))
            return g - g.mean(axis=1, keepdims=True)
        return centred
    if callable(spec):
        def draw(rng):
            return _checked_gradient(spec(rng, width, b), width, b)
        return draw
    g = _checked_gradient(spec, width, b)
    return lambda rng: g


def _checked_gradient(value, width, b):
    arr = _as_array(value, "output_gradient")
    if arr.shape != (width, b):
        raise BnsymInputError(f"output_gradient must have shape (width, batch_size) = ({width}, {b}), got {arr.shape}")
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
    :class:`SimulatedValue` for ``"rate"``, ``"q"`` and ``"c"``; the other
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
        name: SimulatedValue(
            (n2 * b.value - n1 * a.value) / (n2 - n1),
            math.hypot(n2 * b.stderr, n1 * a.stderr) / (n2 - n1),
            min(a.seeds, b.seeds),
        )
        for name, (a, b) in pairs.items()
    }
