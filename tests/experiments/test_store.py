"""The results store: one row per cell, finished rows never rewritten, foreign files refused,
export round trips, the committed JSON-lines results migrated under the keys a rerun uses."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.experiments.store import Store, canonical, migrate_jsonl
from bnsym.train.sweep import grid, read_results

RESULTS = Path(__file__).resolve().parents[2] / "results"


def _config(g):
    return {"quantity": "q", "activation": "relu", "batch_size": 8, "gamma": g}


def test_rows_are_unique_and_finished_rows_are_kept(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        assert s.put(_config("1"), {"status": "error", "message": "boom"}, kind="scan")
        assert s.put(_config("1"), {"status": "ok", "value": 0.5}, kind="scan")  # an error row is replaced
        assert not s.put(_config("1"), {"status": "ok", "value": 9.0}, kind="scan")  # a finished one is not
        assert s.put(_config("2"), {"status": "failed", "message": "refused"}, kind="scan")
    with Store(path) as s:  # reopened: everything was committed
        rows = s.rows()
        assert [r["status"] for r in rows] == ["ok", "failed"]
        assert rows[0]["value"] == 0.5 and rows[0]["attempts"] == 2
        assert s.finished_keys() == {canonical(_config("1")), canonical(_config("2"))}
        assert s.counts() == {("scan", "ok"): 1, ("scan", "failed"): 1}
        indexed = sqlite3.connect(path).execute("SELECT gamma, batch_size, value FROM cells ORDER BY gamma").fetchall()
        assert indexed == [(1.0, 8.0, 0.5), (2.0, 8.0, None)]
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_canonical_key_ignores_order():
    assert canonical({"a": 1, "b": [1.0, float("nan")]}) == canonical({"b": [1.0, None], "a": 1}) == '{"a":1,"b":[1.0,null]}'


@pytest.mark.parametrize("content, word", [(b"depth,batch\n2,8\n", "not an SQLite database"),
                                           (b"SQLite format 3\x00" + b"\x00" * 200, "not a bnsym store")])
def test_a_file_that_is_not_a_store_is_refused_in_one_line(tmp_path, content, word, capsys):
    path = tmp_path / "x.sqlite"
    path.write_bytes(content)
    with pytest.raises(BnsymInputError, match=word):
        Store(path)
    assert path.read_bytes() == content  # untouched
    assert main(["scan", "q", "relu", "-B", "8", "--store", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnsym: error:") and "\n" not in err and "not" in err


def test_another_programs_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(BnsymInputError, match="SQLite database but not a bnsym store"):
        Store(path)
    tables = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["people"]
    with pytest.raises(BnsymInputError, match="directory"):
        Store(tmp_path)
    with pytest.raises(BnsymInputError, match="does not exist"):
        Store(tmp_path / "missing" / "s.sqlite")


def test_export_round_trips(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.put(_config("1"), dict(_config("1"), status="ok", value=0.5, nested={"a": [1, 2]}), kind="scan")
        s.put({"depth": 2}, {"depth": 2, "status": "diverged", "diverged_at": 7}, kind="train")
        rows = s.rows()
        assert s.export(tmp_path / "s.jsonl") == 2
        assert [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()] == rows
        assert s.export(tmp_path / "t.csv", kind="train") == 1
        with open(tmp_path / "t.csv") as f:
            (row,) = list(csv.DictReader(f))
        assert row["status"] == "diverged" and row["diverged_at"] == "7" and row["kind"] == "train"
        with pytest.raises(BnsymInputError, match=".jsonl or .csv"):
            s.export(tmp_path / "s.txt")


@pytest.mark.parametrize("name, depths", [
    ("fig3a_sweep", [2, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120]),
    ("fig3a_sweep_lr1e-3", [2, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100]),
])
def test_committed_results_are_migrated_under_the_keys_of_their_sweep(name, depths, tmp_path):
    """The committed .sqlite stores hold every record of the .jsonl files (same accuracy), and
    the cells of the command in results/runs.log are all finished in them (a rerun skips them)."""
    old = read_results(RESULTS / f"{name}.jsonl")
    with Store(tmp_path / "m.sqlite") as fresh:
        assert migrate_jsonl(RESULTS / f"{name}.jsonl", fresh) == (len(old), 0)
        assert migrate_jsonl(RESULTS / f"{name}.jsonl", fresh) == (0, len(old))  # idempotent
    with Store(RESULTS / f"{name}.sqlite") as committed:
        rows = committed.rows("train")
        finished = committed.finished_keys()
    assert sorted((r["depth"], r["batch_size"], r["test_accuracy"]) for r in rows) == sorted(
        (r["depth"], r["batch_size"], r["test_accuracy"]) for r in old)
    lr_scale = 1e-3 if name.endswith("1e-3") else 1e-5
    cells = grid(depths, [8, 16, 32, 128, 512], dataset="fashion-mnist", train_size=20000, test_size=5000, epochs=1,
                 lr_scale=lr_scale, eps=1e-3)
    assert {canonical(c.config()) for c in cells} == finished
