"""A rating run killed with SIGKILL resumes where it stopped: nothing lost, nothing asked twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from personax.traits import RequestStore
from personax.traits.testing import FakeChatServer
from tests.traits.conftest import make_rater, make_tasks

N = 60
CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.conftest import compose_config
    from omegaconf import OmegaConf
    from personax.traits import PromptFormat, RequestStore
    from tests.traits.conftest import make_rater, make_tasks
    cfg = compose_config([]).traits
    formats = {{k: PromptFormat.from_config(OmegaConf.to_container(v)) for k, v in cfg.formats.items()}}
    template = OmegaConf.to_container(cfg.prompt)
    with RequestStore({db!r}) as store:
        make_rater({url!r}, template).run(make_tasks(formats, template, {n}), store, progress=False)
    """
)


def _ok_rows(db: Path) -> set[str]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {r[0] for r in conn.execute("SELECT person_id FROM requests WHERE status = 'ok'")}
    except sqlite3.OperationalError:
        return set()


def test_resume_after_sigkill(tmp_path, formats, template):
    db = tmp_path / "requests.sqlite"
    root = str(Path(__file__).resolve().parents[2])
    with FakeChatServer(latency=0.05) as server:
        script = tmp_path / "child.py"
        script.write_text(CHILD.format(root=root, db=str(db), url=server.url, n=N))
        child = subprocess.Popen([sys.executable, str(script)], cwd=root)
        deadline = time.monotonic() + 60
        while len(_ok_rows(db)) < 15 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL
        answered = _ok_rows(db)
        assert 15 <= len(answered) < N, "the kill should land mid-run"
        calls_before = sum(server.calls.values())

        with RequestStore(db) as store:
            outcomes = make_rater(server.url, template).run(make_tasks(formats, template, N), store, progress=False)
            rows = store.conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM requests").fetchone()
            statuses = store.counts()
        assert [o.status for o in outcomes] == ["ok"] * N  # nothing lost
        assert {o.person_id for o in outcomes if o.cached} >= answered  # every stored answer reused
        assert rows == (N, N) and statuses == {"ok": N}  # nothing duplicated
        resent = sum(server.calls.values()) - calls_before
        assert resent == N - len(answered)  # only the unanswered were asked
        # Each prompt was sent once, except those in flight at the kill (at most max_concurrency).
        assert sum(count - 1 for count in server.calls.values()) <= 4
