"""A PyTorch-free reference trainer for batch-normalized networks (THEORY.md section 9).

* :mod:`.network`: the fully connected batch-norm network, forward and backward in NumPy;
* :mod:`.optim`: SGD (with momentum) and RMSProp;
* :mod:`.datasets`: MNIST, Fashion-MNIST and CIFAR-10 loaders with checksum checks and download;
* :mod:`.training`: the training loop (one run);
* :mod:`.sweep`: the trainability grid over depth and batch size (Fig. 3 of the paper);
* :mod:`.one_step`: the dynamic range of per-layer gradient norms before and after k steps.
"""

from __future__ import annotations

from .network import Network, NetworkConfig
from .optim import RMSProp, SGD, make_optimizer

__all__ = ["Network", "NetworkConfig", "RMSProp", "SGD", "make_optimizer"]
