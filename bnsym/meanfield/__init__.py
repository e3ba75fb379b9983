"""Mean-field quantities of a batch-normalised network (``docs/theory.md`` sections 2 and 4-8,
13-16), one concept per module:

* :mod:`.results`: ``Settings``, ``Quantity`` and the result types; :func:`make_settings`,
  where the promised ``dps`` becomes the working precision;
* :mod:`.bsb1`: the BSB1 fixed point (``fixed_point``); :mod:`.critical`: the critical eps and
  the degenerate regime past it (``critical_eps``);
* :mod:`.gradients`: lambda_G; :mod:`.depth`: trainable depth (factor e^16 by default);
* :mod:`.linearization`: the spectrum of the linearised forward and backward maps;
* :mod:`.laplace`, :mod:`.spherical`, :mod:`.propagation`: the Laplace map, the spherical route (any
  activation) and propagation of an input batch;
  :mod:`.joint`: the joint map of several batches; :mod:`.kernels`: NNGP and NTK kernels;
* :mod:`.decorrelation`: the cross-batch fixed point and decorrelation rates (``cross_batch``);
* :mod:`.symmetry`: symmetry breaking and BSB2; :mod:`.transition`: the alpha-ReLU transition;
* :mod:`.gegenbauer_series`: Gegenbauer coefficients and the series of q*, c*, lambda_G and the
  forward eigenvalues; :mod:`.weight_gradient_moments`: per-layer weight-gradient moments.

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, :mod:`bnsym.estimate`, :mod:`bnsym.blas`,
:mod:`bnsym.activations`, :mod:`bnsym.numerics`, and (only for the sampling fallbacks of
``propagate`` and ``kernel`` where no deterministic route exists yet) :mod:`bnsym.montecarlo`.
Never :mod:`bnsym.symbolic`, :mod:`bnsym.train`, :mod:`bnsym.cli` or :mod:`bnsym.plotting`.
"""
