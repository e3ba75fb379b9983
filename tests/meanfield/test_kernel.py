"""bnsym.kernel and the joint map of several batches (docs/theory.md section 14).

Witnesses: the single-batch Laplace map (mpmath, docs/theory.md section 7) for the diagonal blocks;
Monte Carlo of one layer of the two-batch map; central finite differences for the NTK's
derivative term; the finite-width simulator (``bnsym.simulate(..., method="conditional")``, several
batches through one network) for the NNGP; an explicit-weights network written here (per-parameter
gradients of a scalar readout, batch-norm backward pass from ``bnsym.montecarlo.sampling``) for the
NTK, since the simulator's conditional backward pass draws the weights' unseen part afresh per
gradient and cannot give per-example gradient inner products.

False-failure probability of the statistical tests: every comparison is a Student t statistic over
SEEDS = 16 independent networks, Bonferroni-adjusted over the entries compared, at a family-wise
level of 1e-5 per test (seven tests: below 1e-4 together).  Finite-width bias, measured (ReLU, 4
batches of 8, 16 seeds; ``/tmp`` script in the session report): the mean relative deviation of the
NTK entries from theory was -0.1%, -0.1%, -0.4% at depths 1, 3, 10 for width 256, against standard
errors of 4.6%, 9.6%, 20%; NNGP at width 1024, 32 seeds: mean |t| = 0.91, 0.86, 0.78 (no bias visible; the NNGP bias is O(1/N), its
standard error O(1/sqrt(N)), so at width 256 the bias stays below a fifth of the error).
"""

import math

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.activations import activation as as_activation
from bnsym.errors import BnsymInputError
from bnsym.meanfield import joint
from bnsym.meanfield.kernels import kernel, kernel_memory
from bnsym.montecarlo.sampling import apply_batchnorm, batchnorm_vjp, normalise

from statistical import SEED_OFFSET as MASTER_SEED  # BNSYM_TEST_SEED, read in one place
SEEDS = 16
FAMILY_LEVEL = 1e-5
B = 8


def _inputs(seed=5, k=4, d=16):
    return np.random.default_rng(seed).standard_normal((k * B, d))


def _t_threshold(dof, count, level=FAMILY_LEVEL):
    """Two-sided Student-t quantile at ``level / count`` (Bonferroni), by bisection on mpmath's betainc."""
    target = mpmath.mpf(level) / count

    def tail(t):
        return mpmath.betainc(dof / 2, 0.5, 0, dof / (dof + t * t), regularized=True)

    lo, hi = mpmath.mpf(0), mpmath.mpf(1000)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > target else (lo, mid)
    return float(hi)


