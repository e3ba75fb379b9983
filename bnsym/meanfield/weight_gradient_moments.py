r"""Weight-gradient moments at initialisation: how the expected squared weight gradient grows with depth.

docs/theory.md section 16.  Layer ``l`` (``1..L``) computes ``h^l = W^l x^(l-1)``, batch norm,
``x^l = phi(.)``.  The weight gradient is ``dLoss/dW^l = delta^l x^(l-1)T`` with
``delta^l = dLoss/dh^l`` (``N_l x B``), so exactly, at any width,

    |dLoss/dW^l|_F^2 = N_l N_(l-1) <Pi_h^l, Sigma^(l-1)>,

with the per-neuron Gram matrices ``Pi_h^l = delta^lT delta^l / N_l`` and
``Sigma^(l-1) = x^(l-1)T x^(l-1) / N_(l-1)``.  In mean field (gradient independence),
``Pi_h^l = Pi^(l-1) / sigma_w^2`` (``Pi`` the gradient Gram with respect to ``x``) lies in
``G Sym(B) G`` (batch norm kills ``1``), so at the BSB1 point
``<Pi_h^l, Sigma*> = (q* - c*) tr Pi^(l-1) / sigma_w^2``, and ``tr Pi^(k-1) = lambda_G tr Pi^k``
for ``k <= L - 1`` (section 5.4).  Hence the mean squared entry ``m_l = E|dLoss/dW^l|_F^2 / (N_l N_(l-1))``
satisfies, for every ``1 <= l <= L``,

    m_l / m_L = lambda_G^(L - l),        m_l = (q* - c*) lambda_G^(L - l) tr Pi^(L-1) / sigma_w^2,

whatever the top (loss) gradient.  Layers ``l >= 2`` need their input at ``Sigma*``; layer 1's
input is the data: at ``eps = 0`` any input whose Gram matrix is BSB1-shaped (for instance
orthogonal samples) gives the same ratio, because the loss is invariant to the scale of
``W^1 x^0`` so neither the scale of the data nor that of ``W^1`` changes ``dLoss/dW^1``; at ``eps > 0``
the input must sit at the fixed point itself.  The readout layer on top is not covered.

Domain: that of :func:`bnsym.gradient_explosion_rate` (finite ``B >= 4`` at ``eps = 0``).
Cost: that of ``lambda_G``; the powers are exact up to its error (first-order propagation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mpmath

from bnsym import validation
from bnsym.errors import BnsymInputError
from bnsym.estimate import Estimate, Value
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.meanfield.results import GradientExplosionRate, Settings, make_settings
from bnsym.text import ShownAsText, error_text, number_text, table_text


@dataclass(frozen=True)
class LayerMoment(Value):
    """``m_l / m_L = lambda_G^(L - l)`` for one layer ``l`` (``value``, ``error``, ``meaning``)."""

    value: mpmath.mpf
    error: mpmath.mpf
    layer: int = 1
    per_entry: mpmath.mpf = field(default_factory=mpmath.mpf)


@dataclass(frozen=True)
class WeightGradients(ShownAsText):
    """Per-layer expected squared weight gradients relative to the last hidden layer.

    ``layers[l - 1]``: :class:`LayerMoment` of layer ``l``; its ``per_entry`` is
    ``m_l / tr Pi^(L-1) = (q* - c*) lambda_G^(L - l) / sigma_w^2`` (the mean squared entry in units
    of the squared gradient arriving at the last hidden layer's input).  For Frobenius norms
    multiply by ``N_l N_(l-1)`` (:meth:`frobenius_ratio`).
    """

    settings: Settings
    depth: int
    rate: GradientExplosionRate
    layers: tuple

    def frobenius_ratio(self, layer: int, widths) -> mpmath.mpf:
        """``E|dW^l|_F^2 / E|dW^L|_F^2`` for ``widths = (N_0, N_1, ..., N_L)``."""
        ell = validation.integer(layer, name="layer", minimum=1)
        if ell > self.depth or len(widths) != self.depth + 1:
            raise BnsymInputError(f"layer must be in 1..{self.depth} and widths must hold {self.depth + 1} numbers, "
                                  f"got layer {layer!r} and {len(widths)} widths")
        fan = mpmath.mpf(widths[ell] * widths[ell - 1]) / (widths[self.depth] * widths[self.depth - 1])
        return fan * self.layers[ell - 1].value

    def __str__(self) -> str:
        """The settings, lambda_G and a table of the layers (what ``bnsym weight-gradients`` prints)."""
        d = self.settings.dps
        head = f"{self.settings.line()}\ndepth {self.depth}, lambda_G = {number_text(self.rate.value, d)}"
        rows = [(str(m.layer), number_text(m.value, d), error_text(m.error), number_text(m.per_entry, d)) for m in self.layers]
        return head + "\n" + table_text(rows, header=("layer", "m_l / m_L", "error", "m_l / tr Pi^(L-1)"))

    def as_dict(self) -> dict:
        d = self.settings.dps
        return {
            "settings": self.settings.as_dict(),
            "depth": self.depth,
            "lambda_G": mpmath.nstr(self.rate.value, d),
            "layers": [{"layer": m.layer, "relative": mpmath.nstr(m.value, d), "error": mpmath.nstr(m.error, 2),
                        "per_entry": mpmath.nstr(m.per_entry, d)} for m in self.layers],
        }


def weight_gradients(activation, batch_size, depth, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto") -> WeightGradients:
    r"""Expected squared weight gradient of each layer at initialisation, relative to the last hidden layer.

    ``m_l / m_L = lambda_G^(L - l)`` for ``l = 1..depth`` (docs/theory.md section 16); other
    arguments as for :func:`bnsym.gradient_explosion_rate`.  Returns :class:`WeightGradients`.

    >>> w = weight_gradients("identity", 10, 3, dps=20)
    >>> [mpmath.nstr(m.value, 10) for m in w.layers]     # (8/7)^2, 8/7, 1
    ['1.306122449', '1.142857143', '1.0']
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)
    big_l = validation.integer(depth, name="depth", minimum=1)
    rate = rate_from_settings(settings)
    fp = rate.fixed_point
    layers = []
    with mpmath.workdps(settings.working_dps):
        lam = Estimate(rate.value, rate.error, meaning=rate.meaning)
        spread = Estimate(fp.spread, fp.spread_error, meaning=fp.meaning)
        for ell in range(1, big_l + 1):
            power = Estimate(mpmath.mpf(1), meaning=rate.meaning)
            for _ in range(big_l - ell):
                power = power * lam
            entry = spread * power / settings.sigma_w**2
            layers.append(LayerMoment(power.value, power.error, layer=ell, per_entry=entry.value, meaning=power.meaning))
    return WeightGradients(settings, big_l, rate, tuple(layers))
