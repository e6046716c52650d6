"""The traits stage in the pipeline and through the CLI: outputs, resume, the request store and secrecy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from personax.pipeline import run_pipeline
from personax.traits.testing import FakeChatServer

SIX = "[number_l3_inc,number_l5_inc,number_l3_dec,number_l5_dec,text_l3_inc,text_l5_inc]"


def _fake_rater(url: str, name: str = "fake") -> list[str]:
    return [f"+traits/raters@traits.raters.{name}=openai_compatible", f"traits.raters.{name}.base_url={url}",
            f"traits.raters.{name}.model=fake-1", f"traits.raters.{name}.backoff_base_s=0.01",
            f"traits.raters.{name}.max_retries=2", f"traits.raters.{name}.temperature=0.4"]


def test_pipeline_rates_aggregates_reports_and_resumes(compose_cfg, run_path):
    with FakeChatServer() as server:
        cfg = compose_cfg(["+experiment=smoke", "data.n=60", "data.images=false", "stages=[ingest,traits]", *_fake_rater(server.url),
                           f"traits.run_formats={SIX}", "traits.repeats=2", "traits.aggregate.bayes.steps=100",
                           "traits.aggregate.bayes.samples=50"])
        cfg.stages = ["ingest"]
        run_pipeline(cfg, run_path)
        opening = pd.read_parquet(run_path / "data/persons.parquet").bio.iloc[7].split(". ")[0]
        # Every request about person 7 (6 formats x 2 repeats) fails its 3 attempts.
        server.script = {opening: __import__("collections").deque(["500"] * 36)}
        cfg.stages = ["ingest", "traits"]
        run_pipeline(cfg, run_path)
        requests = server.requests
        assert requests == 59 * 12 + 36
        scores = pd.read_parquet(run_path / "traits/scores.parquet")
        assert len(scores) == 60
        for rater in ("lexicon", "embedding", "fake", "sima", "simb", "simc"):
            assert {f"trait_{rater}_{t}" for t in "ocean"} <= set(scores.columns), rater
        for t in "ocean":
            assert {f"trait_{t}", f"trait_{t}_bayes_mean", f"trait_{t}_bayes_sd"} <= set(scores.columns)
        assert scores.status_fake.value_counts().to_dict() == {"ok": 59, "failed": 1}
        per_rater = scores.filter(regex=r"^trait_[a-z0-9]+_[ocean]$")
        # 0 ("insufficient information") is stored as missing: no later stage can read it as a low score
        assert per_rater.stack().dropna().isin([1, 2, 3]).all()
        assert scores.loc[7, [f"trait_fake_{t}" for t in "ocean"]].isna().all()  # the failed request
        persons = pd.read_parquet(run_path / "data/persons.parquet")
        assert ((persons.trait_sima_o == 0) == scores.trait_sima_o.isna()).all()
        answers = pd.read_parquet(run_path / "traits/answers.parquet")
        assert len(answers) == 60 * 6 * 2 and set(answers.format) == {
            "Number-L3-Inc", "Number-L5-Inc", "Number-L3-Dec", "Number-L5-Dec", "Text-L3-Inc", "Text-L5-Inc"}
        report = json.loads((run_path / "traits/reliability.json").read_text())
        assert len(report["discrepancy"]["table"]) == 15 and len(report["stability"]) == 6
        assert {r["increasing"] for r in report["order_symmetry"]} == {"number_l3_inc", "number_l5_inc"}
        assert set(report["recovery"]) >= {"fake", "lexicon", "embedding", "sima", "aggregate (median)",
                                           "aggregate (bayes)"}
        assert report["recovery"]["aggregate (median)"]["mean"] > 0.6
        assert report["raters"]["fake"]["failed"] == 12
        assert (run_path / "traits/reliability.png").stat().st_size > 1000
        assert "Cross-format discrepancy" in (run_path / "traits/reliability.md").read_text()

        # Same config: skipped. Forced: rerun from the store, only the failed request is sent again.
        assert run_pipeline(cfg, run_path)["traits"] == "skipped"
        cfg.force = ["traits"]
        run_pipeline(cfg, run_path)
        assert server.requests == requests + 12  # the failed ones, now answered
        summary = json.loads((run_path / "manifest.json").read_text())["stages"]["traits"]["summary"]
        assert summary["fake"]["sent"] == 12 and summary["fake"]["from_store"] == 59 * 12 and summary["fake"]["failed"] == 0


def test_cli_never_writes_the_api_key(tmp_path):
    secret = "sk-live-7fQ2-personax-secrecy-probe"
    env = {k: v for k, v in os.environ.items() if "KEY" not in k}
    env["PERSONAX_TEST_API_KEY"] = secret
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root)
    with FakeChatServer(expected_key=secret, script={"Name: ": ["echo_auth"]}) as server:
        result = subprocess.run(
            [sys.executable, "-m", "personax.run", "+experiment=smoke", "data.n=30", "data.images=false",
             "stages=[ingest,traits]", *_fake_rater(server.url), "traits.raters.fake.api_key_env=PERSONAX_TEST_API_KEY",
             "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false", "name=secret"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert server.authorized == 30
    run_dir = tmp_path / "runs/secret"
    assert (run_dir / ".hydra/config.yaml").is_file() and (run_dir / "traits/requests.sqlite").is_file()
    assert "PERSONAX_TEST_API_KEY" in (run_dir / ".hydra/config.yaml").read_text()  # the name, not the value
    assert "[REDACTED]" in result.stderr + result.stdout  # the echoed key was caught in the log line
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 8
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.stdout + result.stderr
