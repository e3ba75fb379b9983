"""The high-precision NNGP path (``bnsym.kernel(..., dps=...)``, docs/theory.md section 14.4) against
independent references: the float64 path (a different parametrisation of the same double
integral, ``(w, rho)`` against ``(s, t)``, and other code), and, for the cross-block routine, the
duplicated pair ``[[A, A], [A, A]]``, whose cross block is the single-batch map ``V(A)`` by the
one-parameter Laplace formula (:func:`bnsym.meanfield.laplace.laplace_map`)."""

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.errors import BnsymInputError
from bnsym.meanfield import joint
from bnsym.meanfield.laplace import backward_term, laplace_map
from bnsym.meanfield.results import make_settings
from bnsym.numerics import gaussian_kernels
from bnsym.numerics.gaussian_kernels import homogeneous_coefficients


@pytest.mark.slow
@pytest.mark.extended
def test_high_precision_kernel_agrees_with_the_float_path():
    """ReLU, two batches of 4, one layer, 10 digits: within the float64 path's error, and the
    reported error meets the promise.  With -m extended (11 s on a slow machine): the same mpmath
    route runs by default through ``propagate`` (the next test) and through ``kernel`` on one batch."""
    x = np.random.default_rng(3).standard_normal((8, 6))
    exact = bnsym.kernel("relu", x, 1, batch_size=4, dps=10)
    fast = bnsym.kernel("relu", x, 1, batch_size=4)
    assert exact.method == "two-parameter Laplace, mpmath" and isinstance(exact.value, mpmath.matrix)
    value = np.array(exact.value.tolist(), dtype=float)
    assert np.abs(value - fast.value).max() <= fast.error + 1e-10
    assert exact.error <= 1e-10 * np.abs(value).max()


@pytest.mark.slow
def test_propagate_of_several_batches_above_ten_digits():
    """``propagate`` with two batches of 4 at 11 digits (mpmath) against the float64 path at 10 digits,
    within the latter's error."""
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((4, 6)) for _ in range(2)]
    exact = bnsym.propagate("relu", batches, 1, dps=11)
    fast = bnsym.propagate("relu", batches, 1, dps=10)
    assert exact.method == "two-parameter Laplace, mpmath" and exact.grams_mp is not None
    assert np.abs(exact.grams[1] - fast.grams[1]).max() <= fast.errors[1] + 1e-11
    assert exact.errors[1] <= 1e-11 * np.abs(exact.grams[1]).max()


@pytest.mark.slow
@pytest.mark.extended
def test_cross_block_of_a_duplicated_pair_is_the_single_batch_map():
    """The cross block of ``[[A, A], [A, A]]`` (``A = sigma_w^2 G Sigma G``) is ``V(Sigma)``: leaky ReLU
    (both slopes nonzero: the mixed orthant term), ``gamma = -1.3``, ``eps = 0.01``, 8 digits asked,
    compared with the one-parameter map to 1e-8 of the largest entry.  With -m extended (9 s)."""
    settings = make_settings("leaky_relu(0.2)", 4, gamma="-1.3", eps="0.01", dps=8)
    x = np.random.default_rng(4).standard_normal((4, 6))
    with mpmath.workdps(settings.working_dps):
        sigma = mpmath.matrix((x @ x.T / 6).tolist())
        g = mpmath.eye(4) - mpmath.ones(4, 4) / 4
        a = g * sigma * g
        pair = mpmath.matrix(8, 8)
        for u in (0, 1):
            for w in (0, 1):
                pair[u * 4:(u + 1) * 4, w * 4:(w + 1) * 4] = a
        coefficients = homogeneous_coefficients(settings.activation, settings.gamma)
        cross, _, error = joint.cross_block(coefficients, pair, batch_size=4, eps=settings.eps, dps=8,
                                         working_dps=settings.working_dps)
        single, _ = laplace_map(settings, sigma)
        largest = max(abs(single[i, j]) for i in range(4) for j in range(4))
        assert max(abs(cross[i][j] - single[i, j]) for i in range(4) for j in range(4)) <= 1e-8 * largest
        assert max(max(row) for row in error) <= 1e-8 * largest


def test_integer_orthant_is_the_hypergeometric_orthant_moment():
    """The finite Fourier sum of the high-precision path against the 2F1 form, degrees 0 to 4, 40 digits."""
    with mpmath.workdps(45):
        for alpha in range(5):
            for rho in ("-0.97", "-0.3", "0", "0.41", "0.999"):
                r = mpmath.mpf(rho)
                exact = gaussian_kernels.orthant_moment(mpmath.mpf(alpha), r)
                assert abs(gaussian_kernels.integer_orthant(alpha, r) - exact) <= mpmath.mpf(10) ** -40 * max(1, abs(exact))