def _assert_within(samples, theory):
    """Every upper-triangle entry of the seed mean within the Bonferroni t threshold of ``theory``."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    iu = np.triu_indices(theory.shape[0])
    t = np.abs(mean - theory)[iu] / se[iu]
    assert t.max() < _t_threshold(samples.shape[0] - 1, len(iu[0])), (t.max(), np.abs(mean - theory).max())


def empirical_kernels(act, x, b, depth, width, seed, sigma_w=1.0, eps=0.0):
    """``(Gram of x^L, NTK)`` of one explicit network ``h = sigma_w W x / sqrt(n)``, ``W`` i.i.d. N(0, 1),
    readout ``f = v^T x^L / sqrt(N)``: the NTK is the sum over ``v`` and every ``W^l`` of the products
    of per-example gradients (each example's gradient lives on its own batch's columns)."""
    act = as_activation(act)
    rng = np.random.default_rng(seed)
    m, _ = x.shape
    k = m // b
    z = x.T.copy()
    cache = []
    for _ in range(depth):
        n_in = z.shape[0]
        w = rng.standard_normal((width, n_in))
        xhat, inv = normalise((sigma_w / math.sqrt(n_in) * (w @ z)).reshape(width, k, b), eps)
        cache.append((w, z, xhat, inv))
        z = act.np(xhat).reshape(width, m)
    v = rng.standard_normal(width)
    nngp = z.T @ z / width
    ntk = nngp.copy()
    batch = np.arange(m) // b
    g = np.zeros((m, width, b))
    g[np.arange(m), :, np.arange(m) % b] = v / math.sqrt(width)
    for w, z_in, xhat, inv in reversed(cache):
        n_in = z_in.shape[0]
        xh = xhat[:, batch].transpose(1, 0, 2)
        dh = batchnorm_vjp(g, xh, inv[:, batch].T, act.np(xh, derivative=True))  # m, N, b
        flat = dh.transpose(0, 2, 1).reshape(m * b, width)
        zin = z_in.T.reshape(k, b, n_in)[batch].reshape(m * b, n_in)
        products = (flat @ flat.T).reshape(m, b, m, b) * (zin @ zin.T).reshape(m, b, m, b)
        ntk += sigma_w**2 / n_in * products.sum(axis=(1, 3))
        g = (sigma_w / math.sqrt(n_in)) * (flat @ w).reshape(m, b, n_in).transpose(0, 2, 1)
    return nngp, ntk


# ----------------------------------------------------------------------------- deterministic checks
def test_diagonal_blocks_are_the_single_batch_map():
    """Within-batch blocks of the kernel = the single-batch Laplace map (float64 at dps 12; one layer at dps 13 in mpmath), to 1e-9."""
    x = _inputs(k=2)
    k = kernel("relu", x, 3, batch_size=B)
    for p in range(2):
        single = bnsym.propagate("relu", x[p * B:(p + 1) * B] @ x[p * B:(p + 1) * B].T / x.shape[1], 3, dps=12)
        block = k.value[p * B:(p + 1) * B, p * B:(p + 1) * B]
        assert np.abs(block - single.grams[3]).max() < 1e-9 * np.abs(single.grams[3]).max()
    precise = bnsym.propagate("relu", x[:B] @ x[:B].T / x.shape[1], 1, dps=13)  # mpmath Laplace path
    assert np.abs(kernel("relu", x, 1, batch_size=B).value[:B, :B] - precise.grams[1]).max() < 1e-9


def test_duplicated_pair_is_the_single_batch_map_for_degree_two():
    """The two-parameter formula on [[A, A], [A, A]] gives V(A) of the one-parameter Laplace map (relu_power(2))."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 9))
    a = x @ x.T / 9
    s = joint.centred_pairs(np.block([[a, a], [a, a]]), 6, [(0, 1)])
    coeffs = (1.0, 0.0, 2)
    c, _ = joint.cross_map(coeffs, s, batch_size=6, levels=(5, 7))
    ref = bnsym.propagate("relu_power(2)", a, 1, dps=12).grams[1]  # the float64 one-parameter rule (errors 2e-14)
    assert np.abs(c[0] - ref).max() < 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("name,eps,sigma_w", [("relu", 0.0, 1.0), ("relu_power(2)", 0.3, 1.5), ("leaky_relu(0.2)", 0.05, 1.0)])
def test_cross_block_against_monte_carlo(name, eps, sigma_w):
    """One layer of the two-batch map (cross block) against 4e5 samples of the definition, every entry
    within a Bonferroni 1e-5 family-wise normal interval (samples i.i.d.; CLT at 4e5 samples)."""
    rng = np.random.default_rng(11 + MASTER_SEED)
    x = rng.standard_normal((10, 13))
    gram = x @ x.T / 13
    k = kernel(name, x, 1, batch_size=5, eps=eps, sigma_w=sigma_w)
    n = 400_000
    h = (np.linalg.cholesky(sigma_w**2 * gram) @ rng.standard_normal((10, n))).T
    f1 = apply_batchnorm(h[:, :5], name, eps=eps)
    f2 = apply_batchnorm(h[:, 5:], name, eps=eps)
    prod = f1[:, :, None] * f2[:, None, :]
    mean, se = prod.mean(axis=0), prod.std(axis=0) / math.sqrt(n)
    z = np.abs(mean - k.value[:5, 5:]) / se
    level = FAMILY_LEVEL / 25
    assert z.max() < float(mpmath.sqrt(2) * mpmath.erfinv(1 - level)), z.max()


