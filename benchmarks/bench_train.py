"""Speed of the NumPy reference trainer, against PyTorch CPU and against NumPy's own sgemm.

Two parts, in one run:

1. **Comparison** at (depth, B) = (20, 128), (50, 128), (20, 16) (``--configs``),
   width 384, Fashion-MNIST, ReLU, batch norm (eps 1e-3, momentum 0.1), SGD with
   momentum 0.9, float32.  Three things are timed per training step, alternated
   within the run (bnsym, PyTorch, sgemm, bnsym, PyTorch, ... in rounds of
   ``--steps`` steps, the order rotating each round) and summarised by their
   medians over ``--rounds`` rounds; the PyTorch contenders run in a second process,
   one at a time with the first (their thread pools must not spin beside NumPy's):

   - bnsym: gather a shuffled batch, ``Network.loss_and_gradients``, ``SGD.step``
     (what :func:`bnsym.train.training.fit` does per step);
   - PyTorch CPU (when ``import torch`` works; a benchmark-only install, never a
     dependency of bnsym): the same network (``Linear(bias=False)``,
     ``BatchNorm1d(eps=1e-3, momentum=0.1)``, ``ReLU`` per layer, a ``Linear``
     readout, ``cross_entropy``, ``torch.optim.SGD(momentum=0.9)``), same initial
     weights, same batches, ``torch.set_num_threads(threads)``;
   - the sgemm roof: only the matrix products of one step, at the trainer's shapes
     and orientations, by ``np.matmul(..., out=...)``.

   - the same products with one weight, activation and gradient array per layer, as the
     trainer holds them ("layered": they stream from memory instead of one cached matrix),
     in NumPy and, when PyTorch is there, in PyTorch ("torch gemm"): the part of the
     difference between bnsym and PyTorch that is their matrix-product libraries.

   Printed: ms/step of each, ``bnsym / torch`` (goal <= 1) and
   ``sgemm / bnsym`` (the fraction of the roof reached; goal >= 0.7 at (20, 128)).

2. **One epoch** (``--epochs``, 0 to skip) at ``--depth``/``--batch-size`` through
   :func:`fit`: samples/s, GFLOP/s (matrix-product FLOPs
   ``B (6 (d N + (L-1) N^2 + N C) - 2 d N)`` per step: no gradient into the
   data), peak memory and test accuracy.

    nice -n 10 python benchmarks/bench_train.py [--threads 2] [--rounds 9] [--steps 10] [--epochs 1]

``--threads`` (default 2) sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
MKL_NUM_THREADS before NumPy is imported and ``torch.set_num_threads``.  Needs
``apt-get install dataset-fashion-mnist`` or ``--data-dir``.  Timings on a
shared machine are noisy: read them with the load average (``uptime``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

DEFAULT_CONFIGS = "20x128,50x128,20x16"


def parse_configs(text):
    """``"20x128,50x128"`` -> ``[(20, 128), (50, 128)]`` (depth x batch size)."""
    out = []
    for item in text.split(","):
        depth, batch = item.lower().split("x")
        out.append((int(depth), int(batch)))
    return out


def layered_gemm_step(lib, np, depth, batch, width, input_dim, classes, *, shared=False):
    """The matrix products of one training step, at the trainer's shapes and orientations (``lib`` is
    ``np`` or ``torch``), with a weight matrix, activation and gradient array per layer as the trainer
    holds them (what the products cost when they stream from memory), or with ``shared`` one array of
    each for all hidden layers (the roof: one cached matrix)."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    wrap = (lambda a: a) if lib is np else lib.from_numpy
    empty = (lambda shape: np.empty(shape, f32)) if lib is np else (lambda shape: lib.empty(shape))
    dims = [input_dim] + [width] * depth

    def per_layer(make):  # one array per layer, or (shared) the first layer's and one for every hidden layer
        if not shared:
            return [make(l) for l in range(depth)]
        return [make(0)] + [make(1)] * (depth - 1) if depth > 1 else [make(0)]

    # scaled as the trainer's weights (N(0, 1/fan_in)): the back-propagated products stay of order one
    # instead of overflowing float32 past about 30 layers (inf and NaN in the timed products)
    ws = per_layer(lambda l: wrap(rng.standard_normal((dims[l], width), dtype=f32) / f32(np.sqrt(dims[l]))))
    xs = per_layer(lambda l: wrap(rng.standard_normal((batch, dims[l]), dtype=f32)))
    hs = per_layer(lambda l: empty((batch, width)))
    gws = per_layer(lambda l: empty((dims[l], width)))
    gs = [wrap(rng.standard_normal((batch, width), dtype=f32)) for _ in range(2)]
    wo = wrap(rng.standard_normal((width, classes), dtype=f32) / f32(np.sqrt(width)))
    gz = wrap(rng.standard_normal((batch, classes), dtype=f32))
    o_bc, o_nc = empty((batch, classes)), empty((width, classes))

    def step():
        for l in range(depth):
            lib.matmul(xs[l], ws[l], out=hs[l])
        lib.matmul(hs[-1], wo, out=o_bc)
        lib.matmul(hs[-1].T, gz, out=o_nc)
        lib.matmul(gz, wo.T, out=gs[0])
        for l in range(depth - 1, -1, -1):
            lib.matmul(xs[l].T, gs[l % 2], out=gws[l])
            if l > 0:
                lib.matmul(gs[l % 2], ws[l].T, out=gs[(l + 1) % 2])

    return step


