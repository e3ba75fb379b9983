"""The results store: one SQLite file (WAL mode), one row per cell (docs/theory.md section 17).

A cell is identified by its *configuration*, a dict of JSON values; its key is the
canonical JSON of that dict (sorted keys, no spaces, non-finite floats as ``null``), so the
same cell always has the same key, whoever computed it.  Table ``cells``:

``key`` (primary key), ``kind`` (``"train"``, ``"scan"``), ``status``, indexed columns
``quantity, activation, batch_size, depth, seed, gamma, beta, eps``, ``value``, ``error``,
``record`` (the whole record as JSON), ``finished`` (Unix time), ``attempts``.

Rules: each row is written in its own ``BEGIN IMMEDIATE`` transaction (a process killed
mid-write leaves the previous state); a *finished* row (status in :data:`FINISHED`) is
never overwritten, so a cell appears at most once whatever the number of writers; a row
with status ``"error"`` (an unexpected failure) is replaced when the cell is run again.
A file that is not an SQLite database, or a database without the bnsym marker table, is
refused with one line.  Cost: one fsync per row.

:func:`migrate_jsonl` copies the JSON-lines results of sweeps made before the store into
one, under the key a new sweep of the same cell uses, so rerunning the old command
against the store skips them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import time
from pathlib import Path

from bnsym.errors import BnsymInputError
from bnsym.train.sweep import json_safe, read_results, record_config

#: Value of ``meta.format`` in every bnsym store.
FORMAT = "bnsym-store"
VERSION = "1"
#: Statuses of finished cells, skipped on resume: trained, trained and diverged, refused by the engine.
FINISHED = ("ok", "diverged", "failed")
#: Configuration fields copied into indexed columns (when the configuration has them).
COLUMNS = ("quantity", "activation", "batch_size", "depth", "seed", "gamma", "beta", "eps")
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
    quantity TEXT, activation TEXT, batch_size REAL, depth INTEGER, seed INTEGER,
    gamma REAL, beta REAL, eps REAL, value REAL, error REAL,
    record TEXT NOT NULL, finished REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS cells_kind_status ON cells (kind, status);
CREATE INDEX IF NOT EXISTS cells_axes ON cells ({", ".join(COLUMNS)});
"""


def canonical(config: dict) -> str:
    """The key of a cell: its configuration as JSON with sorted keys and no spaces."""
    return json.dumps(json_safe(config), sort_keys=True, separators=(",", ":"), allow_nan=False)


