"""Python examples shown in the docs run against a real (tiny) run directory."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _python_block(page: str, containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.DOTALL)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"{page}: {len(found)} python blocks contain {containing!r}"
    return found[0]


def test_quickstart_load_pretrained_example_runs(full_run, tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs/demo").symlink_to(full_run)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_python_block("docs/quickstart.md", "load_pretrained"), "quickstart.md", "exec"), namespace)
    latents = namespace["latents"]
    assert set(latents) == {"shared", "image", "text"}
    assert all(len(v) == 60 and np.isfinite(v).all() for v in latents.values())
    assert namespace["model"].graph().shape[0] == sum(v.shape[1] for v in latents.values())
