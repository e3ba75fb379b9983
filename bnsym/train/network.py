r"""A fully connected batch-normalized network with a hand-written backward pass.

The network of docs/theory.md section 1, finite width ``N``, depth ``L``, fed a
batch ``X`` of shape ``(B, d)`` (one sample per row):

    h^l   = x^{l-1} W^l                                   W^l_ij ~ N(0, sigma_w^2 / fan_in)
    xhat  = (h^l - mean(h^l)) / sqrt(var(h^l) + eps)       mean, biased var over the (sub-)batch
    x^l   = phi(gamma^l * xhat + beta^l)                   gamma = 1, beta = 0 at initialisation
    z     = x^L W_out + b_out,   loss = mean_a [ logsumexp(z_a) - z_a[y_a] ]

Batch statistics are taken over the whole batch or, with ``sub_batch = b``,
separately over each of the ``B / b`` consecutive groups of ``b`` rows (the
"ghost" batches of the paper's Fig. 3b).  Evaluation uses running averages of
the statistics (``running = (1 - m) running + m batch``, unbiased variance).
With ``batch_norm=False`` the hidden layers are ``x^l = phi(x^{l-1} W^l + b^l)``
with learnable biases (initialised ``N(0, sigma_b^2)``).

Cost per training step: ``6 B (d N + (L-1) N^2 + N C)`` floating-point
operations in three matrix products per layer (forward, input gradient,
weight gradient) plus ``O(B N L)`` elementwise work: the batch norm (with
relu's mask) is one fused pass forward and one backward per layer
(:mod:`bnsym.train.fused`), each a few loops over the ``B x N`` array.
Memory: two ``B x N`` work arrays per layer (the centred pre-activation
``h - mean`` and ``x``), kept between steps of the same batch size and reused
in place, so that a step allocates almost nothing; the batch norm backward
uses ``dh = s (dy - mean(dy)) - (h - mean) s inv mean(dy xhat)`` with
``s = gamma inv``, ``inv = 1 / sqrt(var + eps)`` (the same formula as
``gamma inv (dy - mean(dy) - xhat mean(dy xhat))``, regrouped).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bnsym import validation
from bnsym.errors import BnsymInputError
from bnsym.train.fused import normalize_backward, normalize_forward

#: Activations with hand-written fast paths; any other name goes through
#: :func:`bnsym.activations.expression.activation` (exact but slower, float64 internally).
FAST_ACTIVATIONS = ("relu", "tanh", "identity")


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and initialisation of a :class:`Network`.

    ``depth`` counts the hidden (linear, batch norm, nonlinearity) layers;
    the readout layer comes on top.  ``sub_batch`` (``None``: the whole
    batch) is the size of the groups over which batch statistics are taken.
    """

    input_dim: int
    num_classes: int
    depth: int
    width: int
    activation: str = "relu"
    sigma_w: float = 1.0
    eps: float = 1e-3
    batch_norm: bool = True
    sub_batch: int | None = None
    dtype: str = "float32"
    bn_momentum: float = 0.1
    sigma_b: float = 0.0

    def __post_init__(self):
        # bnsym.validation's rules (numbers only: a string is refused): a count is stored as the int it stands
        # for (8.0, np.int64), a bounded real as the float it is (np.float32, 2**64)
        counts = {"input_dim": 1, "depth": 1, "width": 1, "num_classes": 2}
        if self.sub_batch is not None:
            counts["sub_batch"] = 2
        for name, minimum in counts.items():
            object.__setattr__(self, name, validation.integer(getattr(self, name), name=name, minimum=minimum))
        bounds = {"sigma_w": (0, math.inf, True, True), "eps": (0, math.inf, False, True),
                  "sigma_b": (0, math.inf, False, True), "bn_momentum": (0, 1, True, False)}
        for name, (low, high, low_open, high_open) in bounds.items():
            checked = validation.interval(getattr(self, name), name=name, low=low, high=high, low_open=low_open,
                                          high_open=high_open)
            object.__setattr__(self, name, checked)
        if self.dtype not in ("float32", "float64"):
            raise BnsymInputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not isinstance(self.activation, str):
            raise BnsymInputError(f"activation must be a name such as 'relu' or 'tanh', got {self.activation!r}")

    def as_dict(self) -> dict:
        return asdict(self)


