"""The independent Monte Carlo witness: batch norm forward and backward in NumPy, sampling
estimators of the mean-field maps, and the finite-width network simulator.

It shares no mathematics with the engine on purpose, so that agreement between the two is
evidence. May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, :mod:`bnsym.estimate`,
:mod:`bnsym.activations` (to evaluate ``phi`` in NumPy), numpy, tqdm. Never
:mod:`bnsym.numerics`, :mod:`bnsym.meanfield` or :mod:`bnsym.symbolic`.
"""
