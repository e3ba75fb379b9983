r"""The joint Gram map of pairs of batches, float64 and vectorised over pairs (docs/theory.md section 14).

Two batches ``p, q`` of ``B`` inputs go through the same layer; per neuron ``(h_p, h_q) ~
N(0, sigma_w^2 Sigma)`` (``Sigma`` the ``2B x 2B`` joint Gram matrix) and batch norm acts within
each batch.  For ``phi`` positively homogeneous of degree ``alpha`` (integer here) at ``beta = 0``
the cross block ``C_ab = E[B_phi(h_p)_a B_phi(h_q)_b]`` is, with ``S = sigma_w^2 (G+G) Sigma (G+G)``
and ``1/(|y|^2 + B eps)^(alpha/2) = int_0^inf s^(alpha/2-1) e^{-s(|y|^2 + B eps)} ds / Gamma(alpha/2)``
once per batch,

    C = B^alpha / Gamma(alpha/2)^2 int_0^1 dw (w (1-w))^(alpha/2-1) int_0^inf d rho rho^(alpha-1)
        e^{-B eps rho} det(I + 2 rho D_w S)^(-1/2) [V_phi(K)]_{pq block},
    K = S (I + 2 rho D_w S)^(-1),   D_w = diag(w I_B, (1-w) I_B)

(the two Schwinger parameters ``s = rho w``, ``t = rho (1-w)``).  With ``S = F F^T`` and
``F^T D_w F = V diag(nu) V^T`` (one eigendecomposition per ``w`` node), ``det = prod(1 + 2 rho nu)``
and ``K = (F V) diag(1/(1 + 2 rho nu)) (F V)^T``: no inverse of a singular matrix is formed.
``V_phi`` is the arc-cosine kernel of :mod:`bnsym.numerics.arccos`.

The derivative along a change ``dS`` of the cross block (the neural tangent kernel's backward
term, by Price's theorem ``E[J_p Theta J_q^T] = dC[Theta]``) differentiates under the integral:
``dK = Y dS Y^T`` with ``Y = I - 2 rho K D_w`` and ``d log det = 2 rho tr(D_w dS Y^T)``.  The same
formula on the duplicated pair ``Sigma = [[A, A], [A, A]]`` gives the single-batch map ``V(A)``
and the within-batch backward term.

High precision (:func:`cross_block`): the same double integral in mpmath for one pair, both rule
levels raised together until two consecutive levels agree to the digits asked.

Quadrature: tanh-sinh in ``w`` (its end points carry ``(w(1-w))^(alpha/2-1)`` and non-analytic
terms) and in ``x`` with ``rho = c (1 + x)/(1 - x)``, ``c = 1/(2 geometric mean of nu + B eps)``.  Cost per
pair and node pair: ``O(B^2 r)`` for the values, ``O(B^3)`` more with the derivative
(``r = rank S``), plus one ``2B x 2B`` eigendecomposition per ``w`` node.
"""

from __future__ import annotations

import math
from functools import cache

import mpmath
import numpy as np

from bnsym.errors import BnsymInputError, PrecisionError
from bnsym.numerics import arccos, gaussian_kernels
from bnsym.numerics.quadrature import SIZES, schwinger_scale, tanh_sinh
from bnsym.numerics.sphere import converge, parts_agree

#: Rule levels (indices into :data:`bnsym.numerics.quadrature.SIZES`) of the float64 path, for ``w`` and ``rho``.
FLOAT_LEVELS = (3, 5)

#: Quadrature nodes whose contribution is bounded by this fraction of the largest are skipped.
PRUNE = 1e-17

#: Floats of workspace per chunk of pairs.
CHUNK_FLOATS = 2**23


@cache
def _rule(n: int):
    return tuple(np.array([float(t) for t in part]) for part in tanh_sinh(n, 17))


