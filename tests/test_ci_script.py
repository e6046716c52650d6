"""``.ci/run``'s checks before it installs anything: a disk too full for the environment and a
README whose two commands cannot be read both stop it at once, with a message that says why.

Each case runs a copy of the script in a temporary folder, so the project's own ``.venv`` is never
touched and nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_ci_copy(tmp_path: Path, readme: str, required_gib: int) -> subprocess.CompletedProcess:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(readme)
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # no chromium install from a test
    env["PERSONAX_CI_REQUIRED_GIB"] = str(required_gib)
    return subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_disk_too_full_for_the_environment_stops_ci_before_the_install(tmp_path):
    readme = "```bash\necho install-ran > marker\n```\n\n```bash\necho tests-ran\n```\n"
    # No disk has a million GiB free, so the check must refuse.
    result = _run_ci_copy(tmp_path, readme, required_gib=1_000_000)
    assert result.returncode == 3, result.stderr
    assert "not enough disk for the install" in result.stderr
    assert "1000000 GiB" in result.stderr
    assert not (tmp_path / "marker").exists()


def test_ci_runs_the_readmes_first_two_bash_blocks_when_the_disk_has_room(tmp_path):
    readme = (
        "intro\n\n```bash\necho install-ran > marker\n```\n\ntext\n\n```bash\necho tests-ran\n```\n\n"
        "```bash\necho third-block-must-not-run\n```\n"
    )
    result = _run_ci_copy(tmp_path, readme, required_gib=0)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "marker").read_text() == "install-ran\n"
    assert "tests-ran" in result.stdout
    assert "third-block-must-not-run" not in result.stdout
    assert "GiB free where .venv goes" in result.stdout


def test_a_readme_without_two_commands_stops_ci(tmp_path):
    result = _run_ci_copy(tmp_path, "```bash\necho only-one\n```\n", required_gib=0)
    assert result.returncode == 2
    assert "could not read the two commands from README.md" in result.stderr
