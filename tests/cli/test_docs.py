"""Documentation checks: the README cannot drift from the code.

The README's Python examples run as doctests (``--doctest-glob=README.md``
in pyproject.toml); here the CLI reference section is compared with what
the parser generates, and the quick-start commands are checked to exist.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

from bnsym.cli import reference

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
#: argparse's help layout changes between Python versions; the committed
#: reference is generated with this one.
GENERATED_WITH = (3, 11)


@pytest.mark.skipif(sys.version_info[:2] != GENERATED_WITH, reason="argparse help layout differs by Python version")
def test_cli_reference_is_generated_from_the_parser():
    text = README.read_text(encoding="utf-8")
    assert reference.section(text) == reference.markdown(), (
        "README.md's CLI reference is stale: run `python -m bnsym.cli.reference --update README.md`"
    )


def test_reference_lists_every_subcommand():
    from bnsym.cli import COMMANDS

    md = reference.markdown()
    for name in COMMANDS:
        assert f"### `bnsym {name.replace('_', '-')}`" in md or f"### `bnsym {name}`" in md


def test_quick_start_is_two_commands():
    text = README.read_text(encoding="utf-8")
    block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("pip install -e . && bnsym ")
    assert lines[1] == 'pip install -e ".[test]" && python -m pytest'


def test_section_requires_markers():
    with pytest.raises(ValueError, match="cli-reference"):
        reference.section("no markers here")


def _shell_examples():
    """``bnsym ...`` lines of the README's bash blocks after the quick start, minus marked skips."""
    text = README.read_text(encoding="utf-8").split("## A tour", 1)[1].split("## Command-line reference", 1)[0]
    lines, skip = [], False
    for chunk in text.split("```"):
        if chunk.startswith("bash\n"):
            if not skip:
                lines += [line for line in chunk[5:].splitlines() if line.startswith("bnsym ")]
            skip = False
        else:
            skip = "<!-- docs-check: skip" in chunk.rsplit("\n\n", 1)[-1]
    return lines


@pytest.mark.parametrize("line", _shell_examples())
def test_readme_shell_example_runs(line, capsys, monkeypatch):
    import shlex

    from bnsym.cli import main

    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert main(shlex.split(line)[1:]) == 0
    assert capsys.readouterr().out.strip()


def test_readme_has_shell_examples():
    assert len(_shell_examples()) >= 4
