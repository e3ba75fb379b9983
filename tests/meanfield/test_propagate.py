"""propagate: the Laplace method against Monte Carlo, rates against the spectrum, bad input."""

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.montecarlo import sampling
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.numerics.gaussian_kernels import homogeneous_coefficients, homogeneous_kernel, homogeneous_variance, orthant_moment
from bnsym.meanfield.propagation import example_input, propagate
from bnsym.subspaces import subspace_direction, subspace_parts
from bnsym.meanfield.linearization import spectrum
from statistical import seed, sigmas


INPUTS = {
    "random": example_input("random", 6, seed=3),
    "collinear": example_input("collinear", 6, seed=3),
    "diagonal": np.diag([1.0, 2.0, 0.5, 3.0, 1.5, 0.25]) + 0.3,
}


@pytest.mark.statistical
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_laplace_map_matches_monte_carlo(name):
    """One Laplace layer vs 10^6 samples of the same layer map, each of the 21 upper-triangular
    entries within ``sigmas(21) = 4.57`` standard errors (Bonferroni), for three non-BSB1
    inputs: false-failure probability <= 1e-4 per input by design."""
    gram = INPUTS[name]
    exact = propagate("relu", gram, 1, dps=12)
    assert exact.method == "laplace"
    mc = sampling.gram_map("relu", gram, samples=10**6, seed=seed(11))
    z = np.abs(exact.grams[1] - mc.mean) / mc.stderr
    iu = np.triu_indices(6)
    assert z[iu].max() < sigmas(len(iu[0])), z


def test_laplace_high_precision_agrees_with_float_path():
    gram = INPUTS["random"]
    fast = propagate("relu", gram, 1, dps=12)
    slow = propagate("relu", gram, 1, dps=20)
    assert np.abs(fast.grams[1] - slow.grams[1]).max() < 1e-11
    with mpmath.workdps(30):
        assert max(abs(x) for x in (slow.grams_mp[1] - slow.grams_mp[1].T)) == 0


def test_kernel_formula_against_direct_integration():
    """The hypergeometric orthant moment against a 2D quadrature (alpha = 1.5) and the arc-cosine form (alpha = 1)."""
    with mpmath.workdps(12):
        rho = mpmath.mpf("0.3")
        a = mpmath.mpf("1.5")
        density = lambda x, y: mpmath.exp(-(x * x - 2 * rho * x * y + y * y) / (2 * (1 - rho**2))) / (2 * mpmath.pi * mpmath.sqrt(1 - rho**2))
        direct = mpmath.quad(lambda x, y: x**a * y**a * density(x, y), [0, mpmath.inf], [0, mpmath.inf])
        assert abs(orthant_moment(a, rho) - direct) < 1e-9
        theta = mpmath.acos(rho)
        arccos = (mpmath.sin(theta) + (mpmath.pi - theta) * rho) / (2 * mpmath.pi)
        assert abs(orthant_moment(mpmath.mpf(1), rho) - arccos) < 1e-10
        coeffs = homogeneous_coefficients(bnsym.activation("identity"))
        assert abs(homogeneous_kernel(coeffs, 2, 3, mpmath.mpf("0.7")) - mpmath.mpf("0.7")) < 1e-10
        assert abs(homogeneous_variance(coeffs, 2) - 2) < 1e-10


@pytest.mark.parametrize("b", [6, 8])
def test_laplace_convergence_rates_match_forward_eigenvalues(b):
    """relu.  From a far random input the slowest subspace (L here) sets the late-layer rate;
    from Sigma* + 1e-5 P (P in L or M) each subspace decays at its own eigenvalue (up to O(1e-5)
    nonlinear leakage: far from Sigma* the M part is fed by L x L terms and decays like lambda_L^2)."""
    spec = spectrum("relu", b, dps=12)
    lam = {sub: float(spec.eigenvalue("forward", sub).value) for sub in ("L", "M")}
    assert lam["L"] > lam["M"]
    far = propagate("relu", example_input("random", b, seed=1), 30, dps=12)
    assert abs(far.distance_L[-1] / far.distance_L[-2] - lam["L"]) < 2e-3
    fp = spec.fixed_point
    star = fp.array()
    for sub in ("L", "M"):
        near = propagate("relu", star + 1e-5 * subspace_direction(b, sub), 4, dps=12)
        dist = near.distance_L if sub == "L" else near.distance_M
        for layer in (2, 3, 4):
            assert abs(dist[layer] / dist[layer - 1] - lam[sub]) < 1e-4, (sub, layer)