def bnsym_step(np, data, depth, batch, width, seed=0):
    """A callable doing one bnsym training step (as fit does), and the network (for its initial weights)."""
    from bnsym.train.training import build

    network, optimizer = build(data, depth=depth, width=width, batch_size=batch, lr=0.01, momentum=0.9,
                               dtype="float32", seed=seed)
    rng = np.random.default_rng(seed)
    n = len(data.x_train)
    state = {"order": rng.permutation(n), "k": 0}

    def step():
        k = state["k"]
        if (k + 1) * batch > n:
            state["order"], k = rng.permutation(n), 0
        idx = state["order"][k * batch:(k + 1) * batch]
        state["k"] = k + 1
        labels = data.y_train[idx]
        loss, logits = network.loss_and_gradients(data.x_train[idx], labels)
        optimizer.step(network.gradients)
        int(np.sum(np.argmax(logits, axis=1) == labels))
        return loss

    return step, network


def torch_step(torch, np, data, network, batch, seed=0):
    """A callable doing one PyTorch training step of the same network, from the same initial weights."""
    nn = torch.nn
    c = network.config
    layers, fan_in = [], c.input_dim
    for l in range(c.depth):
        lin = nn.Linear(fan_in, c.width, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(network.parameters[3 * l].T.copy()))
        layers += [lin, nn.BatchNorm1d(c.width, eps=c.eps, momentum=c.bn_momentum), nn.ReLU(inplace=True)]
        fan_in = c.width
    out = nn.Linear(fan_in, c.num_classes)
    with torch.no_grad():
        out.weight.copy_(torch.from_numpy(network.parameters[-2].T.copy()))
        out.bias.zero_()
    model = nn.Sequential(*layers, out).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train.astype(np.int64))
    rng = np.random.default_rng(seed)
    n = len(data.x_train)
    state = {"order": torch.from_numpy(rng.permutation(n)), "k": 0}

    def step():
        k = state["k"]
        if (k + 1) * batch > n:
            state["order"], k = torch.from_numpy(rng.permutation(n)), 0
        idx = state["order"][k * batch:(k + 1) * batch]
        state["k"] = k + 1
        x, labels = xt.index_select(0, idx), yt.index_select(0, idx)
        opt.zero_grad(set_to_none=False)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        int((logits.argmax(dim=1) == labels).sum())
        return float(loss.detach())

    return step


