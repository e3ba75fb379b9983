"""Mean-field quantities of a batch-normalised network: the BSB1 fixed point, the gradient
explosion rate, trainable depth, the spectrum of the linearised maps, propagation of an arbitrary
input batch and symmetry breaking (``docs/theory.md`` sections 2, 5, 6 and 8).

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, :mod:`bnsym.estimate`,
:mod:`bnsym.activations`, :mod:`bnsym.numerics`, and (only for the sampling fallback of
``propagate`` where no deterministic route exists yet) :mod:`bnsym.montecarlo`.
Never :mod:`bnsym.symbolic`, :mod:`bnsym.train`, :mod:`bnsym.cli` or :mod:`bnsym.plotting`.
"""