def is_store_file(path) -> bool:
    """Whether ``path`` is a regular file that starts with the SQLite header (a store, or not)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) or math.isinf(x) else None


class Store:
    """An open results store; ``Store(path)`` creates it if the file is missing or empty.

    Use as a context manager (the connection is closed on exit).  ``path`` may be
    ``":memory:"`` for a store that lives only as long as the object.
    """

    def __init__(self, path, *, timeout: float = 60.0):
        self.path = str(path)
        if self.path != ":memory:":
            self._check_path(Path(self.path))
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("BEGIN IMMEDIATE")
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            marker = dict(self._db.execute("SELECT name, value FROM meta")) if "meta" in tables else {}
            if tables and marker.get("format") != FORMAT:  # someone else's database: leave it alone
                self._db.execute("ROLLBACK")
                self._db.close()
                raise BnsymInputError(f"store {self.path!r} is an SQLite database but not a bnsym store")
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('version', ?)", (FORMAT, VERSION))
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise BnsymInputError(f"store {self.path!r} is not a bnsym store ({exc})") from None

    @staticmethod
    def _check_path(path: Path):
        if path.is_dir():
            raise BnsymInputError(f"store {str(path)!r} is a directory, not a file")
        if path.exists():
            if not path.is_file():
                raise BnsymInputError(f"store {str(path)!r} is not a regular file")
            if path.stat().st_size and not is_store_file(path):
                raise BnsymInputError(f"store {str(path)!r} is not a bnsym store (not an SQLite database)")
            if not os.access(path, os.W_OK):
                raise BnsymInputError(f"store {str(path)!r} is not writable")
        else:
            parent = path.parent if str(path.parent) else Path(".")
            if parent.exists() and not parent.is_dir():
                raise BnsymInputError(f"store {str(path)!r}: {str(parent)!r} is not a directory")
            if not parent.is_dir():
                raise BnsymInputError(f"store {str(path)!r}: the directory {str(parent)!r} does not exist")
            if not os.access(parent, os.W_OK):
                raise BnsymInputError(f"store {str(path)!r}: the directory {str(parent)!r} is not writable")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._db.close()

    # ------------------------------------------------------------------ writing
    def put(self, config: dict, record: dict, *, kind: str) -> bool:
        """Write the row of one cell in one transaction; return whether it was written.

        ``record["status"]`` is the row's status.  A finished row already present (another
        client finished the cell first) is kept and ``False`` returned.
        """
        key = canonical(config)
        status = record.get("status", "error")
        columns = [_number(config.get(c)) if c not in ("quantity", "activation") else config.get(c) for c in COLUMNS]
        payload = json.dumps(json_safe(record), sort_keys=True, allow_nan=False)
        value, error = _number(record.get("value", record.get("test_accuracy"))), _number(record.get("error"))
        placeholders = ", ".join("?" * (len(COLUMNS) + 7))
        with self._transaction():
            cursor = self._db.execute(
                f"INSERT INTO cells (key, kind, status, {', '.join(COLUMNS)}, value, error, record, finished) "
                f"VALUES ({placeholders}) ON CONFLICT (key) DO UPDATE SET status = excluded.status, "
                "value = excluded.value, error = excluded.error, record = excluded.record, "
                "finished = excluded.finished, attempts = cells.attempts + 1 "
                f"WHERE cells.status NOT IN ({', '.join('?' * len(FINISHED))})",
                (key, kind, status, *columns, value, error, payload, time.time(), *FINISHED),
            )
            return cursor.rowcount > 0

    def _transaction(self):
        db = self._db

        class Transaction:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, *_):
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return Transaction()

    # ------------------------------------------------------------------ reading
    def finished_keys(self, kind: str | None = None) -> set:
        """Keys of the finished cells (of one ``kind``, or all)."""
        query = f"SELECT key FROM cells WHERE status IN ({', '.join('?' * len(FINISHED))})"
        args = list(FINISHED)
        if kind is not None:
            query += " AND kind = ?"
            args.append(kind)
        return {row[0] for row in self._db.execute(query, args)}

    def rows(self, kind: str | None = None, keys=None) -> list[dict]:
        """Every row as a dict: the stored record plus ``key``, ``kind``, ``status``, ``attempts``."""
        query, args = "SELECT key, kind, status, attempts, record FROM cells", []
        if kind is not None:
            query, args = query + " WHERE kind = ?", [kind]
        out = []
        for key, k, status, attempts, record in self._db.execute(query + " ORDER BY rowid", args):
            if keys is not None and key not in keys:
                continue
            row = json.loads(record)
            row.update(key=key, kind=k, status=status, attempts=attempts)
            out.append(row)
        return out

    def counts(self) -> dict:
        """``{(kind, status): number of rows}``."""
        return {(k, s): n for k, s, n in self._db.execute("SELECT kind, status, COUNT(*) FROM cells GROUP BY kind, status")}

    def export(self, path, *, kind: str | None = None) -> int:
        """Write the rows to ``path``: JSON lines (``.jsonl``) or CSV (``.csv``, nested values as JSON); return the count."""
        path = Path(path)
        rows = self.rows(kind)
        if path.suffix == ".jsonl":
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows)
        elif path.suffix == ".csv":
            fields = sorted({k for row in rows for k in row})
            with open(path, "w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})
        else:
            raise BnsymInputError(f"export file must end in .jsonl or .csv, got {str(path)!r}")
        return len(rows)


def migrate_jsonl(path, store) -> tuple[int, int]:
    """Copy the training records of the JSON-lines file ``path`` into ``store``.

    Returns ``(written, kept)``: rows written, and records whose cell the store already held
    finished (a second migration writes nothing).  Records with status ``"error"`` are copied
    too (they are run again by the next sweep).
    """
    records = read_results(path)
    if not Path(path).exists():
        raise BnsymInputError(f"results file {str(path)!r} does not exist")
    written = 0
    for record in records:
        record = dict(record)
        record.setdefault("status", "diverged" if record.get("diverged") else "ok")
        written += store.put(record_config(record), record, kind="train")
    return written, len(records) - written