def test_ntk_term_is_the_derivative_of_the_cross_map():
    """dC along a cross-block direction against central finite differences of C (full-rank joint Gram)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 14))
    s = joint.centred_pairs(x @ x.T / 14, 5, [(0, 1)])
    direction = np.zeros_like(s)
    g = np.eye(5) - 0.2
    theta = g @ rng.standard_normal((5, 5)) @ g
    direction[0, :5, 5:], direction[0, 5:, :5] = theta, theta.T
    coeffs = (1.0, 0.3, 1)
    _, slope = joint.cross_map(coeffs, s, direction, batch_size=5, levels=(6, 8))
    step = 1e-5
    up, _ = joint.cross_map(coeffs, s + step * direction, batch_size=5, levels=(6, 8))
    down, _ = joint.cross_map(coeffs, s - step * direction, batch_size=5, levels=(6, 8))
    assert np.abs((up - down) / (2 * step) - slope).max() < 1e-7 * np.abs(slope).max()


def test_error_estimate_bounds_the_error_of_higher_rules():
    """The per-layer error estimate of the float64 path covers the difference from rules two levels up."""
    from bnsym.meanfield.kernels import joint_layers
    from bnsym.meanfield.results import make_settings

    x = _inputs(k=3)
    settings = make_settings("relu", B)
    gram = x @ x.T / x.shape[1]
    _, ntk, errors = joint_layers(settings, gram, 1, ntk=True)
    s = joint.centred_pairs(gram, B, [(0, 1), (1, 1)])
    ds = joint.centred_pairs(gram, B, [(0, 1), (1, 1)])
    ds[:, :B, :B] = ds[:, B:, B:] = 0
    c, dc = joint.cross_map((1.0, 0.0, 1), s, ds, batch_size=B, levels=tuple(v + 3 for v in joint.FLOAT_LEVELS))
    assert np.abs(ntk[1][:B, B:2 * B] - (c[0] + dc[0])).max() <= errors[1] + 1e-14
    assert np.abs(ntk[1][B:2 * B, B:2 * B] - (c[1] + dc[1])).max() <= errors[1] + 1e-14
    assert errors[1] < 1e-8 * np.abs(ntk[1]).max()


def test_propagate_several_batches_matches_kernel_and_single_batch():
    """propagate(list of batches) = propagate(full Gram, batch_size) = the NNGP kernel; its diagonal blocks = single-batch propagate."""
    x = _inputs(k=3)
    batches = [x[p * B:(p + 1) * B] for p in range(3)]
    a = bnsym.propagate("relu", batches, 2, dps=9)
    full = bnsym.propagate("relu", x @ x.T / x.shape[1], 2, batch_size=B, dps=9)
    assert np.abs(a.grams[2] - full.grams[2]).max() < 1e-13
    assert np.abs(a.grams[2] - kernel("relu", x, 2, batch_size=B).value).max() < 1e-5 * np.abs(a.grams[2]).max()
    single = bnsym.propagate("relu", batches[2] @ batches[2].T / x.shape[1], 2, dps=12)
    assert np.abs(a.block(2, 2, 2) - single.grams[2]).max() < 1e-9
    assert a.method.startswith("two-parameter Laplace")


# ----------------------------------------------------------------------------- against finite networks
def _depths(*slow):
    return [pytest.param(d, marks=pytest.mark.slow) if d in slow else d for d in (1, 3, 10)]


@pytest.mark.parametrize("depth", _depths(3, 10))
def test_nngp_against_simulator(depth):
    """NNGP of 4 batches of 8 vs the Gram of x^L of width-256 networks (simulator, conditional method, 16 seeds)."""
    x = _inputs()
    theory = kernel("relu", x, depth, batch_size=B).value
    sim = bnsym.simulate("relu", B, depth, 256, seeds=SEEDS, seed=(MASTER_SEED, depth),
                         input=[("inputs", x[p * B:(p + 1) * B]) for p in range(4)])
    _assert_within(sim.grams[:, depth], theory)


@pytest.mark.parametrize("depth", _depths(3, 10))
def test_ntk_against_finite_networks(depth):
    """NTK of 4 batches of 8 vs per-parameter gradient inner products of width-256 explicit networks (16 seeds)."""
    x = _inputs()
    theory = kernel("relu", x, depth, batch_size=B, kind="ntk")
    runs = np.array([empirical_kernels("relu", x, B, depth, 256, (MASTER_SEED, depth, s))[1] for s in range(SEEDS)])
    _assert_within(runs, theory.value)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,match", [
    (lambda: kernel("relu", np.ones((12, 3)), 2, batch_size=8), "not a multiple of batch_size"),
    (lambda: kernel("relu", np.full((8, 3), np.nan), 2, batch_size=8), "nan"),
    (lambda: kernel("relu", [np.ones((8, 3)), np.ones((4, 3))], 2, batch_size=8), "batch_size = 8 rows"),
    (lambda: kernel("relu", _inputs(), 2, batch_size=8, kind="cnn"), "kind must be one of"),
    (lambda: kernel("relu", _inputs(), 0, batch_size=8), "depth"),
    (lambda: kernel("tanh", _inputs(), 2, batch_size=8, method="laplace"), "not positively homogeneous"),
    (lambda: kernel("relu", _inputs(), 2, batch_size=8, beta=0.1, method="laplace"), "beta"),
    (lambda: kernel("relu", _inputs(), 2, batch_size=8, method="fourier"), "method must be one of"),
    (lambda: kernel("tanh", _inputs(), 2, batch_size=8, chains=1), "chains"),
    (lambda: kernel("tanh", _inputs(k=2)[:10], 2, batch_size=5, kind="ntk"), "B >= 6"),
    (lambda: kernel("tanh", _inputs(), 2, batch_size=8, dps=20), "dps: the high-precision path is the Laplace method only"),
    (lambda: kernel("relu", _inputs(k=1), 2, batch_size=4, kind="ntk"), "B >= 5"),
    # a batch of identical inputs: its centred Gram block is 0 (the float64 path raised a numpy reshape error)
    (lambda: kernel("relu", np.vstack([_inputs(k=1), np.ones((8, 16))]), 2, batch_size=8), "batch 1 .rows 8 to 15. has identical or nearly identical inputs.*divides by zero at eps = 0"),
    (lambda: kernel("relu", np.vstack([_inputs(k=1), np.ones((8, 16))]), 2, batch_size=8, eps=1e-3), "Laplace path needs a nonzero centred block"),
    (lambda: kernel("tanh", np.vstack([np.ones((8, 16)), _inputs(k=1)]), 2, batch_size=8), "zero variance across the batch"),
    (lambda: bnsym.propagate("relu", [_inputs(k=1), np.ones((8, 16))], 2, dps=10), "batch 1 .rows 8 to 15. has identical"),
    (lambda: bnsym.propagate("tanh", [_inputs(k=1)] * 2, 2, dps=15), "not positively homogeneous"),
])
def test_bad_input_is_one_line(call, match):
    with pytest.raises(BnsymInputError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_too_large_kernel_is_refused_before_allocating(monkeypatch):
    """M = 2^17 at depth 10 would need 1.4 TB: refused with the size, before any M x M array exists."""
    monkeypatch.setenv("BNSYM_KERNEL_MEMORY_GIB", "4")
    x = np.lib.stride_tricks.as_strided(np.ones(1), shape=(2**17, 2), strides=(0, 0))  # no memory
    with pytest.raises(BnsymInputError, match=r"needs 1408\.0 GiB"):
        kernel("relu", x, 10, batch_size=32)
    assert kernel_memory(2**17, 10, "nngp") == 8 * 11 * 2**34


def test_joint_map_reaches_the_cross_batch_fixed_point_and_rate():
    """Two batches of 6 through 14 ReLU layers of the joint map: the cross block tends to c_x 11^T with
    c_x = (B-1) Gamma((B-1)/2)^2 / (4 pi Gamma(B/2)^2) = 45/256, and its centred part G C G shrinks by
    lambda_x = B Gamma(B/2)^2 / ((B-1)^2 Gamma((B-1)/2)^2 (1 - J1(-1/(B-1)))) per layer (closed forms of
    ../shared/THEORY-appendices.md section 1.2-1.3, independent of the two-parameter integral)."""
    b = 6
    rng = np.random.default_rng(0)
    p = bnsym.propagate("relu", [rng.standard_normal((b, 20)) for _ in range(2)], 14, dps=10)
    assert abs(p.block(14, 0, 1).mean() - 45 / 256) < 1e-6
    g = np.eye(b) - 1 / b
    norms = [np.linalg.norm(g @ p.block(l, 0, 1) @ g) for l in (13, 14)]
    c = -1 / (b - 1)
    j1 = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    rate = b * math.gamma(b / 2) ** 2 / ((b - 1) ** 2 * math.gamma((b - 1) / 2) ** 2 * (1 - j1))
    assert abs(rate - 0.70069) < 1e-5
    assert abs(norms[1] / norms[0] - rate) < 1e-3  # measured 0.70118 at layer 14, still approaching from above


def test_a_reordered_copy_of_a_batch_is_computed_once_and_spread():
    """Batches 0 and 2 distinct, batch 1 batch 0 reordered: the kernel is computed on batches 0 and 2 and
    spread over the copy (``kernels.distinct_batches``).  Against the joint map run on all three
    batches without that reduction (``joint_layers.__wrapped__``: the copy's pair goes through the
    ``(w, rho)`` rule, which converges for the NNGP), within the latter's error; the copy's NTK
    block is its original's reordered, and equal rows get bit-equal Gram entries whatever BLAS does."""
    from bnsym.meanfield.kernels import distinct_batches, input_gram, joint_layers
    from bnsym.meanfield.results import make_settings
    rng = np.random.default_rng(4)
    x, z = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    order = [3, 1, 4, 0, 2]
    data = np.vstack([x, x[order], z])
    gram = input_gram(data)
    assert distinct_batches(gram, 5) == list(range(5)) + order + list(range(10, 15))
    reduced = kernel("relu", data, 2, batch_size=5)
    settings = make_settings("relu", 5)
    full, _, errors = joint_layers.__wrapped__(settings, gram, 2)
    assert np.abs(reduced.value - full[-1]).max() <= sum(errors) + reduced.error
    ntk = kernel("relu", data, 2, batch_size=5, kind="ntk").value
    np.testing.assert_array_equal(ntk[5:10, 5:10], ntk[np.ix_(order, order)])
    np.testing.assert_array_equal(ntk[5:10, 10:], ntk[order, 10:])


