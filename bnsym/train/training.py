"""One training run: shuffled mini-batches, divergence detection, evaluation.

:func:`fit` trains a :class:`~bnsym.train.network.Network` for a number of
epochs (the last incomplete batch of each epoch is dropped so that every
batch holds a whole number of sub-batches), stops at the first step whose
loss is non-finite or exceeds :data:`DIVERGENCE_FACTOR` times the first
batch's loss and reports the run as *diverged* (with that step), and
evaluates on the test set with the running batch-norm statistics (a
non-finite test loss also makes the run diverged).  Per-layer weight-gradient norms are recorded
at initialisation (the first batch), after the first step (the second batch)
and at the end (the last batch).

Cost: ``epochs * n_train * network.flops_per_sample()`` FLOPs plus one
forward pass over the test set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from bnsym.errors import BnsymInputError
from bnsym.train.datasets import Dataset
from bnsym.train.network import Network, NetworkConfig
from bnsym.train.optim import make_optimizer

#: A run has diverged once its training loss exceeds this many times the loss of its first
#: batch (chance level is log(10) = 2.3 for ten classes; a loss 100 times that is no longer
#: training), or once any loss is non-finite.
DIVERGENCE_FACTOR = 100.0


@dataclass(frozen=True)
class TrainResult:
    """What one run produced.

    ``grad_norms`` maps ``"init"``, ``"after_first_step"``, ``"final"`` to
    the per-layer weight-gradient norms (first layer first, readout last).
    ``history`` holds one ``(epoch, mean train loss, train accuracy)`` per epoch.
    """

    test_accuracy: float
    test_loss: float
    train_loss: float
    diverged: bool
    steps: int
    seconds: float
    samples_per_second: float
    grad_norms: dict = field(default_factory=dict)
    history: tuple = ()
    diverged_at: int | None = None

    def as_dict(self) -> dict:
        return {
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss if math.isfinite(self.test_loss) else None,
            "train_loss": self.train_loss if math.isfinite(self.train_loss) else None,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(self.samples_per_second, 1),
            "grad_norms": {k: [float(v) for v in vals] for k, vals in self.grad_norms.items()},
            "history": [list(h) for h in self.history],
        }


def build(data: Dataset, *, depth, width, batch_size, lr, activation="relu", optimizer="sgd", momentum=0.0,
          sigma_w=1.0, eps=1e-3, batch_norm=True, sub_batch=None, dtype="float32", seed=0):
    """A fresh network and optimiser for ``data``."""
    config = NetworkConfig(
        input_dim=data.input_dim, num_classes=data.num_classes, depth=depth, width=width, activation=activation,
        sigma_w=sigma_w, eps=eps, batch_norm=batch_norm, sub_batch=sub_batch, dtype=dtype,
    )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise BnsymInputError(f"batch_size must be an integer >= 2, got {batch_size!r}")
    if sub_batch is not None and batch_size % sub_batch:
        raise BnsymInputError(f"batch_size ({batch_size}) must be a multiple of sub_batch ({sub_batch})")
    if batch_size > len(data.x_train):
        raise BnsymInputError(f"batch_size ({batch_size}) exceeds the {len(data.x_train)} training samples")
    network = Network(config, seed=seed)
    return network, make_optimizer(optimizer, network.parameters, lr, momentum=momentum)


def fit(network: Network, optimizer, data: Dataset, *, epochs, batch_size, seed=0, progress=False,
        eval_batch=1000, callback=None) -> TrainResult:
    """Train ``network`` with ``optimizer`` on ``data``; see the module docstring.

    ``callback(step, loss)`` is called after every step (the one-step
    experiment uses it); ``progress`` shows a tqdm bar with loss and accuracy.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise BnsymInputError(f"epochs must be an integer >= 1, got {epochs!r}")
    rng = np.random.default_rng(seed)
    n = len(data.x_train)
    per_epoch = n // batch_size
    if per_epoch < 1:
        raise BnsymInputError(f"batch_size ({batch_size}) exceeds the {n} training samples")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs * per_epoch, unit="step", dynamic_ncols=True)
    grad_norms, history = {}, []
    steps, diverged, loss, first_loss, diverged_at = 0, False, float("nan"), None, None
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(epochs):
            order = rng.permutation(n)
            total_loss, correct, seen = 0.0, 0, 0
            for k in range(per_epoch):
                idx = order[k * batch_size:(k + 1) * batch_size]
                labels = data.y_train[idx]
                loss, logits = network.loss_and_gradients(data.x_train[idx], labels)
                if steps == 0:
                    grad_norms["init"] = network.weight_gradient_norms()
                elif steps == 1:
                    grad_norms["after_first_step"] = network.weight_gradient_norms()
                if first_loss is None:
                    first_loss = loss
                if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(first_loss, 1e-12):
                    diverged, diverged_at = True, steps
                    break
                if epoch == epochs - 1 and k == per_epoch - 1:
                    grad_norms["final"] = network.weight_gradient_norms()  # before the step reuses the arrays
                optimizer.step(network.gradients)
                steps += 1
                total_loss += loss * len(idx)
                correct += int(np.sum(np.argmax(logits, axis=1) == labels))
                seen += len(idx)
                if callback is not None:
                    callback(steps, loss)
                if bar is not None:
                    bar.update(1)
                    if k % 20 == 0:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
            if diverged:
                break
            history.append((epoch + 1, total_loss / seen, correct / seen))
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    if diverged:
        test_accuracy, test_loss = float("nan"), float("nan")
    else:
        test_accuracy, test_loss = network.evaluate(data.x_test, data.y_test, chunk=eval_batch)
        if not math.isfinite(test_loss):
            diverged, diverged_at = True, steps
    train_loss = history[-1][1] if history else loss
    return TrainResult(
        test_accuracy=test_accuracy, test_loss=test_loss, train_loss=train_loss, diverged=diverged, steps=steps,
        seconds=seconds, samples_per_second=steps * batch_size / seconds if seconds > 0 else float("nan"),
        grad_norms=grad_norms, history=tuple(history), diverged_at=diverged_at,
    )
