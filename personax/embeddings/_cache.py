"""A crash-safe embedding cache: SQLite in WAL mode, keyed by model and content hash.

Each batch is committed as soon as it is encoded, so a run killed mid-way keeps
every finished batch and a rerun encodes only what is missing. Vectors are
stored as raw float32 bytes (never pickled).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> cache = EmbeddingCache(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
    >>> cache.put_many("m", {"k": np.ones(3, np.float32)})
    >>> cache.get_many("m", ["k", "other"])["k"].tolist()
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors by (model key, content hash).

    Args:
        path: The SQLite file (created with its folder if missing).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key TEXT, dim INTEGER, vector BLOB, PRIMARY KEY (model, key))"
        )
        self._db.commit()

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (absent keys are left out)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite's parameter limit
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, dim, vector FROM vectors WHERE model = ? AND key IN ({marks})", [model, *chunk]
            )
            for key, dim, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32, count=dim).copy()
        return found

    def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Stores vectors and commits (one transaction per call)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                [(model, key, int(v.size), np.asarray(v, np.float32).tobytes()) for key, v in vectors.items()],
            )

    def count(self, model: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM vectors WHERE model = ?", [model]).fetchone()[0]

    def close(self) -> None:
        self._db.close()
