"""The numerical engine: quadrature rules, the sphere and radial laws of a batch-normalised
pre-activation, the closed forms and Gaussian kernels of homogeneous activations, and the
sphere moments built from them (``docs/theory.md`` sections 3, 4 and 7).

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, :mod:`bnsym.estimate`,
:mod:`bnsym.activations`, mpmath, numpy. Never :mod:`bnsym.meanfield`, :mod:`bnsym.montecarlo`,
:mod:`bnsym.symbolic` or anything above.
"""
