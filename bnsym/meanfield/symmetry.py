r"""Batch symmetry breaking: where the BSB1 point is unstable, the point the dynamics reach.

docs/theory.md section 6: the BSB1 fixed point is locally stable when the forward
eigenvalues on ``L`` and ``M`` (:func:`bnsym.spectrum`) are below 1.  Where
one exceeds 1 the Gram matrix leaves the BSB1 family.  :func:`symmetry_breaking`

1. computes the spectrum (the verdict);
2. if unstable, iterates the mean-field map (:func:`bnsym.meanfield.laplace.laplace_map`
   for positively homogeneous ``phi`` at ``beta = 0`` and any ``eps >= 0``, docs/theory.md
   sections 7 and 15; the map is exact there) from ``Sigma* + delta P``, ``P`` a random direction in ``L + M``,
   until successive layers agree to ``tol`` or ``max_depth`` layers;
3. reads the block structure of the limit: the batch is split at the largest
   gap of the sorted diagonal into two groups (``k`` and ``B - k`` samples);
   the matrix is BSB2 when it is constant on the diagonal and off-diagonal
   of each block and across (``block_error`` measures the departure);
4. refines the BSB2 point by Newton's method on its five entries
   ``(q1, c11, q2, c22, c12)`` (the map preserves the BSB2 family by
   symmetry; the Jacobian is a central finite difference), and reports the
   residual ``||V(Sigma) - Sigma||_F`` and the eigenvalues of the map's
   Jacobian within the BSB2 family (the in-family stability).

Only the exact (Laplace) map is used for the search; other activations get
the verdict and no search (``method="verdict only"``).  Cost: a few hundred
layers of the Laplace map (a few ms to 0.5 s each) plus 11 per Newton step and one per
step of the iteration that follows Newton where it stalls (:func:`bsb2_point`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import numpy as np

from bnsym import validation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.meanfield.laplace import laplace_applies, laplace_map
from bnsym.meanfield.linearization import Spectrum, spectrum_from_settings
from bnsym.meanfield.results import Settings, make_settings
from bnsym.subspaces import subspace_parts
from bnsym.text import ShownAsText, table_text


@dataclass(frozen=True, eq=False)
class BlockFixedPoint:
    """A two-block (BSB2) fixed point: block sizes, members and entries.

    ``q = (q1, q2)`` diagonal entries, ``c_within = (c11, c22)``,
    ``c_across = c12``; ``residual = ||V(Sigma) - Sigma||_F``;
    ``block_error``: largest departure of the iterated limit from the block
    pattern before refinement; ``converged``: whether the iteration met its
    tolerance within ``max_depth`` (if not, the limit may be a slow saddle);
    ``family_eigenvalues``: eigenvalues of the Jacobian of the map restricted
    to the BSB2 family; ``full_radius``: spectral radius of the Jacobian on all
    of ``G Sym(B) G`` (power iteration on central differences), so ``stable``
    says whether the dynamics can settle there.
    """

    sizes: tuple
    members: tuple
    q: tuple
    c_within: tuple
    c_across: float
    residual: float
    block_error: float
    layers: int
    converged: bool = True
    family_eigenvalues: tuple = ()
    full_radius: float | None = None
    gram: np.ndarray = field(default=None, repr=False)

    @property
    def stable(self):
        """True when the map's Jacobian at this point (on ``G Sym(B) G``) has spectral radius < 1."""
        return None if self.full_radius is None else self.full_radius < 1

    def as_dict(self) -> dict:
        return {
            "sizes": list(self.sizes),
            "members": [list(m) for m in self.members],
            "q": list(self.q),
            "c_within": list(self.c_within),
            "c_across": self.c_across,
            "residual": self.residual,
            "block_error": self.block_error,
            "layers": self.layers,
            "converged": self.converged,
            "full_radius": self.full_radius,
            "stable": self.stable,
            "family_eigenvalues": [complex(v).real if abs(complex(v).imag) < 1e-14 else str(complex(v)) for v in self.family_eigenvalues],
        }


