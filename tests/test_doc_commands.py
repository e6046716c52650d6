"""Every ``python -m personax.run`` command shown in the README and docs composes and passes the
pipeline's checks; the README's own-cohort command runs end to end against the fake LLM server.

Composing a command (in-process, as Hydra would) catches what a reader would hit first: an
override of a key that does not exist (``data.columns.height_cm=Height`` without ``+``), an
unknown experiment or stage, a measurement that names no artifact, stages in an order the run
directory contract forbids. Sweeps (``-m a=1,2``) are composed with each swept key's first value.
Placeholders (``/path/...``, ``$LLM_URL``) are fine: nothing is read.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from personax.pipeline import STAGES, Manifest, check_order, resolve_stages
from personax.traits.testing import FakeChatServer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "experiments").rglob("*.md"))]
RUN = re.compile(r"(?:^|\s)(?:\S*python3?|\.venv/bin/python) -m personax\.run\b(.*)$")


def shown_commands() -> list[tuple[str, str]]:
    """(file, argument string) of every personax.run command in a fenced block or inline code."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        # join shell continuations, then look at each line of code (fenced or `inline`)
        text = re.sub(r"\\\n\s*", " ", text)
        for line in text.splitlines():
            for code in [line] if not line.count("`") >= 2 else re.findall(r"`([^`]+)`", line) + [line]:
                match = RUN.search(code.split("#", 1)[0].strip().rstrip("`"))
                if match and "`" not in match.group(1):
                    found.append((str(path.relative_to(ROOT)), match.group(1).strip()))
    return sorted(set(found))


def _overrides(arguments: str) -> list[str]:
    env = {"LLM_URL": "http://127.0.0.1:1/v1", "LLM_MODEL": "m", "LLM_KEY_ENV": "null", "URL": "http://127.0.0.1:1/v1"}
    words = shlex.split(re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), "x"), arguments))
    out = []
    for word in words:
        if word.startswith("-") or "=" not in word:  # -m, --cfg job, "..." placeholders
            continue
        key, _, value = word.partition("=")
        if value.startswith("[") and "],[" in value:
            value = value[: value.index("]") + 1]  # a sweep over lists: its first job
        elif "," in value and not value.startswith(("[", "{")) and not key.startswith("hydra"):
            value = value.split(",")[0]  # a sweep: its first job
        out.append(f"{key}={value}")
    return out


COMMANDS = shown_commands()


def test_the_docs_show_commands():
    files = {f for f, _ in COMMANDS}
    assert len(COMMANDS) > 20 and {"README.md", "docs/own_data.md", "docs/quickstart.md"} <= files


@pytest.mark.parametrize("where,arguments", COMMANDS, ids=[f"{f}:{a[:60]}" for f, a in COMMANDS])
def test_shown_command_composes_and_passes_the_pipeline_checks(where, arguments, compose_cfg, tmp_path):
    overrides = [o for o in _overrides(arguments) if not o.startswith(("hydra/", "hydra."))]
    config = compose_cfg(overrides)
    specs = resolve_stages(list(config.stages))
    manifest = Manifest(tmp_path)
    if "ingest" not in config.stages:  # a stage run alone (stages=[crl]) on a run directory where the rest finished
        manifest.data["stages"] = {name: {"status": "done"} for name in STAGES}
    check_order(specs, config, manifest, tmp_path)
    OmegaConf.to_container(config, resolve=True)  # every interpolation resolves


def _readme_block(marker: str) -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


@pytest.mark.slow
def test_readme_own_cohort_with_an_llm_rater_runs_every_stage(tmp_path):
    """The README's own-data command, as written, against the fake OpenAI-compatible server."""
    block = _readme_block("traits.raters.llm=openai_compatible")
    (command,) = [line for line in block.splitlines() if "personax.run" in line]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "PERSONAX_CACHE_DIR": str(tmp_path / "cache")}
    with FakeChatServer() as server:
        env.update(LLM_URL=server.url, LLM_MODEL="fake-model", LLM_KEY_ENV="null")
        command = command.replace(".venv/bin/python", shlex.quote(sys.executable))
        run_dir = tmp_path / "run"
        # placed in tmp_path; everything else as the README says (relative paths from the repository root)
        result = subprocess.run(["bash", "-c", f"{command} hydra.run.dir={run_dir}"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stderr[-4000:]
        assert server.requests >= 80
    manifest = Manifest(run_dir).stages
    assert {s: manifest[s]["status"] for s in manifest} == {s: "done" for s in
                                                            ["ingest", "traits", "embeddings", "independence", "crl",
                                                             "report"]}
    table = pd.read_parquet(run_dir / "level1/pvalues.parquet")
    assert {f"trait_llm_{t}" for t in "ocean"} <= set(table.trait)
    assert {f"trait_{t}" for t in "ocean"} <= set(table.trait)  # the aggregate too
    assert (table[table.trait == "trait_llm_o"].status == "ok").any()
    # no face attributes in the bios file: the zero-shot ones from the embeddings stage were tested
    assert (table.feature == "Big_Nose").any() and table.feature_source.str.startswith("zero-shot").any()
    crl = manifest["crl"]["summary"]
    assert "trait_scores:trait_llm_?" in crl["measurements"]["text"]
    assert "trait_scores:trait_llm_?" in (run_dir / "report/report.html").read_text(encoding="utf-8")
    html = (run_dir / "report/report.html").read_text(encoding="utf-8")
    assert "Level I" in html and "Level II" in html
    # no planted truth in one's own cohort: the summary says nothing checked the CRL's latents or graph
    assert "CRL on a cohort with no planted latents" in (run_dir / "report/report.md").read_text(encoding="utf-8")
    # ... and so do the run's last lines, with how to check its axes' reproducibility (one restart here)
    assert "crl.fit.restarts=3 would tell whether its axes are reproducible" in result.stdout + result.stderr