#: Seconds of quiet before each timed block: idle BLAS and OpenMP threads spin (OpenBLAS's yield
#: for about 2^28 cycles after a call) before they sleep, and must not spin beside the next contender.
SETTLE = 0.3


def timed_steps(fn, steps):
    """ms per step of ``steps`` calls of ``fn``, after :data:`SETTLE` seconds of quiet and one untimed
    call (caches and thread pools)."""
    time.sleep(SETTLE)
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1e3


def torch_side(conn, threads, data_dir, width):
    """The PyTorch contenders, in their own process: they answer ``("setup", depth, batch)`` and
    ``("time", name, steps)`` on ``conn`` until ``None``.

    PyTorch's OpenMP threads and NumPy's OpenBLAS threads both spin for a while after each
    product; in one process each library's spinning threads took the cores from the other's
    (measured: PyTorch at (20, 16) 13.5 ms a step beside bnsym, 7.3 ms alone), so the two never
    share a process.
    """
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)
    import numpy as np

    try:
        import torch
    except ImportError:
        conn.send(None)
        return
    torch.set_num_threads(threads)
    from bnsym.train.datasets import load_dataset

    data = load_dataset("fashion-mnist", data_dir)
    conn.send(torch.__version__)
    contenders = {}
    while (message := conn.recv()) is not None:
        if message[0] == "setup":
            _, depth, batch = message
            _, network = bnsym_step(np, data, depth, batch, width)  # the same initial weights as bnsym's
            contenders = {
                "torch": torch_step(torch, np, data, network, batch),
                "torch gemm": layered_gemm_step(torch, np, depth, batch, width, data.input_dim, data.num_classes),
            }
            conn.send(list(contenders))
        else:
            _, name, steps = message
            conn.send(timed_steps(contenders[name], steps))


def receive(conn, remote):
    """The PyTorch process's next answer, or SystemExit if it died (its traceback is on stderr)."""
    try:
        return conn.recv()
    except EOFError:
        remote.join()
        raise SystemExit(f"bench_train: the PyTorch process exited (code {remote.exitcode}); see its error above") from None


def compare(np, data, configs, width, threads, rounds, steps, data_dir=None, use_torch=True):
    """Median ms/step of bnsym, PyTorch and the roofs per configuration, alternated within the run
    (the PyTorch contenders in a process of their own: :func:`torch_side`)."""
    import multiprocessing

    remote, torch_version = None, None
    if use_torch:
        context = multiprocessing.get_context("spawn")
        conn, child_conn = context.Pipe()
        remote = context.Process(target=torch_side, args=(child_conn, threads, data_dir, width), daemon=True)
        remote.start()
        child_conn.close()  # the child's end: its exit then ends our reads with EOFError instead of a hang
        torch_version = receive(conn, remote)
        if torch_version is None:
            remote.join()
            remote = None
    rows = []
    try:
        for depth, batch in configs:
            contenders = {}
            contenders["bnsym"], _ = bnsym_step(np, data, depth, batch, width)
            contenders["sgemm"] = layered_gemm_step(np, np, depth, batch, width, data.input_dim, data.num_classes,
                                                shared=True)
            contenders["layered"] = layered_gemm_step(np, np, depth, batch, width, data.input_dim, data.num_classes)
            names = list(contenders)
            if remote is not None:
                conn.send(("setup", depth, batch))
                names += receive(conn, remote)
            times = {name: [] for name in names}
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    if name in contenders:
                        times[name].append(timed_steps(contenders[name], steps))
                    else:
                        conn.send(("time", name, steps))
                        times[name].append(receive(conn, remote))
            med = {name: float(np.median(t)) for name, t in times.items()}
            rows.append((depth, batch, med, {name: (min(t), max(t)) for name, t in times.items()}))
    finally:
        if remote is not None and remote.is_alive():
            try:
                conn.send(None)
            except OSError:  # the child went away: its own traceback says why
                pass
            remote.join(timeout=30)
    return rows, torch_version


