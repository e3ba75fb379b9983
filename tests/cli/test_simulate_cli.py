"""``bnsym simulate``: the ``--sampler`` option reaches :func:`bnsym.simulate`."""

from __future__ import annotations

import json

import pytest

from bnsym.cli import main


@pytest.mark.parametrize("sampler", ["conditional", "explicit"])
def test_sampler_option_is_passed_through(capsys, sampler):
    argv = ["simulate", "relu", "-B", "4", "-L", "3", "-N", "16", "--seeds", "2", "--no-theory", "--json",
            "--sampler", sampler]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["settings"]["method"] == sampler


def test_default_sampler_is_conditional(capsys):
    assert main(["simulate", "relu", "-B", "4", "-L", "2", "-N", "8", "--seeds", "2", "--no-theory"]) == 0
    assert "conditional sampler" in capsys.readouterr().out


def test_unknown_sampler_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "relu", "-B", "4", "-L", "2", "-N", "8", "--sampler", "gibbs"])
    assert exc.value.code == 2
    assert "invalid choice: 'gibbs'" in capsys.readouterr().err