def test_high_precision_bad_input():
    x = np.random.default_rng(3).standard_normal((8, 6))
    with pytest.raises(BnsymInputError, match="at most 60 digits"):
        bnsym.kernel("relu", x, 1, batch_size=4, dps=70)
    same = np.vstack([np.ones((4, 6)), x[:4]])
    with pytest.raises(BnsymInputError, match="inputs: a batch of the pair has identical rows"):
        bnsym.kernel("relu", same, 1, batch_size=4, dps=8, eps=0.1)


# --- the neural tangent kernel at high precision --------------------------------------------------


def _float_duplicated_pair(name, gram, theta, b, **kwargs):
    """The float64 path's value and within-batch backward term: the duplicated pair ``(p, p)`` of the
    ``(w, rho)`` double integral differentiated along its cross block (levels raised three times)."""
    settings = make_settings(name, b, **kwargs)
    coefficients = tuple(float(c) for c in homogeneous_coefficients(settings.activation, settings.gamma))
    sw = float(settings.sigma_w)
    s = joint.centred_pairs(gram, b, [(0, 0)], sw)
    ds = joint.centred_pairs(theta, b, [(0, 0)], sw)
    ds[:, :b, :b] = 0
    ds[:, b:, b:] = 0
    c, dc = joint.cross_map(coefficients, s, ds, batch_size=b, eps=float(settings.eps), levels=(6, 8))
    return c[0], dc[0]


def _random_gram(seed, rows, columns):
    x = np.random.default_rng(seed).standard_normal((rows, columns))
    return x @ x.T / columns


@pytest.mark.parametrize("name, b, kwargs", [
    ("relu", 5, {}),
    ("leaky_relu(0.2)", 6, {"gamma": "-1.3", "eps": "0.01", "sigma_w": "1.5"}),  # mixed orthant term, eps > 0
    ("relu_power(2)", 5, {"eps": "0.1"}),
])
def test_backward_term_is_the_float_paths_duplicated_pair(name, b, kwargs):
    """:func:`laplace.backward_term` (one Laplace integral, the ``w`` integral done exactly) against the
    float64 path's two-parameter double integral of the duplicated pair (other parametrisation, other
    code): both the map and ``E[J Theta J^T]`` to 1e-10 of the largest entry (measured at most 3e-13
    at these levels, once the float path gives an input paired with itself correlation exactly 1;
    before that its diagonal was 3e-8 off for ReLU at B = 5)."""
    gram, theta = _random_gram(1, b, 7), _random_gram(2, b, 9)
    value, slope = _float_duplicated_pair(name, gram, theta, b, **kwargs)
    settings = make_settings(name, b, dps=15, **kwargs)
    with mpmath.workdps(settings.working_dps):
        v, dv, error = backward_term(settings, mpmath.matrix(gram.tolist()), mpmath.matrix(theta.tolist()))
    v, dv = (np.array(m.tolist(), dtype=float) for m in (v, dv))
    assert np.abs(v - value).max() <= 1e-10 * np.abs(v).max()
    assert np.abs(dv - slope).max() <= 1e-10 * np.abs(dv).max()
    assert float(max(error)) <= 1e-15 * np.abs(dv).max() * 1.01


@pytest.mark.parametrize("name, kwargs", [("relu", {}), pytest.param("leaky_relu(0.2)", {"gamma": "-1.3", "eps": "0.01"},
                                                                    marks=pytest.mark.slow)])  # 5 s: not in the fast run
def test_backward_term_keeps_its_digits_at_b_4(name, kwargs):
    """At B = 4 (which the float64 NTK refuses: its integrand decays like s^(-3/2)) the backward term
    at 30 digits against 40 digits: every promised digit holds (measured 4e-41 of the largest entry)."""
    gram, theta = _random_gram(4, 4, 6), _random_gram(5, 4, 7)
    out = []
    for dps in (30, 40):
        settings = make_settings(name, 4, dps=dps, **kwargs)
        with mpmath.workdps(settings.working_dps):
            out.append(backward_term(settings, mpmath.matrix(gram.tolist()), mpmath.matrix(theta.tolist())))
    (_, low, error), (_, high, _) = out
    top = max(abs(high[i, j]) for i in range(4) for j in range(4))
    assert max(abs(low[i, j] - high[i, j]) for i in range(4) for j in range(4)) <= mpmath.mpf(10) ** -30 * top
    assert max(error) <= mpmath.mpf(10) ** -30 * top