class _Phi:
    """``phi`` and ``phi'`` of one activation, with fast paths for relu, tanh and identity."""

    def __init__(self, name: str):
        self.name = name.strip().lower()
        if self.name not in FAST_ACTIVATIONS:
            from bnsym.activations import activation

            self.general = activation(name)  # raises ActivationError (a BnsymInputError)

    def forward_(self, y):
        """Overwrite ``y`` with ``phi(y)`` and return it."""
        if self.name == "relu":
            return np.maximum(y, 0, out=y)
        if self.name == "tanh":
            return np.tanh(y, out=y)
        if self.name == "identity":
            return y
        y[...] = self.general.np(y)
        return y

    def backward_(self, grad, x, y_fn):
        """Multiply ``grad`` in place by ``phi'(y)``, from ``x = phi(y)`` or ``y_fn()``."""
        if self.name == "relu":
            np.multiply(grad, x > 0, out=grad)
        elif self.name == "tanh":
            grad *= 1 - x * x
        elif self.name == "identity":
            pass
        else:
            grad *= self.general.np(y_fn(), derivative=True).astype(grad.dtype, copy=False)
        return grad


class Network:
    """Parameters, forward and backward pass of a batch-normalized MLP.

    ``parameters`` and ``gradients`` are parallel lists of arrays (updated in
    place by the optimisers); ``names`` labels them (``W1``, ``gamma1``,
    ``beta1``, ..., ``W_out``, ``b_out``).  ``weight_index`` lists the
    positions of the weight matrices, first layer first.
    """

    def __init__(self, config: NetworkConfig, *, seed=0):
        self.config = config
        self.dtype = np.dtype(config.dtype)
        self.phi = _Phi(config.activation)
        rng = np.random.default_rng(seed)
        c, dt = config, self.dtype
        names, params = [], []
        fan_in = c.input_dim
        for layer in range(1, c.depth + 1):
            names.append(f"W{layer}")
            params.append((rng.standard_normal((fan_in, c.width)) * (c.sigma_w / np.sqrt(fan_in))).astype(dt))
            if c.batch_norm:
                names += [f"gamma{layer}", f"beta{layer}"]
                params += [np.ones(c.width, dt), np.zeros(c.width, dt)]
            else:
                names.append(f"b{layer}")
                params.append((rng.standard_normal(c.width) * c.sigma_b).astype(dt))
            fan_in = c.width
        names += ["W_out", "b_out"]
        params += [
            (rng.standard_normal((fan_in, c.num_classes)) * (c.sigma_w / np.sqrt(fan_in))).astype(dt),
            np.zeros(c.num_classes, dt),
        ]
        self.names = names
        self.parameters = params
        self.gradients = [np.zeros_like(p) for p in params]
        self.weight_index = [i for i, n in enumerate(names) if n.startswith("W")]
        self.running_mean = [np.zeros(c.width, dt) for _ in range(c.depth)] if c.batch_norm else None
        self.running_var = [np.ones(c.width, dt) for _ in range(c.depth)] if c.batch_norm else None
        self._per_layer = 3 if c.batch_norm else 2
        self._work_batch, self._work, self._work_grad = None, [], []

    # ------------------------------------------------------------ accessors
    def _layer(self, l):
        """(W, gamma, beta) or (W, b) of hidden layer ``l`` (0-based)."""
        k = self._per_layer * l
        return self.parameters[k:k + self._per_layer]

    def _layer_grads(self, l):
        k = self._per_layer * l
        return self.gradients[k:k + self._per_layer]

    @property
    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters)

    def flops_per_sample(self) -> int:
        """Matrix-product FLOPs (2 per multiply-add) of one forward + backward pass, per sample.

        Every weight matrix is used three times (forward product, weight gradient,
        input gradient), except that no gradient is propagated into the data:
        ``6 macs - 2 d N`` with ``macs = d N + (L-1) N^2 + N C``.
        """
        c = self.config
        macs = c.input_dim * c.width + (c.depth - 1) * c.width**2 + c.width * c.num_classes
        return 6 * macs - 2 * c.input_dim * c.width

    # ------------------------------------------------------------ forward
    def _check_batch(self, x, labels, train):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise BnsymInputError(
                f"x must be an array of shape (batch, {self.config.input_dim}), got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        batch = x.shape[0]
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (batch,) or labels.dtype.kind not in "iu" or (
                batch and (labels.min() < 0 or labels.max() >= self.config.num_classes)
            ):
                raise BnsymInputError(
                    f"labels must be {batch} integers in [0, {self.config.num_classes}), got shape "
                    f"{labels.shape} dtype {labels.dtype}"
                )
        if train and self.config.batch_norm:
            group = self.config.sub_batch or batch
            if batch < 2 or batch % group:
                raise BnsymInputError(
                    f"a training batch must hold at least 2 samples and a whole number of sub-batches "
                    f"of size {group}; got a batch of {batch}"
                )
        return np.ascontiguousarray(x, dtype=self.dtype), labels

    def loss_and_gradients(self, x, labels):
        """Mean cross-entropy of a training batch; fills ``self.gradients``.

        Batch statistics come from the batch itself (training mode) and the
        running averages are updated.  Returns ``(loss, logits)``; ``loss`` is
        a Python float, ``nan``/``inf`` when the network diverged.  The network's
        work arrays are reused in place from call to call: one network serves one
        thread at a time.
        """
        x, labels = self._check_batch(x, labels, True)
        c = self.config
        batch = x.shape[0]
        group = (c.sub_batch or batch) if c.batch_norm else batch
        shape3 = (batch // group, group, c.width)
        cache = []
        inp = x
        for l in range(c.depth):
            h_buf, out_buf = self._buffers(l, batch)
            if c.batch_norm:
                w, gamma, beta = self._layer(l)
                h = np.matmul(inp, w, out=h_buf)
                stats = [np.empty((shape3[0], c.width), self.dtype) for _ in range(4)]  # mean, var, inv, scale
                relu = self.phi.name == "relu"
                # h now holds the centred pre-activation h - mean; out_buf gamma xhat + beta (relu'd)
                normalize_forward(h.reshape(shape3), gamma, beta, c.eps, relu, out_buf.reshape(shape3), *stats)
                mean, var, inv, scale = stats
                out = out_buf if relu else self.phi.forward_(out_buf)
                cache.append((inp, h, inv, scale, out))
                m = c.bn_momentum
                rm, rv = self.running_mean[l], self.running_var[l]
                rm *= 1 - m
                rm += (m / shape3[0]) * np.add.reduce(mean, axis=0)  # mean over the groups
                rv *= 1 - m
                rv += (m * group / max(group - 1, 1) / shape3[0]) * np.add.reduce(var, axis=0)
            else:
                w, b = self._layer(l)
                y = np.matmul(inp, w, out=out_buf)
                y += b
                pre = None
                if self.phi.name not in FAST_ACTIVATIONS:
                    pre = h_buf
                    pre[...] = y
                out = self.phi.forward_(y)
                cache.append((inp, pre, None, None, out))
            inp = out
        w_out, b_out = self.parameters[-2:]
        logits = inp @ w_out
        logits += b_out
        loss, dlogits = _softmax_cross_entropy(logits, labels)
        self._backward(cache, inp, dlogits, shape3, group)
        return loss, logits

    def _backward(self, cache, last, dlogits, shape3, group):
        c = self.config
        g_wout, g_bout = self.gradients[-2:]
        np.matmul(last.T, dlogits, out=g_wout)
        np.sum(dlogits, axis=0, out=g_bout)
        batch = dlogits.shape[0]
        grad = np.matmul(dlogits, self.parameters[-2].T, out=self._grad_buffer(batch, 0))
        for l in range(c.depth - 1, -1, -1):
            inp, h, inv, scale, out = cache[l]
            if c.batch_norm:
                w, _, beta = self._layer(l)
                g_w, g_gamma, g_beta = self._layer_grads(l)
                relu = self.phi.name == "relu"
                if not relu:  # relu's mask is taken inside the fused pass
                    self.phi.backward_(grad, out, lambda h=h, s=scale, b=beta: (h.reshape(shape3) * s[:, None, :]).reshape(h.shape) + b)
                # h holds the centred pre-activation h - mean; grad becomes dL/dh
                normalize_backward(grad.reshape(shape3), h.reshape(shape3), out.reshape(shape3), inv, scale, relu, g_gamma, g_beta)
            else:
                w = self._layer(l)[0]
                g_w, g_b = self._layer_grads(l)
                self.phi.backward_(grad, out, lambda h=h: h)
                np.add.reduce(grad, axis=0, out=g_b)
            np.matmul(inp.T, grad, out=g_w)
            grad = np.matmul(grad, w.T, out=self._grad_buffer(batch, l % 2 + 1)) if l > 0 else None

    def _buffers(self, l, batch):
        """Two ``(batch, N)`` work arrays of hidden layer ``l``, kept between steps of the same batch size."""
        if self._work_batch != batch:
            dt, n = self.dtype, self.config.width
            self._work = [(np.empty((batch, n), dt), np.empty((batch, n), dt)) for _ in range(self.config.depth)]
            self._work_grad = [np.empty((batch, n), dt) for _ in range(3)]
            self._work_batch = batch
        return self._work[l]

    def _grad_buffer(self, batch, k):
        """Work array ``k`` of the three that hold the back-propagated gradient; see :meth:`_buffers`."""
        self._buffers(0, batch)
        return self._work_grad[k]

    # ------------------------------------------------------------ evaluation
    def logits(self, x, *, chunk=1000):
        """Logits in evaluation mode (running batch-norm statistics), ``chunk`` rows at a time.

        ``chunk`` only bounds memory: evaluation mode uses the running statistics, so the
        result does not depend on it (it is not a batch size of batch norm).
        """
        x, _ = self._check_batch(x, None, False)
        c = self.config
        parts = []
        for start in range(0, x.shape[0], chunk):
            inp = x[start:start + chunk]
            for l in range(c.depth):
                if c.batch_norm:
                    w, gamma, beta = self._layer(l)
                    scale = gamma / np.sqrt(self.running_var[l] + c.eps)
                    shift = beta - self.running_mean[l] * scale
                    y = inp @ w
                    y *= scale
                    y += shift
                else:
                    w, b = self._layer(l)
                    y = inp @ w
                    y += b
                inp = self.phi.forward_(y)
            parts.append(inp @ self.parameters[-2] + self.parameters[-1])
        return np.concatenate(parts) if parts else np.zeros((0, c.num_classes), self.dtype)

    def evaluate(self, x, labels, *, chunk=1000):
        """``(accuracy, mean cross-entropy)`` in evaluation mode (``chunk`` rows at a time)."""
        x, labels = self._check_batch(x, labels, False)
        if labels is None:
            raise BnsymInputError("labels are required to evaluate the network")
        with np.errstate(all="ignore"):
            z = self.logits(x, chunk=chunk)
            loss, _ = _softmax_cross_entropy(z, labels, gradient=False)
        accuracy = float(np.mean(np.argmax(z, axis=1) == labels)) if len(labels) else float("nan")
        return accuracy, loss

    def weight_gradient_norms(self) -> np.ndarray:
        """Frobenius norms of the weight gradients, first hidden layer first, readout last."""
        return np.array([float(np.linalg.norm(self.gradients[i])) for i in self.weight_index])


def _softmax_cross_entropy(logits, labels, gradient=True):
    """Mean cross-entropy and its gradient ``(softmax - onehot) / B`` (written over ``logits``)."""
    batch = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    rows = np.arange(batch)
    picked = z[rows, labels]
    np.exp(z, out=z)
    total = z.sum(axis=1)
    loss = float(np.mean(np.log(total) - picked)) if batch else float("nan")
    if not gradient:
        return loss, None
    z /= total[:, None]
    z[rows, labels] -= 1
    z /= batch
    return loss, z
