"""The house rules of the package layout, read from the source with ``ast``.

Layers, lowest first (a module may import its own layer and those below, never above):

0. ``bnsym.errors``, ``bnsym.validation``, ``bnsym.blas``, ``bnsym.estimate``, ``bnsym.subspaces``, ``bnsym.text`` (the base)
1. ``bnsym.activations``
2. ``bnsym.numerics`` and, apart from it, ``bnsym.montecarlo`` (the witness)
3. ``bnsym.meanfield``
4. ``bnsym.symbolic``
5. ``bnsym.train``
6. ``bnsym.plotting``, ``bnsym.cli``, ``bnsym`` itself (the edges)

and besides: the witness imports nothing from ``numerics``, ``meanfield`` or ``symbolic``;
no module imports a private name (``_x``) from another module; no public function has the
name of its own module or of a sibling module.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "bnsym"

LAYERS = {
    "bnsym.errors": 0, "bnsym.validation": 0, "bnsym.blas": 0, "bnsym.estimate": 0, "bnsym.subspaces": 0, "bnsym.text": 0,
    "bnsym.activations": 1,
    "bnsym.numerics": 2, "bnsym.montecarlo": 2,
    "bnsym.meanfield": 3,
    "bnsym.symbolic": 4,
    "bnsym.train": 5,
    "bnsym.plotting": 6, "bnsym.cli": 6, "bnsym": 6,
    "bnsym.experiments": 6,  # grids on Dask and the results store: every layer but cli (it imports experiments)
}
#: The witness must not share the engine's mathematics.
WITNESS_FORBIDDEN = ("bnsym.numerics", "bnsym.meanfield", "bnsym.symbolic")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _layer_key(module: str) -> str:
    best = "bnsym"
    for key in LAYERS:
        if (module == key or module.startswith(key + ".")) and len(key) > len(best):
            best = key
    return best


def _imports(name: str, path: pathlib.Path):
    """``(imported module, imported names, line)`` for every import of a bnsym module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "bnsym" or module.startswith("bnsym."):
                yield module, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bnsym"):
                    yield alias.name, [], node.lineno


def _edges():
    for name, path in _modules():
        for module, names, line in _imports(name, path):
            for target in [module] + [f"{module}.{n}" for n in names]:
                yield name, target, names, f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_layout_is_read():
    names = {name for name, _ in _modules()}
    assert {"bnsym.numerics", "bnsym.meanfield", "bnsym.montecarlo", "bnsym.activations"} <= names
    assert sum(1 for _ in _edges()) > 50


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for source, target, _, where in _edges():
        if not (target == "bnsym" or target.startswith("bnsym.")):
            continue
        if target == "bnsym":  # `from bnsym import validation` names its module; checked via the name
            continue
        src, dst = LAYERS[_layer_key(source)], LAYERS[_layer_key(target)]
        if dst > src:
            bad.append(f"{where}: {source} (layer {src}) imports {target} (layer {dst})")
    assert not bad, "\n".join(bad)


def test_witness_is_independent_of_the_engine():
    bad = [
        f"{where}: {source} imports {target}"
        for source, target, _, where in _edges()
        if source.startswith("bnsym.montecarlo") and target.startswith(WITNESS_FORBIDDEN)
    ]
    assert not bad, "\n".join(bad)


def test_no_private_name_is_imported_across_modules():
    bad = []
    for name, path in _modules():
        for module, names, line in _imports(name, path):
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {n} from {module}")
    assert not bad, "\n".join(bad)


def test_no_public_function_is_named_like_its_module_or_a_sibling():
    bad = []
    for name, path in _modules():
        siblings = {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if node.name in siblings:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}: {node.name} shares its name with a module here")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", ["activations", "numerics", "meanfield", "montecarlo", "symbolic", "train", "cli"])
def test_every_layer_package_says_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "import" in doc.lower(), f"bnsym/{package}/__init__.py must say what it may import"


def test_public_entry_points_are_functions_not_modules():
    import bnsym

    for name in ("fixed_point", "gradient_explosion_rate", "trainable_depth", "spectrum", "propagate",
                 "derive", "simulate", "symmetry_breaking"):
        assert callable(getattr(bnsym, name)), name