@dataclass(frozen=True, eq=False)
class SymmetryBreaking(ShownAsText):
    """The verdict at one setting and, if the BSB1 point is unstable, the BSB2 point reached."""

    settings: Settings
    spectrum: Spectrum
    broken: object  # True, False or None (undecided)
    fixed_point: BlockFixedPoint | None
    method: str
    note: str = ""

    def __str__(self) -> str:
        """The spectrum's text, then the BSB2 point reached or why there was no search (what
        ``bnsym symmetry-breaking`` prints)."""
        point = self.fixed_point
        if point is None:
            return f"{self.spectrum}\nno BSB2 search ({self.method}): {self.note}"
        rows = [("sizes", str(point.sizes)), ("q", str(point.q)), ("c within", str(point.c_within)),
                ("c across", f"{point.c_across:.10g}"), ("residual", f"{point.residual:.2g}"),
                ("full-space radius", "" if point.full_radius is None else f"{point.full_radius:.6g}"),
                ("stable", str(point.stable))]
        return f"{self.spectrum}\n{table_text(rows, header=('BSB2 point', 'value'))}"

    def as_dict(self) -> dict:
        return {
            "spectrum": self.spectrum.as_dict(),
            "broken": self.broken,
            "method": self.method,
            "note": self.note,
            "bsb2": None if self.fixed_point is None else self.fixed_point.as_dict(),
        }