def print_comparison(rows, torch_version, width, threads, rounds, steps):
    load = os.getloadavg()
    print(f"bench_train: bnsym vs PyTorch CPU {torch_version or '(not installed)'} vs sgemm roof; width {width}, "
          f"ReLU, batch norm eps 1e-3, SGD momentum 0.9, float32, {threads} threads; medians of {rounds} "
          f"alternated rounds of {steps} steps; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  {'depth':>5} {'B':>5} {'bnsym ms':>9} {'torch ms':>9} {'sgemm ms':>9} "
          f"{'bnsym/torch':>12} {'sgemm/bnsym':>12} {'layered ms':>11} {'torch gemm':>11}   (range bnsym / torch)")
    for depth, batch, med, span in rows:
        t = med.get("torch")
        ratio = f"{med['bnsym'] / t:12.2f}" if t else f"{'-':>12}"
        tt = f"{t:9.2f}" if t else f"{'-':>9}"
        spans = " / ".join(f"{span[k][0]:.1f}-{span[k][1]:.1f}" for k in ("bnsym", "torch") if k in span)
        tg = f"{med['torch gemm']:11.2f}" if "torch gemm" in med else f"{'-':>11}"
        print(f"  {depth:5d} {batch:5d} {med['bnsym']:9.2f} {tt} {med['sgemm']:9.2f} {ratio} "
              f"{med['sgemm'] / med['bnsym']:12.2f} {med['layered']:11.2f} {tg}   ({spans})")


def one_epoch(np, data, args):
    """The full-epoch report of fit: throughput, GFLOP/s, memory, accuracy."""
    import tracemalloc

    from bnsym.train.training import build, fit

    B, N, L = args.batch_size, args.width, args.depth
    network, optimizer = build(data, depth=L, width=N, batch_size=B, lr=0.01, momentum=0.9, dtype="float32")
    result = fit(network, optimizer, data, epochs=args.epochs, batch_size=B)
    samples = result.steps * B
    achieved = network.flops_per_sample() * samples / result.seconds / 1e9
    tracemalloc.start()
    x, y = data.x_train[:B], data.y_train[:B]
    for _ in range(5):
        network.loss_and_gradients(x, y)
        optimizer.step(network.gradients)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"bench_train: fit, Fashion-MNIST, depth {L}, width {N}, batch {B}, float32, SGD+momentum, "
          f"{args.epochs} epoch(s), {args.threads} threads, {os.cpu_count()} CPUs")
    print(f"  steps                      {result.steps}")
    print(f"  training time              {result.seconds:.2f} s")
    print(f"  samples/s                  {samples / result.seconds:.0f}")
    print(f"  achieved                   {achieved:.1f} GFLOP/s  ({network.flops_per_sample() / 1e6:.2f} MFLOP/sample)")
    print(f"  peak RSS                   {maxrss_mib:.0f} MiB (includes the dataset, {data.x_train.nbytes / 2**20:.0f} "
          f"MiB of float32 training images, and PyTorch if loaded)")
    print(f"  tracemalloc peak per step  {traced_peak / 2**20:.1f} MiB (activations, gradients, scratch)")
    print(f"  test accuracy              {result.test_accuracy:.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="BLAS / PyTorch threads (default 2)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"depth x batch list (default {DEFAULT_CONFIGS})")
    parser.add_argument("--rounds", type=int, default=9, help="alternated rounds per configuration (default 9)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round (default 10)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    parser.add_argument("--epochs", type=int, default=0, help="epochs of the fit report (default 0: skip)")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(args.threads)
    import numpy as np

    from bnsym.train.datasets import load_dataset

    data = load_dataset("fashion-mnist", args.data_dir)
    configs = parse_configs(args.configs)
    if configs and args.rounds > 0:
        rows, version = compare(np, data, configs, args.width, args.threads, args.rounds, args.steps,
                                args.data_dir, use_torch=not args.no_torch)
        print_comparison(rows, version, args.width, args.threads, args.rounds, args.steps)
    if args.epochs > 0:
        one_epoch(np, data, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
