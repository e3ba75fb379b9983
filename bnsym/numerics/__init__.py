"""The numerical engine (``docs/theory.md`` sections 3, 4, 7, 7.1, 8, 13, 14 and 16):

* :mod:`.quadrature`: Gauss rules (nodes by Newton on the recurrence, cached);
* :mod:`.sphere`: the one sphere-expectation routine (one convergence loop) and :mod:`.radial`,
  the radial law of the scale at eps > 0; :mod:`.moments`, :mod:`.backward`: the sphere moments
  of the forward and backward maps built on them; :mod:`.curve`, analytic functions of the
  radial factor interpolated in tiers (the moments and the spectrum at eps > 0); :mod:`.memo`,
  values memoised with the tolerance they were computed to; :mod:`.roots`, the one bisection
  (a sign change halved to a relative width);
* :mod:`.angular_gaussian`: the law of a pair of batch-normalized coordinates at a general Gram
  matrix, in closed form, and its polar rule (the spherical route of propagate, section 7.1);
* :mod:`.closed_forms`, :mod:`.gaussian_kernels`, :mod:`.power_moments`, :mod:`.arccos`: closed
  forms of positively homogeneous activations (integer and real degree, arc-cosine kernels);
* :mod:`.gegenbauer_basis`: the normalised Gegenbauer basis of the sphere law;
* :mod:`.cross`: the trace moment of the cross-batch rate;
* :mod:`.float_rates`: the float64 (vectorised Funk-Hecke) path of lambda_G, q*, c* for scans.

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, :mod:`bnsym.estimate`,
:mod:`bnsym.activations`, mpmath, numpy. Never :mod:`bnsym.meanfield`, :mod:`bnsym.montecarlo`,
:mod:`bnsym.symbolic` or anything above.
"""