def centred_pairs(gram, batch_size, pairs, sigma_w=1.0):
    """``S = sigma_w^2 (G+G) [[Sigma_pp, Sigma_pq], [Sigma_qp, Sigma_qq]] (G+G)`` for each ``(p, q)`` in ``pairs`` (``P x 2B x 2B``)."""
    b = batch_size
    blocks = gram.reshape(gram.shape[0] // b, b, -1, b).transpose(0, 2, 1, 3)  # k, k, b, b
    blocks = blocks - blocks.mean(axis=2, keepdims=True)
    blocks = blocks - blocks.mean(axis=3, keepdims=True)
    p, q = np.array([pq[0] for pq in pairs]), np.array([pq[1] for pq in pairs])
    top = np.concatenate([blocks[p, p], blocks[p, q]], axis=2)
    bottom = np.concatenate([blocks[q, p], blocks[q, q]], axis=2)
    return sigma_w**2 * np.concatenate([top, bottom], axis=1)


def cross_map(coefficients, s, direction=None, *, batch_size, eps=0.0, levels=FLOAT_LEVELS):
    """``(C, dC)`` for each pair: the ``B x B`` cross blocks and (if ``direction`` is given) their
    derivative along ``direction`` (``P x 2B x 2B``, nonzero off its diagonal blocks only).

    ``s``: ``P x 2B x 2B`` centred joint covariances (:func:`centred_pairs`); ``coefficients``:
    ``(a_+, a_-, alpha)`` with integer ``alpha >= 1``; ``eps >= 0``.  ``dC`` is None without a direction.
    """
    b = batch_size
    pairs = s.shape[0]
    per_pair = SIZES[levels[1]] * (4 * b) ** 2 * (3 if direction is not None else 1)
    chunk = max(1, CHUNK_FLOATS // per_pair)
    out_c = np.empty((pairs, b, b))
    out_d = np.empty((pairs, b, b)) if direction is not None else None
    for lo in range(0, pairs, chunk):
        hi = min(pairs, lo + chunk)
        c, d = _cross_chunk(coefficients, s[lo:hi], None if direction is None else direction[lo:hi], b, eps, levels)
        out_c[lo:hi] = c
        if d is not None:
            out_d[lo:hi] = d
    return out_c, out_d


def _cross_chunk(coefficients, s, ds, b, eps, levels):
    alpha = int(coefficients[2])
    duplicated = np.all(s[:, :b, :b] == s[:, :b, b:], axis=(1, 2))  # the pair (p, p): centred_pairs copies the block
    # B_phi depends on y / sqrt(|y|^2 / B + eps), so C(S, eps) = C(S / c, eps / c) and the slope along dS is the
    # slope at S / c along dS / c: each pair is brought to unit scale by a power of two c (exact), so that inputs
    # of any magnitude neither overflow nor underflow the rule (measured: inputs of 1e100 or 1e-100 at eps = 0
    # gave NaN weights before)
    _, exponent = np.frexp(np.einsum("pii->pi", s).max(axis=1))
    unit = np.ldexp(1.0, -np.clip(exponent, -1000, 1000))
    s = s * unit[:, None, None]
    ds = None if ds is None else ds * unit[:, None, None]
    eps = eps * unit
    lam, q = np.linalg.eigh(s)
    f = q * np.sqrt(np.clip(lam, 0, None))[:, None, :]  # S = F F^T
    fp, fq = f[:, :b], f[:, b:]
    hp, hq = np.swapaxes(fp, 1, 2) @ fp, np.swapaxes(fq, 1, 2) @ fq
    diagonal = np.einsum("pii->pi", s)
    bound = (diagonal[:, :b].max(axis=1) * diagonal[:, b:].max(axis=1)) ** (alpha / 2)
    w_left, w_right, w_weights = _rule(SIZES[levels[0]])
    x_left, x_right, x_weights = _rule(SIZES[levels[1]])
    value = np.zeros((s.shape[0], b, b))
    slope = np.zeros_like(value) if ds is not None else None
    eye = np.eye(2 * b)
    for wl, wr, wq in zip(w_left, w_right, w_weights):
        w, w1 = wl / 2, wr / 2
        if w < 1e-200 or w1 < 1e-200:
            continue
        weight_w = wq / 2 * (w * w1) ** (alpha / 2 - 1)
        nu, v = np.linalg.eigh(w * hp + w1 * hq)
        nu = np.clip(nu, 0, None)
        good = nu > 1e-13 * nu[:, -1:]
        # the rho rule's middle, quadrature.schwinger_scale's 1/(2 geomean + B eps) for each pair of the chunk:
        # where e^{-B eps rho} cuts off first (inputs far below sqrt(eps)) every node underflowed without it
        scale = 1 / (2 * np.exp(np.where(good, np.log(np.where(good, nu, 1)), 0).sum(axis=1) / good.sum(axis=1)) + b * eps)
        rho = scale[:, None] * (x_left / x_right)[None, :]
        g = 1 / (1 + 2 * rho[:, :, None] * nu[:, None, :])
        log_det = np.log1p(2 * rho[:, :, None] * nu[:, None, :]).sum(axis=-1)
        weight = (weight_w * x_weights[None, :] * 2 * scale[:, None] / x_right[None, :] ** 2
                  * rho ** (alpha - 1) * np.exp(-b * eps[:, None] * rho - 0.5 * log_det))
        # drop nodes whose weight times the bound (S_aa S_bb)^(alpha/2) on |V_phi| is below PRUNE of the largest
        keep = (weight * bound[:, None]).max(axis=0) > PRUNE * (weight * bound[:, None]).max()
        weight, rho, g = weight[:, keep], rho[:, keep], g[:, keep]
        fv = f @ v
        fvp, fvq = fv[:, :b], fv[:, b:]
        k_pp = g @ np.swapaxes(fvp**2, 1, 2)  # p, n, a (stacked matmuls: faster than einsum, measured)
        k_qq = g @ np.swapaxes(fvq**2, 1, 2)
        k_pq = (fvp[:, None] * g[:, :, None, :]) @ np.swapaxes(fvq, 1, 2)[:, None]
        if duplicated.any():  # an input paired with itself has correlation exactly 1 (rounding gave arccos an error
            # of sqrt(1e-16): 3e-8 relative on the NTK's within-batch diagonal, in the degree-0 kernel of phi')
            index = np.arange(b)
            for i in np.flatnonzero(duplicated):
                k_pq[i][:, index, index] = np.sqrt(k_pp[i] * k_qq[i])
        kernel = arccos.kernel_and_gradient(coefficients, k_pp[..., :, None], k_qq[..., None, :], k_pq, gradient=ds is not None)
        if ds is None:
            value += (weight[:, None, :] @ kernel.reshape(kernel.shape[0], kernel.shape[1], -1)).reshape(value.shape)
            continue
        v_ab, d_aa, d_bb, d_ab = kernel
        k_full = (fv[:, None] * g[:, :, None, :]) @ np.swapaxes(fv, 1, 2)[:, None]
        d = np.concatenate([np.full(b, w), np.full(b, w1)])
        y = eye - 2 * rho[:, :, None, None] * k_full * d
        y_ds = y @ ds[:, None]
        dk_pq = y_ds[:, :, :b] @ np.swapaxes(y[:, :, b:], 2, 3)
        dk_pp = np.einsum("pnax,pnax->pna", y_ds[:, :, :b], y[:, :, :b])
        dk_qq = np.einsum("pnax,pnax->pna", y_ds[:, :, b:], y[:, :, b:])
        d_log_det = 2 * rho * np.einsum("x,pxy,pnxy->pn", d, ds, y)
        dv = d_aa * dk_pp[..., :, None] + d_bb * dk_qq[..., None, :] + d_ab * dk_pq - 0.5 * d_log_det[..., None, None] * v_ab
        value += np.einsum("pn,pnab->pab", weight, v_ab)
        slope += np.einsum("pn,pnab->pab", weight, dv)
    prefactor = b**alpha / math.gamma(alpha / 2) ** 2
    return prefactor * value, (prefactor * slope if slope is not None else None)



def cross_block(coefficients, s, *, batch_size, eps, dps: int, working_dps: int, scale=None, direction=None,
                slope_scale=None):
    """``(C, dC, error)``: the ``B x B`` cross block of one pair to ``dps`` digits of its largest entry, in
    mpmath (lists of lists), by the two-parameter formula of the module docstring written in the
    Schwinger parameters themselves,

        C = B^alpha / Gamma(alpha/2)^2 int_0^inf int_0^inf (s t)^(alpha/2-1) e^{-B eps (s + t)}
            det(M)^(-1/2) [V_phi(F M^{-1} F^T)]_{pq block} ds dt,   M = I + 2 (s H_p + t H_q),

    ``S = F F^T``, ``H_p = F_p^T F_p``, ``H_q = F_q^T F_q`` (``F_p``, ``F_q`` the rows of each batch):
    each parameter is mapped by ``s = c_p (1 + x)/(1 - x)`` with its own scale
    ``c_p = 1/(2 geometric mean of the eigenvalues of H_p + B eps)`` and integrated by tanh-sinh.  (The
    float64 path's ``(w, rho)`` form needs far more nodes near ``w = 0, 1``, where the two batches'
    scales separate: measured at B = 4, 10 digits took 128 x 128 nodes against 32 x 32 here.)
    ``M`` is diagonalised in ``t`` once per ``s`` node (:func:`_factor_at`), so that each ``(s, t)``
    node costs only dot products of length ``r`` (measured at B = 4, 8 digits: 9.9 s against 15.8 s
    with a Cholesky factorisation and a triangular solve at every node).

    ``s``: the pair's centred ``2B x 2B`` covariance (mpmath matrix or nested list), each batch's
    block nonzero; ``coefficients``: ``(a_+, a_-, alpha)``, any ``alpha > 0``.  The two rules (the
    same size) start at the first size ``>= 1.5 dps`` and are raised (at ``working_dps + 15``
    digits) by the engine's one convergence loop (:func:`bnsym.numerics.sphere.converge`) until
    two consecutive levels agree to ``10^-dps / 10`` of ``scale`` (default: the block's largest
    entry; the caller passes the layer's, so that a vanishing block does not ask for digits of
    nothing); the difference is the error.  :class:`PrecisionError` past 192 nodes each.  Nodes whose weight bound ``min(B_s W_t, W_s B_t)``
    (``W_s = w_s s^(alpha/2-1) e^{-B eps s}``, ``B_s = W_s det(I + 2 s H_p)^(-1/2)``: ``det M`` exceeds
    both one-parameter determinants) is below ``10^-(dps + 5)`` of ``max B_s max B_t`` are
    skipped (there ``M`` is too ill-conditioned for the working precision anyway).  Cost per level ``n`` factorisations of ``r x r`` (``r = rank S``), ``n^2 B^2`` dot products of
    length ``r`` and ``n^2 B^2`` kernel values: seconds at B = 4, 15 digits.

    ``direction`` (a ``2B x 2B`` symmetric ``dS``, or None): ``dC`` is then the derivative of ``C``
    along it, by the same rule differentiated under the integral (module docstring:
    ``dK = Y dS Y^T``, ``Y = I - 2 K D``, ``d log det M = 2 tr(D dS Y^T)``, ``D = diag(s I_B, t I_B)``,
    the kernel's partial derivatives from
    :func:`~bnsym.numerics.gaussian_kernels.homogeneous_kernel_gradient`), converged together with
    ``C`` to ``10^-dps / 10`` of ``slope_scale`` (default: the largest entry of ``dC``); the error
    is then the sum of the two differences, entrywise (a bound for ``C + dC`` too).  Without a direction
    ``dC`` is None.  ``direction`` must vanish on its diagonal blocks (only the cross block is a
    direction of this formula: :class:`BnsymInputError` otherwise).
    Cost with a direction: ``O(B^3)`` more per node and twice the kernel values.
    """
    b = batch_size
    working_dps += 15  # M's condition grows with s and t: measured at B = 4, 25 working digits left 4e-17 of noise
    with mpmath.workdps(working_dps):
        s = mpmath.matrix(s)
        lam, q = mpmath.eigsy(s)
        top = max(abs(v) for v in lam)
        keep = [i for i in range(2 * b) if lam[i] > top * mpmath.mpf(10) ** (-(working_dps - 5))]
        f = [[q[a, i] * mpmath.sqrt(lam[i]) for i in keep] for a in range(2 * b)]  # S = F F^T
        r = len(keep)
        h = [[[mpmath.fsum(f[a][i] * f[a][j] for a in rows) for j in range(r)] for i in range(r)]
             for rows in (range(b), range(b, 2 * b))]
        alpha = coefficients[2]
        prefactor = mpmath.mpf(b) ** alpha / mpmath.gamma(alpha / 2) ** 2
        tol = mpmath.mpf(10) ** -dps

        ds = None if direction is None else [[mpmath.mpf(direction[i][j]) if isinstance(direction, list) else
                                               mpmath.mpf(direction[i, j]) for j in range(2 * b)] for i in range(2 * b)]
        if ds is not None and any(ds[i][j] for i in range(2 * b) for j in range(2 * b) if (i < b) == (j < b)):
            raise BnsymInputError("direction: the cross block's derivative takes a direction [[0, T], [T^T, 0]] "
                                  "(its diagonal blocks must be zero)")

        def level_values(level):
            sums = _cross_level(coefficients, f, h, b, eps, level, dps, working_dps, ds)
            return [[[prefactor * v for v in row] for row in part] for part in sums]

        def judge(current, previous):  # the error bounds C + dC's too
            error = parts_agree(current, previous, tol / 10, (scale, slope_scale))
            return None if error is None else (current[0], current[1] if ds is not None else None, error)

        start = next(i for i, n in enumerate(SIZES) if n >= 1.5 * dps)
        failure = f"the two-parameter Laplace integral did not converge to {dps} digits (B={b})"
        try:
            return converge(level_values, judge, ("cross block", b, dps, ds is not None), start, SIZES.index(192), failure)
        except PrecisionError as exc:
            rank = leaves_range(s, ds) if ds is not None else None
            if rank is None or rank >= 2 * b - 2:
                raise
            raise PrecisionError(
                f"{exc}; the pair's centred Gram matrix has numerical rank {rank} < {2 * b - 2} (as for inputs in "
                f"fewer than {2 * b - 2} dimensions) and the NTK direction leaves its range, where the slope's integral "
                "converges slowly (docs/theory.md section 14.4): ask for fewer digits (15 reach such pairs at "
                "B = 4) or use the float64 path (dps=None)") from None


def leaves_range(s, direction, rank_rtol=1e-10):
    """``rank S`` when the symmetric ``direction`` has a part outside the range of ``S``, else ``None``.

    The range is spanned by the eigenvectors of ``S`` whose eigenvalues exceed ``rank_rtol`` times the
    largest (rounding of the inputs leaves the others); the direction leaves it when
    ``|dS - P dS P| > 10^-6 |dS|`` (Frobenius norms, ``P`` the projection on the range).  Along such a
    direction the NTK's slope integral converges slowly (docs/theory.md section 14.4).  Both are
    ``n x n`` mpmath matrices or nested lists; cost ``O(n^3)``.
    """
    s, ds = mpmath.matrix(s), mpmath.matrix(direction)
    lam, q = mpmath.eigsy(s)
    top = max(abs(v) for v in lam)
    keep = [i for i in range(s.rows) if lam[i] > top * mpmath.mpf(rank_rtol)]
    basis = mpmath.matrix([[q[a, i] for i in keep] or [0] for a in range(s.rows)])
    proj = basis * basis.T
    outside = ds - proj * ds * proj
    if mpmath.mnorm(outside, "f") ** 2 > mpmath.mpf(10) ** -12 * mpmath.mnorm(ds, "f") ** 2:
        return len(keep)
    return None


def _parameter_rule(hm, alpha, b, eps, level, working_dps):
    """Nodes ``(s, W, W det(I + 2 s H)^(-1/2))`` of one Schwinger parameter, ``W = w_s s^(alpha/2-1) e^{-B eps s}``
    (see :func:`cross_block`)."""
    nu = [max(x, mpmath.mpf(0)) for x in mpmath.eigsy(mpmath.matrix(hm))[0]]
    if not max(nu) > 0:
        raise BnsymInputError("inputs: a batch of the pair has identical rows (G Sigma G = 0 in its block); "
                              "the high-precision cross map needs a nonzero centred Gram matrix in every batch")
    good = [x for x in nu if x > max(nu) * mpmath.mpf(10) ** -8]  # the scale only steers the rule
    # 1/(2 geomean + B eps): where e^{-B eps s} cuts off first (inputs far below sqrt(eps)) the rule must
    # sit there, or every node underflows and the cross block comes out 0 (1e-44981794588485683291 for 2.6e-58)
    c = schwinger_scale(good, b * eps)
    nodes = []
    for left, right, weight in zip(*tanh_sinh(SIZES[level], working_dps)):
        x = c * left / right
        if x == 0:
            continue
        w = weight * 2 * c / (right * right) * x ** (alpha / 2 - 1) * mpmath.exp(-b * eps * x)
        nodes.append((x, w, abs(w) / mpmath.sqrt(mpmath.fprod(1 + 2 * x * v for v in nu))))
    return nodes


def _cross_level(coefficients, f, h, b, eps, level, dps, working_dps, ds=None):
    """``(C, dC)`` sums at one rule level (``dC`` only with a direction ``ds``; :func:`cross_block`)."""
    alpha = coefficients[2]
    rule_s, rule_t = (_parameter_rule(hm, alpha, b, eps, level, working_dps) for hm in h)
    # det(M) >= det(I + 2 s H_p) and >= det(I + 2 t H_q): a node's weight is at most min(B_s W_t, W_s B_t)
    floor = mpmath.mpf(10) ** -(dps + 5) * max(n[2] for n in rule_s) * max(n[2] for n in rule_t)
    sums = [[mpmath.mpf(0)] * b for _ in range(b)]
    slopes = [[mpmath.mpf(0)] * b for _ in range(b)]
    n = 2 * b
    needed = [(i, j) for i in range(n) for j in range(i, n)] if ds is not None else \
        [(a, a) for a in range(n)] + [(a, b + e) for a in range(b) for e in range(b)]
    for s_, ws, bs in rule_s:
        nodes = [(t_, wt) for t_, wt, bt in rule_t if min(bs * abs(wt), abs(ws) * bt) > floor]
        if not nodes:
            continue
        det_s, g_rows, mu = _factor_at(s_, h, f)
        products = {key: [x * y for x, y in zip(g_rows[key[0]], g_rows[key[1]])] for key in needed}
        for t_, wt in nodes:
            factors = [1 / (1 + 2 * t_ * m) for m in mu]
            weight = ws * wt * mpmath.sqrt(mpmath.fprod(factors)) / det_s      # det(M)^(-1/2)
            k = {key: mpmath.fdot(products[key], factors) for key in needed}       # K = F M^-1 F^T
            if ds is None:
                for a in range(b):
                    for e in range(b):
                        sums[a][e] += weight * gaussian_kernels.homogeneous_kernel(coefficients, k[a, a], k[b + e, b + e],
                                                                                   k[a, b + e])
                continue
            k = [[k[min(i, j), max(i, j)] for j in range(n)] for i in range(n)]
            d = [2 * s_] * b + [2 * t_] * b
            yy = [[(1 if i == j else 0) - k[i][j] * d[j] for j in range(n)] for i in range(n)]  # Y = I - 2 K D
            # dS = [[0, T], [T^T, 0]]: Y dS Y^T = A Y_q^T + (A Y_q^T)^T with A = Y_p T (Y_p, Y_q: Y's columns of each batch)
            a_t = [[mpmath.fdot(yy[i][:b], [ds[c][b + e] for c in range(b)]) for e in range(b)] for i in range(n)]
            def half(i, j):  # (A Y_q^T)_ij
                return mpmath.fdot(a_t[i], yy[j][b:])

            dk = [[half(i, j) + half(j, i) for j in range(b, n)] for i in range(b)]       # the p-q block of dK
            diagonal = [2 * half(i, i) for i in range(n)]
            d_log_det = mpmath.fsum(d[i] * mpmath.fdot(ds[i], yy[i]) for i in range(n))  # 2 tr(D dS Y^T)
            for a in range(b):
                for e in range(b):
                    v, d_aa, d_ee, d_ae = gaussian_kernels.homogeneous_kernel_gradient(
                        coefficients, k[a][a], k[b + e][b + e], k[a][b + e])
                    sums[a][e] += weight * v
                    slopes[a][e] += weight * (d_aa * diagonal[a] + d_ee * diagonal[b + e] + d_ae * dk[a][e]
                                              - d_log_det * v / 2)
    return sums, slopes


def _factor_at(s, h, f):
    """``(det(I + 2 s H_p)^(1/2), G, mu)`` with ``M = I + 2 s H_p + 2 t H_q`` diagonalised in ``t``:
    ``I + 2 s H_p = L L^T`` (Cholesky), ``L^-1 H_q L^-T = U diag(mu) U^T``, so that
    ``det M = det(L)^2 prod(1 + 2 t mu)`` and ``F M^-1 F^T = G diag(1/(1 + 2 t mu)) G^T``,
    ``G = F L^-T U`` (rows ``G[a]``).  One factorisation per ``s`` node instead of a Cholesky per
    ``(s, t)`` node; cost ``O(r^3)`` per ``s`` node."""
    r = len(f[0])
    a = mpmath.matrix([[(1 if i == j else 0) + 2 * s * h[0][i][j] for j in range(r)] for i in range(r)])
    low_inverse = mpmath.inverse(mpmath.cholesky(a))
    e = low_inverse * mpmath.matrix(h[1]) * low_inverse.T
    mu, u = mpmath.eigsy((e + e.T) / 2)
    x = low_inverse.T * u
    g = mpmath.matrix(f) * x
    det_root = 1 / mpmath.fprod(low_inverse[i, i] for i in range(r))
    return det_root, [[g[a, i] for i in range(r)] for a in range(g.rows)], [max(m, mpmath.mpf(0)) for m in mu]
