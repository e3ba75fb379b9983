"""The sampled kernel path (``bnsym.kernel(..., method="sampling")``, docs/theory.md section 14.5)
against exact references:

* ReLU: the two-parameter Laplace path (exact to 1e-6), NNGP and NTK at depth 3;
* gelu at beta = 0 and tanh at beta = 0.3 (no exact multi-batch path): one layer from the joint fixed point
  of two batches, whose blocks are the engine's ``q*``, ``c*`` (:func:`bnsym.fixed_point`) and
  ``c_x`` (:func:`bnsym.cross_batch`), so the layer must return them.

Statistical design: each comparison is a Student t statistic over ``REPLICATES`` independent
calls (seeds ``seed(case + i)``) of a linear functional of the kernel (block means, one entry),
Bonferroni-adjusted over the comparisons of the test at a false-failure probability of 1e-4 per
test (:func:`statistical.t_sigmas`).  Bias: iterating a sampled map has an ``O(1/samples)`` bias
(the map's curvature times the per-layer variance, about ``1e-4`` of the entries at 5000 samples),
far below the standard errors compared (about ``2e-3``); at the fixed point after one layer there is none.
"""

import math

import numpy as np
import pytest

import bnsym
from statistical import seed, t_sigmas

REPLICATES = 12
B = 8


def _functionals(gram, k):
    """Mean within-batch diagonal, mean within-batch off-diagonal, mean cross-block entry, entry (0, B + 1)."""
    blocks = gram.reshape(k, B, k, B)
    within = np.array([blocks[p, :, p, :] for p in range(k)])
    diag = np.mean([np.diag(w) for w in within])
    off = (within.sum() - np.trace(within, axis1=1, axis2=2).sum()) / (k * B * (B - 1))
    cross = np.mean([blocks[p, :, q, :] for p in range(k) for q in range(k) if p != q])
    return np.array([diag, off, cross, gram[0, B + 1]])


def _replicated(activation, x, depth, case, **kw):
    values = [bnsym.kernel(activation, x, depth, batch_size=B, method="sampling", chains=4, seed=seed(case + i), **kw)
              for i in range(REPLICATES)]
    return values


def _t_check(samples, exact, comparisons):
    samples = np.asarray(samples)
    mean, err = samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(len(samples))
    bound = t_sigmas(len(samples) - 1, comparisons=comparisons)
    assert np.all(np.abs(mean - exact) <= bound * err), (mean, exact, err, bound)


@pytest.mark.slow
@pytest.mark.statistical
def test_sampled_relu_kernels_agree_with_the_laplace_path():
    """ReLU, 2 batches of 8 (3 took 5 s more for the same within and cross functionals), depth 3, NNGP
    and NTK (5000 samples per layer): 8 comparisons."""
    x = np.random.default_rng(seed(700)).standard_normal((2 * B, 10))
    samples_nngp, samples_ntk = [], []
    for k_sampled in _replicated("relu", x, 3, 710, kind="ntk", samples=5000):
        samples_nngp.append(_functionals(k_sampled.nngp[-1], 2))
        samples_ntk.append(_functionals(k_sampled.ntk[-1], 2))
    exact = bnsym.kernel("relu", x, 3, batch_size=B, kind="ntk")
    assert exact.error < 1e-5
    _t_check(samples_nngp, _functionals(exact.nngp[-1], 2), comparisons=8)
    _t_check(samples_ntk, _functionals(exact.ntk[-1], 2), comparisons=8)


@pytest.mark.statistical
@pytest.mark.parametrize("activation, beta", [("gelu", 0), ("tanh", "0.3")])
def test_sampled_layer_keeps_the_joint_fixed_point(activation, beta):
    """Inputs whose Gram matrix is the joint fixed point of two batches (``Sigma*`` within,
    ``c_x 11^T`` across, from the engine at 12 digits): one sampled layer (20000 samples) returns
    it, on the four functionals (the fourth, entry (0, B + 1), is ``c_x``)."""
    fp = bnsym.fixed_point(activation, B, beta=beta, dps=12)
    cx = float(bnsym.cross_batch(activation, B, beta=beta, dps=12).c_x.value)
    q, c = float(fp.q), float(fp.c)
    within = (q - c) * np.eye(B) + c
    gram = np.block([[within, np.full((B, B), cx)], [np.full((B, B), cx), within]])
    values, vectors = np.linalg.eigh(gram)
    x = vectors * np.sqrt(np.maximum(values, 0) * 2 * B)  # x x^T / d = gram with d = 2B
    assert np.allclose(x @ x.T / (2 * B), gram, atol=1e-12)
    samples = [_functionals(k.nngp[1], 2) for k in _replicated(activation, x, 1, 720, beta=beta, samples=20000)]
    _t_check(samples, np.array([q, c, cx, cx]), comparisons=4)