def symmetry_breaking(
    activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=12, max_depth=400, tol=1e-9, delta=1e-3, seed=0,
    sizes=None, power_steps=40,
) -> SymmetryBreaking:
    r"""Is batch symmetry broken at this setting, and where do the dynamics settle?

    Arguments as for :func:`bnsym.spectrum` (any ``eps >= 0``; ``sigma_w > 0`` matters only at
    ``eps > 0``, through ``eps / sigma_w^2``).  ``max_depth``:
    most layers iterated; ``tol``: change per layer (Frobenius, relative to
    ``||Sigma||``) taken as converged; ``delta``: size of the initial
    perturbation of ``Sigma*`` (random direction in ``L + M``, ``seed``);
    ``sizes``: optionally ``k``, to start instead from the BSB2 split
    ``(k, B - k)`` (then the dynamics stay in that family); ``power_steps``:
    power iterations for the full-space stability of the point found (0: skip).

    Returns :class:`SymmetryBreaking`.  Raises :class:`~bnsym.errors.BnsymError`
    if the iteration settles on a matrix that is not BSB2 (the message says
    what it found).
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps)
    b = settings.batch_size
    if b == math.inf or b < 4:
        raise BnsymInputError(f"batch_size must be a finite integer >= 4, got {batch_size!r}")
    max_depth = validation.integer(max_depth, name="max_depth", minimum=1)
    power_steps = validation.integer(power_steps, name="power_steps", minimum=0)  # 0: no stability estimate
    tol = validation.real_float(tol, name="tol", positive=True)
    delta = validation.real_float(delta, name="delta", positive=True)
    if delta >= 1:
        raise BnsymInputError(f"delta must be < 1 (a relative perturbation of Sigma*), got {delta!r}")
    seed = validation.seed(seed)
    if sizes is not None:
        sizes = validation.integer(sizes, name="sizes", minimum=1)
        if sizes >= b:
            raise BnsymInputError(f"sizes must be an integer k with 1 <= k < batch_size = {b}, got {sizes!r}")
    spec = spectrum_from_settings(settings)
    stable = spec.stable
    broken = None if stable is None else not stable
    if not broken:
        return SymmetryBreaking(settings, spec, broken, None, "verdict only", "BSB1 is locally stable" if broken is False else "undecided")
    if not laplace_applies(settings):
        return SymmetryBreaking(
            settings, spec, broken, None, "verdict only",
            "the BSB2 search needs the exact (Laplace) map: positively homogeneous phi at beta = 0",
        )
    fp = spec.fixed_point
    star = fp.array()
    start = star + delta * _start_direction(b, seed, sizes) * np.linalg.norm(star)
    limit, layers, converged = _iterate(settings, start, max_depth, tol)
    point = bsb2_point(settings, limit, layers, converged=converged, power_steps=power_steps)
    return SymmetryBreaking(settings, spec, True, point, "laplace")


def mean_field_map(settings: Settings, gram: np.ndarray) -> np.ndarray:
    """One layer of the exact (Laplace) mean-field map on a NumPy Gram matrix."""
    with mpmath.workdps(settings.working_dps):
        value, _ = laplace_map(settings, mpmath.matrix(gram.tolist()))
    out = np.array(value.tolist(), dtype=float)
    return (out + out.T) / 2


def block_structure(gram: np.ndarray):
    """Split the batch at the largest gap of the sorted diagonal.

    Returns ``(members, entries, block_error)``: the two index groups (smaller
    diagonal first), ``(q1, c11, q2, c22, c12)`` as block means, and the largest
    departure of ``gram`` from that block pattern relative to ``max |gram|``.
    """
    b = gram.shape[0]
    diag = np.diag(gram)
    order = np.argsort(diag)
    gaps = np.diff(diag[order])
    cut = int(np.argmax(gaps)) + 1
    groups = (tuple(sorted(order[:cut].tolist())), tuple(sorted(order[cut:].tolist())))
    entries = _block_means(gram, groups)
    pattern = bsb2_matrix(b, groups, entries)
    error = float(np.abs(gram - pattern).max() / np.abs(gram).max())
    return groups, entries, error


def bsb2_matrix(b: int, groups, entries) -> np.ndarray:
    """The BSB2 matrix with blocks ``groups`` and entries ``(q1, c11, q2, c22, c12)``."""
    q1, c11, q2, c22, c12 = entries
    out = np.full((b, b), float(c12))
    one, two = list(groups[0]), list(groups[1])
    out[np.ix_(one, one)] = c11
    out[np.ix_(two, two)] = c22
    out[one, one] = q1
    out[two, two] = q2
    return out


def bsb2_point(settings: Settings, gram: np.ndarray, layers: int = 0, newton_steps: int = 20, *, converged=True,
               power_steps: int = 40) -> BlockFixedPoint:
    """Refine an approximate BSB2 fixed point by Newton's method on its five entries,
    then estimate the full Jacobian's spectral radius by ``power_steps`` power iterations.

    Newton stops when a step is below ``1e-12`` of the entries, or when, with the residual already
    below :data:`STALLED_RESIDUAL` of the entries, a step has not cut it by at least
    :data:`NEWTON_GAIN`.  Its convergence is quadratic where the map is analytic; at a point where a
    block has collapsed (``q = c`` within it, as in the low-norm block of relu_power(2)'s (5, 3) point
    at B = 8) the block's Gram matrix is singular, the map is not differentiable there and Newton is
    only linear (measured: each step of 11 maps cut the residual by 0.6, 15 steps from 3.5e-9 to
    2.4e-12).  The map itself still contracts towards that point (by 0.75 a layer in that case), so
    the entries are then iterated, one map a step, each step kept only if it cuts the residual, until
    it is below ``1e-12`` of the entries (at most :data:`POLISH_STEPS`).  ``residual`` reports where
    this ended; the Newton steps cost ``1 + 2 k`` maps each (``k`` active entries), the others one."""
    b = gram.shape[0]
    groups, entries, block_error = block_structure(gram)
    if block_error > 5e-2:
        raise BnsymError(
            f"the iterated Gram matrix is not two-block (BSB2): departure {block_error:.3g} from the best "
            f"split {tuple(len(g) for g in groups)}; sorted diagonal {np.round(np.sort(np.diag(gram)), 6).tolist()}"
        )
    x = np.array(entries, dtype=float)
    active = _active_entries(groups)

    def residual(p):
        full = p.copy()
        out = np.array(_block_means(mean_field_map(settings, bsb2_matrix(b, groups, _fill(full, groups))), groups))
        return out - _fill(full, groups)

    def size_of(r):
        return float(np.abs(r[active]).max())

    previous = math.inf
    r = residual(x)
    for _ in range(newton_steps):
        size = size_of(r)
        if size <= STALLED_RESIDUAL * np.abs(x).max() and size > previous / NEWTON_GAIN:
            break  # close to the point and no longer quadratic: a collapsed block (see the docstring)
        previous = size
        jac = _jacobian(residual, x, active)
        step = np.zeros_like(x)
        step[active] = np.linalg.lstsq(jac[np.ix_(active, active)], -r[active], rcond=None)[0]
        x = x + step
        r = residual(x)
        if np.abs(step).max() <= 1e-12 * np.abs(x).max():
            break
    for _ in range(POLISH_STEPS):  # the map's own contraction: a step is kept only if it cuts the residual
        if size_of(r) <= 1e-12 * np.abs(x).max():
            break
        following = x + r
        r_following = residual(following)
        if not size_of(r_following) < size_of(r):
            break
        x, r = following, r_following
    final = bsb2_matrix(b, groups, _fill(x, groups))
    res = float(np.linalg.norm(mean_field_map(settings, final) - final))
    jac = _jacobian(residual, x, active)
    family = np.linalg.eigvals(jac[np.ix_(active, active)] + np.eye(len(active)))
    q1, c11, q2, c22, c12 = _fill(x, groups)
    radius = _full_radius(settings, final, power_steps) if power_steps else None
    return BlockFixedPoint(
        sizes=(len(groups[0]), len(groups[1])), members=groups, q=(float(q1), float(q2)),
        c_within=(float(c11), float(c22)), c_across=float(c12), residual=res, block_error=block_error,
        layers=layers, converged=converged, family_eigenvalues=tuple(sorted(family, key=lambda v: -abs(v))),
        full_radius=radius, gram=final,
    )


#: The factor by which a Newton step of :func:`bsb2_point` must cut the residual for the next to be taken,
#: once the residual is below ``STALLED_RESIDUAL`` of the entries (farther away a step may cut it by less
#: before the quadratic convergence sets in).
NEWTON_GAIN = 4
STALLED_RESIDUAL = 1e-6
#: Most iterations of the map in :func:`bsb2_point` after Newton's steps.
POLISH_STEPS = 200


def _full_radius(settings, gram, steps):
    """Spectral radius of ``Delta -> G dV[Delta] G`` at ``gram`` (power iteration, central differences)."""
    b = gram.shape[0]
    g = np.eye(b) - 1 / b
    rng = np.random.default_rng(12345)
    a = rng.standard_normal((b, b))
    v = g @ (a + a.T) @ g
    v /= np.linalg.norm(v)
    h = 1e-5 * np.linalg.norm(gram)
    estimate = 0.0
    for _ in range(steps):
        w = g @ (mean_field_map(settings, gram + h * v) - mean_field_map(settings, gram - h * v)) @ g / (2 * h)
        estimate = float(np.linalg.norm(w))
        if estimate == 0:
            return 0.0
        v = w / estimate
    return estimate


def simulated_blocks(grams: np.ndarray, last: int = 10):
    """Block structure of simulated Gram matrices ``(seeds, depth+1, B, B)``, averaged over the last layers.

    Returns a list (one per seed) of ``(sizes, entries, block_error)`` from
    :func:`block_structure` applied to the mean of the last ``last`` layers.
    """
    out = []
    for run in np.asarray(grams):
        groups, entries, error = block_structure(run[-last:].mean(axis=0))
        out.append(((len(groups[0]), len(groups[1])), entries, error))
    return out


# --------------------------------------------------------------------------- helpers
def _start_direction(b, seed, sizes):
    if sizes is not None:
        k = sizes
        v = np.where(np.arange(b) < k, 1.0 / k, -1.0 / (b - k))
        p = subspace_parts(np.diag(v))[1]
    else:
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((b, b))
        parts = subspace_parts(a + a.T)
        p = parts[1] + parts[2]
    return p / np.linalg.norm(p)


def _iterate(settings, start, max_depth, tol):
    current = start
    for layer in range(1, max_depth + 1):
        nxt = mean_field_map(settings, current)
        if np.linalg.norm(nxt - current) <= tol * np.linalg.norm(nxt):
            return nxt, layer, True
        current = nxt
    return current, max_depth, False


def _block_means(gram, groups):
    one, two = list(groups[0]), list(groups[1])

    def within(idx):
        block = gram[np.ix_(idx, idx)]
        q = float(np.mean(np.diag(block)))
        c = float((block.sum() - np.trace(block)) / (len(idx) * (len(idx) - 1))) if len(idx) > 1 else float("nan")
        return q, c

    q1, c11 = within(one)
    q2, c22 = within(two)
    c12 = float(gram[np.ix_(one, two)].mean())
    return q1, c11, q2, c22, c12


def _active_entries(groups):
    """Indices of ``(q1, c11, q2, c22, c12)`` that exist (a block of one sample has no c)."""
    active = [0, 2, 4]
    if len(groups[0]) > 1:
        active.append(1)
    if len(groups[1]) > 1:
        active.append(3)
    return sorted(active)


def _fill(x, groups):
    x = np.array(x, dtype=float)
    if len(groups[0]) == 1:
        x[1] = 0.0
    if len(groups[1]) == 1:
        x[3] = 0.0
    return tuple(x)


def _jacobian(fun, x, active):
    n = len(x)
    jac = np.zeros((n, n))
    for j in active:
        h = 1e-6 * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        jac[:, j] = (fun(up) - fun(down)) / (2 * h)
    return jac