def test_high_precision_ntk_of_one_batch_agrees_with_the_float_path():
    """``kernel(..., kind="ntk", dps=12)`` of one batch of 5 at depth 2 against the float64 NTK, within
    the latter's reported error (measured: 8e-10 apart at depth 2, float error 1.5e-9)."""
    x = np.random.default_rng(3).standard_normal((5, 6))
    exact = bnsym.kernel("relu", x, 2, batch_size=5, kind="ntk", dps=12)
    fast = bnsym.kernel("relu", x, 2, batch_size=5, kind="ntk")
    assert exact.kind == "ntk" and exact.method == "two-parameter Laplace, mpmath"
    for layer in (1, 2):
        ntk = np.array(exact.ntk[layer].tolist(), dtype=float)
        assert np.abs(ntk - fast.ntk[layer]).max() <= sum(fast.layer_errors[:layer + 1]) + 1e-12
    assert exact.error <= 1e-12 * np.abs(np.array(exact.value.tolist(), dtype=float)).max()


@pytest.mark.slow
@pytest.mark.extended
def test_high_precision_ntk_cross_block_agrees_with_the_float_cross_map():
    """Two batches of 4 (the float64 kernel refuses the NTK at B = 4, but its cross map of two different
    batches converges), one layer, 8 digits: the NTK's cross block ``C + dC[Theta]`` against the
    float64 cross map at raised levels, to 1e-10 of the largest entry (measured 5e-13).  With -m
    extended (16 s); the mpmath NTK against the float64 NTK at B = 5 runs by default
    (``test_high_precision_ntk_with_an_input_at_its_batch_mean``)."""
    x = np.random.default_rng(3).standard_normal((8, 6))
    exact = bnsym.kernel("relu", x, 1, batch_size=4, kind="ntk", dps=8)
    gram = x @ x.T / 6
    s = joint.centred_pairs(gram, 4, [(0, 1)])
    ds = s.copy()
    ds[:, :4, :4] = 0
    ds[:, 4:, 4:] = 0
    c, dc = joint.cross_map((1.0, 0.0, 1), s, ds, batch_size=4, levels=(6, 8))
    ntk = np.array(exact.value.tolist(), dtype=float)
    assert np.abs(ntk[:4, 4:] - (c[0] + dc[0])).max() <= 1e-10 * np.abs(ntk).max()
    assert exact.error <= 1e-8 * np.abs(ntk).max()


def test_high_precision_ntk_with_an_input_at_its_batch_mean():
    """A batch ``{u, -u, 0, v, -v}``: the third input is its batch's mean, so its row of the kernel is 0
    (``z = 0`` almost surely: 0 to the digits asked, 1e-16 measured, the eigenvalue cut of the rounded
    inputs); the mpmath NTK gives what the float64 NTK gives, within its error."""
    rng = np.random.default_rng(8)
    u, v = rng.standard_normal(6), rng.standard_normal(6)
    x = np.array([u, -u, np.zeros(6), v, -v])
    exact = bnsym.kernel("relu", x, 1, batch_size=5, kind="ntk", dps=10, eps="0.1")
    fast = bnsym.kernel("relu", x, 1, batch_size=5, kind="ntk", eps=0.1)
    ntk = np.array(exact.value.tolist(), dtype=float)
    assert np.abs(ntk - fast.value).max() <= fast.error + 1e-10
    assert np.abs(ntk[2]).max() <= 1e-10 * np.abs(ntk).max()


def test_high_precision_ntk_bad_input():
    """A batch of identical rows at eps > 0 (its NNGP block is exactly 0, but the NTK's backward term
    is not defined there), and a cross-block direction with nonzero diagonal blocks: one-line errors."""
    x = np.vstack([np.ones((4, 6)), np.random.default_rng(3).standard_normal((4, 6))])
    with pytest.raises(BnsymInputError, match="inputs: a batch has identical rows") as info:
        bnsym.kernel("relu", x[:4], 1, batch_size=4, kind="ntk", dps=8, eps=0.1)
    assert "\n" not in str(info.value)
    with mpmath.workdps(20):
        s = mpmath.eye(8) - mpmath.ones(8, 8) / 8
        with pytest.raises(BnsymInputError, match="direction: .* diagonal blocks must be zero"):
            joint.cross_block((1, 0, 1), s, batch_size=4, eps=0, dps=5, working_dps=20, direction=mpmath.eye(8))


