"""The request store: every request and raw response, crash-safe, in SQLite (WAL).

One row per request key in ``requests`` (the key hashes rater, model, format,
messages, sampling parameters and repeat number); one row per HTTP exchange in
``exchanges`` (status code, raw response body or transport error, time taken),
repair round-trips included. Each answer is committed (with its raw exchanges) the moment it arrives, so
a process killed at any point (``kill -9``) loses at most the requests in flight,
and a rerun sends only the requests without a final answer: nothing answered is
asked twice and no key is stored twice (it is the primary key).

Statuses: ``ok`` (valid answer), ``refused`` and ``invalid`` (the model answered,
but with a refusal or, after the repair round-trip, still not the required
JSON) are final: they were paid for and are not asked again. ``failed``
(transport errors, 429/5xx after the last retry, client errors) is retried by
the next run unless ``retry_failed=False``. ``pending`` marks a request in
flight; a run that finds one (its process was killed) sends it again.

Only request bodies are stored, never headers, so the API key is not in the store.

Example:
    >>> import tempfile, pathlib
    >>> store = RequestStore(pathlib.Path(tempfile.mkdtemp()) / "r.sqlite")
    >>> key = request_key({"rater": "x", "messages": []})
    >>> store.start(key, {"rater": "x"}, {"messages": []})
    >>> store.finish(key, "ok", result={"scores": {"o": 1}})
    >>> store.get(key)["status"]
    'ok'
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

FINAL_STATUSES = ("ok", "refused", "invalid")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    rater TEXT NOT NULL,
    model TEXT,
    format TEXT,
    person_id TEXT,
    repeat INTEGER,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_rater ON requests (rater, format, status);
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    http_status INTEGER,
    response TEXT,
    error TEXT,
    elapsed_s REAL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_by_key ON exchanges (key);
"""


def request_key(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (rater, model, format, prompt, parameters, repeat)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class RequestStore:
    """SQLite store of requests and responses (see the module docstring).

    Args:
        path: The database file (created with its folder).
        synchronous: SQLite's ``synchronous`` pragma. ``NORMAL`` (default) in WAL
            mode survives a killed process; ``FULL`` also survives power loss, at
            the cost of one fsync per answer.
        redact: Strings (secrets) replaced by ``[REDACTED]`` in everything stored.
    """

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "NORMAL", redact: tuple[str, ...] = ()):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._redact = tuple(s for s in redact if s)
        self._exchanges: dict[str, list[tuple[Any, ...]]] = {}
        self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Checkpoints the WAL into the database file and closes it."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()

    def __enter__(self) -> RequestStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _clean(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self._redact:
            text = text.replace(secret, "[REDACTED]")
        return text

    def _dump(self, obj: Any) -> str | None:
        return None if obj is None else self._clean(json.dumps(obj, ensure_ascii=False, default=str))

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT key, status, result, error, attempts FROM requests WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return {"key": row[0], "status": row[1], "result": json.loads(row[2]) if row[2] else None,
                "error": row[3], "attempts": row[4]}

    def start(self, key: str, meta: Mapping[str, Any], request: Any) -> None:
        """Records a request before it is sent (status ``pending``)."""
        now = time.time()
        self.conn.execute(
            "INSERT INTO requests (key, rater, model, format, person_id, repeat, request, status, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET status = 'pending', updated = excluded.updated",
            (key, meta.get("rater"), meta.get("model"), meta.get("format"), meta.get("person_id"),
             meta.get("repeat"), self._dump(request), now, now),
        )

    def exchange(self, key: str, kind: str, http_status: int | None, response: str | None,
                 error: str | None, elapsed_s: float) -> None:
        """Records one HTTP exchange (raw response body or transport error); written with :meth:`finish`."""
        self._exchanges.setdefault(key, []).append(
            (key, kind, http_status, self._clean(response), self._clean(error), elapsed_s, time.time()))

    def finish(self, key: str, status: str, *, result: Any = None, error: str | None = None, attempts: int = 0) -> None:
        """Stores the outcome of a request and its exchanges, in one transaction."""
        exchanges = self._exchanges.pop(key, [])
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                "INSERT INTO exchanges (key, kind, http_status, response, error, elapsed_s, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", exchanges)
            self.conn.execute(
                "UPDATE requests SET status = ?, result = ?, error = ?, attempts = attempts + ?, updated = ? WHERE key = ?",
                (status, self._dump(result), self._clean(error), attempts, time.time(), key),
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def counts(self, rater: str | None = None) -> dict[str, int]:
        """Requests per status (of one rater, or all)."""
        query = "SELECT status, COUNT(*) FROM requests"
        args: tuple[Any, ...] = ()
        if rater is not None:
            query += " WHERE rater = ?"
            args = (rater,)
        return dict(self.conn.execute(query + " GROUP BY status", args).fetchall())

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every stored request with its outcome."""
        cursor = self.conn.execute(
            "SELECT key, rater, model, format, person_id, repeat, status, result, error, attempts FROM requests"
        )
        for row in cursor:
            yield {"key": row[0], "rater": row[1], "model": row[2], "format": row[3], "person_id": row[4],
                   "repeat": row[5], "status": row[6], "result": json.loads(row[7]) if row[7] else None,
                   "error": row[8], "attempts": row[9]}
