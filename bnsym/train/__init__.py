"""A PyTorch-free reference trainer for batch-normalized networks (docs/theory.md section 9).

* :mod:`.network`: the fully connected batch-norm network, forward and backward in NumPy;
* :mod:`.optim`: SGD (with momentum) and RMSProp;
* :mod:`.datasets`: MNIST, Fashion-MNIST and CIFAR-10 loaders with checksum checks and download;
* :mod:`.training`: the training loop (one run);
* :mod:`.sweep`: the trainability grid over depth and batch size (Fig. 3 of the paper);
* :mod:`.first_steps`: the dynamic range of per-layer gradient norms before and after k steps.

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, numpy and numba (:mod:`.fused`, its
compiled batch-norm and SGD loops) only: the trainer is a witness of its own and shares nothing
with the engine. Figures are drawn by :mod:`bnsym.plotting`.
"""

from __future__ import annotations

from bnsym.train.network import Network, NetworkConfig
from bnsym.train.optim import RMSProp, SGD, make_optimizer

__all__ = ["Network", "NetworkConfig", "RMSProp", "SGD", "make_optimizer"]