def test_high_precision_kernels_of_a_batch_and_its_reordering():
    """Two batches, the second the first reordered (the same inputs twice: the pair's joint Gram
    matrix is singular and the two-parameter rule does not converge on it, measured: PrecisionError
    after 490 s for the NTK at B = 4, 8 digits).  Their pre-activations are equal almost surely, so
    every kernel entry of the copy is one of the first batch (``kernels.distinct_batches``):
    the mpmath NNGP and NTK at depth 2, 12 digits, against the float64 kernels (whose duplicated-pair
    treatment is the ``(w, rho)`` rule with correlation 1 on the copies), within their errors."""
    x = np.random.default_rng(3).standard_normal((5, 6))
    order = [2, 0, 4, 1, 3]
    both = np.vstack([x, x[order]])
    for kind in ("nngp", "ntk"):
        exact = bnsym.kernel("relu", both, 2, batch_size=5, kind=kind, dps=12)
        fast = bnsym.kernel("relu", both, 2, batch_size=5, kind=kind)
        value = np.array(exact.value.tolist(), dtype=float)
        assert np.abs(value - fast.value).max() <= fast.error + 1e-12
        assert exact.error <= 1e-12 * np.abs(value).max()
    # a batch that shares no full reordering with the first (one input changed) is not a copy
    changed = both.copy()
    changed[7] += 0.5
    from bnsym.meanfield.kernels import distinct_batches
    with mpmath.workdps(20):
        gram = mpmath.matrix((changed @ changed.T / 6).tolist())
        assert distinct_batches(gram, 5) == list(range(10))
        gram = mpmath.matrix((both @ both.T / 6).tolist())
        assert distinct_batches(gram, 5) == list(range(5)) + order


def _pair(d, seed=0, b=4):
    """The centred Gram matrix of two batches of ``b`` random inputs in ``d`` dimensions, and its cross part."""
    x = np.random.default_rng(seed).standard_normal((2 * b, d))
    g = np.kron(np.eye(2), np.eye(b) - 1 / b)
    s = g @ (x @ x.T / d) @ g
    ds = s.copy()
    ds[:b, :b] = 0
    ds[b:, b:] = 0
    return s, ds


def test_a_rank_deficient_pair_is_told_apart_from_a_full_rank_one():
    """Two batches of 4 inputs in 5 dimensions: the pair's centred Gram matrix has rank 5 < 6 and the NTK
    direction (its cross part) leaves the range; in 16 dimensions it has full rank 6; and the part of the
    first direction inside the range (``P dS P``, P built here from an SVD of the inputs) stays in it."""
    s, ds = _pair(5)
    with mpmath.workdps(30):
        assert joint.leaves_range(s.tolist(), ds.tolist()) == 5
        assert joint.leaves_range(*(m.tolist() for m in _pair(16))) is None
        u = np.linalg.svd(s)[0][:, :5]
        inside = u @ u.T @ ds @ u @ u.T
        assert joint.leaves_range(s.tolist(), inside.tolist()) is None


def test_the_slow_rank_deficient_ntk_pair_fails_with_its_reason(monkeypatch):
    """Where the high-precision NTK cross block of a rank-deficient pair does not converge (dps 20 at B = 4
    took two minutes to fail), the error says why and what works instead.  The rule's failure is forced
    here (the convergence loop raises at once), so the test does not wait for it."""
    from bnsym.errors import PrecisionError

    def fail(*args):
        raise PrecisionError(args[-1])

    monkeypatch.setattr(joint, "converge", fail)
    s, ds = _pair(5)
    coefficients = homogeneous_coefficients(bnsym.activation("relu"))
    with pytest.raises(PrecisionError, match=r"did not converge to 20 digits.*numerical rank 5 < 6.*dps=None"):
        joint.cross_block(coefficients, s.tolist(), batch_size=4, eps=0, dps=20, working_dps=25, direction=ds.tolist())
    with pytest.raises(PrecisionError) as info:  # a full-rank pair's failure keeps the plain message
        joint.cross_block(coefficients, _pair(16)[0].tolist(), batch_size=4, eps=0, dps=20, working_dps=25,
                          direction=_pair(16)[1].tolist())
    assert "rank" not in str(info.value)