def test_fallback_to_sampling_says_so():
    p = propagate("relu", INPUTS["random"], 2, beta=0.3, samples=20000, chains=3)  # kinked at beta != 0: sampled
    assert p.method == "sampling" and p.grams_mp is None and p.chains == 3
    assert all(np.all(e > 0) for e in p.errors[1:])
    assert p.distance_error[2] > 0


def test_subspace_parts_decompose():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 7))
    x = a + a.T
    g = np.eye(7) - 1 / 7
    parts = subspace_parts(x)
    assert np.allclose(sum(parts), g @ x @ g)
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(np.sum(parts[i] * parts[j])) < 1e-12


@pytest.mark.parametrize(
    "gram, kwargs, word",
    [
        (np.diag([1.0, -1.0, 1.0, 1.0]), {}, "positive semidefinite"),
        (np.ones((4, 5)), {}, "square"),
        (np.where(np.eye(5) > 0, np.nan, 0.1), {}, "nan"),
        (np.eye(5), dict(batch_size=6), "batch_size"),
        (np.eye(3), {}, "at least 4"),
        (np.ones((5, 5)), {}, "G Sigma G = 0"),
        ([[1, 2], "x"], {}, "square matrix"),
        (np.eye(5), dict(depth=0), "depth"),
        (np.eye(5), dict(depth=2.5), "depth"),
        (np.eye(5), dict(activation="tanh", method="laplace"), "laplace"),
        (np.eye(5), dict(beta=0.5, method="laplace"), "beta"),
        (np.eye(5), dict(method="exact"), "method"),
    ],
)
def test_bad_input(gram, kwargs, word):
    kwargs = dict(kwargs)
    activation = kwargs.pop("activation", "relu")
    depth = kwargs.pop("depth", 2)
    with pytest.raises(BnsymInputError, match=word):
        propagate(activation, gram, depth, **kwargs)


def test_cli_spectrum_and_propagate(tmp_path, capsys):
    import json

    from bnsym.cli import main

    assert main(["spectrum", "relu", "--batch-size", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stable"] is True and [e["subspace"] for e in out["forward"]] == ["G", "L", "M"]
    gram = tmp_path / "gram.npy"
    np.save(gram, INPUTS["diagonal"])
    assert main(["propagate", "relu", "-B", "6", "-L", "3", "--input", str(gram), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "laplace" and len(out["layers"]) == 4
    assert main(["propagate", "relu", "-B", "5", "-L", "3", "--input", str(gram)]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert main(["propagate", "relu", "-B", "6", "-L", "0"]) == 2
    assert main(["propagate", "tanh", "-B", "6", "-L", "2", "--map", "laplace"]) == 2
    assert main(["spectrum", "relu", "-B", "3"]) == 2


@pytest.mark.slow
def test_cli_propagate_plot(tmp_path):
    from bnsym.cli import main

    path = tmp_path / "distance.png"
    assert main(["propagate", "relu", "-B", "6", "-L", "4", "--plot", str(path), "--width", "64", "--seeds", "2"]) == 0
    assert path.stat().st_size > 1000


def test_sampling_names_the_layer_whose_output_collapsed():
    """ReLU at beta = -sqrt(3), B = 4: phi(x + beta) = 0 on the whole support |x| <= sqrt(3) of the normalized
    values, so layer 1's output is constant across the batch and layer 2's batch norm has nothing to divide
    by; the error names that layer, not an argument the user did not pass (found by review)."""
    with pytest.raises(BnsymError, match=r"layer 1's output Gram matrix \(sampled; layer 2's input\) has no component "
                                         r"orthogonal .* batch norm divides by zero"):
        propagate("relu", np.diag([1.0, 2.0, 3.0, 4.0]), 2, beta=-1.73205, samples=2000, chains=2, method="sampling")