@pytest.mark.parametrize("dps", [None, pytest.param(6, marks=pytest.mark.slow)])  # the mpmath side: 3 s
def test_inputs_far_below_sqrt_eps_reach_the_small_input_limit(dps):
    """Inputs of size 1e-20 at eps = 1e-3: batch norm's normaliser is B eps to 1e-37, so one layer maps
    Sigma to V_relu(sigma_w^2 G Sigma G) / eps, V_relu the arc-cosine kernel (a closed form, computed
    here).  The Schwinger rules were centred on the inputs' own scale and every node's e^{-B eps rho}
    underflowed: the float64 path raised a NumPy reshape error, the mpmath path (dps = 6) returned cross
    blocks of 1e-44981794588485683291 for 2.6e-38.  Their middle is now 1/(2 geomean + B eps)."""
    b = 4
    x = 1e-20 * np.random.default_rng(2).standard_normal((2 * b, 5))
    k = kernel("relu", x, 1, batch_size=b, eps=1e-3, dps=dps)
    gram = x @ x.T / x.shape[1]
    g = np.kron(np.eye(2), np.eye(b) - 1.0 / b)
    s = g @ gram @ g  # centred within each batch
    diag = np.sqrt(np.diag(s))
    cos = np.clip(s / np.outer(diag, diag), -1, 1)
    theta = np.arccos(cos)
    expected = np.outer(diag, diag) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi) / 1e-3
    assert np.allclose(np.array(k.value.tolist() if dps else k.value, dtype=float), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_the_kernel_at_eps_0_does_not_depend_on_the_inputs_scale(kind):
    """At eps = 0 batch norm removes the scale: inputs times 1e100 or 1e-100 give the layer-2 kernel of the
    inputs themselves (the NTK too: Theta^0 = Sigma^0 scales, but J Theta^0 J^T does not).  Before,
    the float64 path's weights overflowed or underflowed to NaN and it raised a NumPy reshape error;
    Gram matrices that overflow float64 are refused in one line."""
    x = np.random.default_rng(3).standard_normal((10, 6))
    base = kernel("relu", x, 2, batch_size=5, kind=kind)
    for factor in (1e100, 1e-100):
        scaled = kernel("relu", factor * x, 2, batch_size=5, kind=kind)
        assert np.abs(scaled.value - base.value).max() <= 10 * (scaled.error + base.error)
    with pytest.raises(BnsymInputError, match="overflows float64"):
        kernel("relu", 1e160 * x, 2, batch_size=5)
    with pytest.raises(BnsymInputError, match="underflows float64"):  # was a LinAlgError from a subnormal Gram
        kernel("relu", 1e-155 * x, 2, batch_size=5)
