"""Issue 13 items 5 and 12 (raters): secrets redacted by value everywhere; a rater that answers nothing fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from personax._secrets import REDACTED, looks_like_key, redact, secret_values
from personax.pipeline import run_pipeline
from personax.report import build_report
from personax.traits import ChatConfig, RaterConfigError
from personax.traits._client import RaterFailedError
from personax.traits.testing import FakeChatServer
from tests.traits.test_stage import _fake_rater

PASTED = "sk-proj-Ab3dEf6hIj9kLm2nOp5q"


def test_redact_replaces_configured_key_values_and_key_like_url_parameters(monkeypatch):
    monkeypatch.setenv("SECRETS_TEST_KEY", "live-value-123456")
    config = {"traits": {"raters": {"r": {"api_key_env": "SECRETS_TEST_KEY", "max_tokens": 800,
                                          "base_url": "https://h/v1?key=q1w2e3r4t5&model=m"}}}}
    assert "live-value-123456" in secret_values(config) and "q1w2e3r4t5" in secret_values(config)
    text = ("HTTP 401: key live-value-123456 rejected; see https://h/v1?api_key=abc&access_token=zz9&page=2 "
            "https://u:pw@h/ q1w2e3r4t5 max_tokens=800")
    assert redact(text, config) == (f"HTTP 401: key {REDACTED} rejected; see https://h/v1?api_key={REDACTED}"
                                    f"&access_token={REDACTED}&page=2 https://u:{REDACTED}@h/ {REDACTED} max_tokens=800")
    nested = redact({"error": ["live-value-123456"], "n": 3}, OmegaConf.create(config))
    assert nested == {"error": [REDACTED], "n": 3}
    assert redact("nothing here", None) == "nothing here"


def test_key_pasted_as_api_key_env_is_not_in_the_error():
    with pytest.raises(RaterConfigError) as info:
        ChatConfig.from_mapping("r", {"base_url": "http://h/v1", "model": "m", "api_key_env": PASTED})
    assert "api_key_env must name an environment variable, got a value that looks like a key" in str(info.value)
    assert PASTED not in str(info.value)
    assert looks_like_key(PASTED) and not looks_like_key("OPENAI_API_KEY")


def test_key_pasted_as_api_key_env_never_reaches_the_manifest(compose_cfg, run_path):
    cfg = compose_cfg(["+experiment=smoke", "data.n=20", "data.images=false", "stages=[ingest,traits]",
                       *_fake_rater("http://127.0.0.1:9/v1"), f"traits.raters.fake.api_key_env={PASTED}",
                       "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false"])
    with pytest.raises(RaterConfigError, match="looks like a key"):
        run_pipeline(cfg, run_path)
    manifest = (run_path / "manifest.json").read_text()
    assert "looks like a key" in manifest and PASTED not in manifest


def test_key_in_a_base_url_query_string_is_redacted_in_the_report(tmp_path, monkeypatch):
    from tests.report.conftest import raw_config

    monkeypatch.setenv("SECRETS_TEST_REMOTE", "env-secret-value-987")
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm,bio\na,170,x\n")
    config = raw_config(bios)
    run_path = tmp_path / "run"
    run_pipeline(config, run_path)
    OmegaConf.set_struct(config, False)
    config.traits.raters["remote"] = {"kind": "openai", "api_key_env": "SECRETS_TEST_REMOTE", "model": "m",
                                      "base_url": "https://llm.example/v1?key=AIzaQueryKey12345&region=eu",
                                      "extra_body": {"note": "pasted env-secret-value-987 here"}}
    build_report(run_path, config)
    for name in ("report.html", "report.md"):
        text = (run_path / "report" / name).read_text()
        assert "AIzaQueryKey12345" not in text and "env-secret-value-987" not in text, name
        assert "region=eu" in text and "key=" in text, name


def test_rater_with_401_on_every_request_fails_the_traits_stage(compose_cfg, run_path, monkeypatch):
    monkeypatch.setenv("SECRETS_TEST_WRONG_KEY", "wrong-key-value-42")
    with FakeChatServer(expected_key="the-right-key-000") as server:
        cfg = compose_cfg(["+experiment=smoke", "data.n=60", "data.images=false", "stages=[ingest,traits]",
                           *_fake_rater(server.url), "traits.raters.fake.api_key_env=SECRETS_TEST_WRONG_KEY",
                           "traits.raters.fake.abort_after_failures=5", "traits.raters.fake.max_concurrency=1",
                           "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false"])
        with pytest.raises(RaterFailedError, match=r"rater 'fake' answered none of its 60 requests \(60 failed\); "
                                                   r"the server said: HTTP 401: .*invalid api key"):
            run_pipeline(cfg, run_path)
        assert server.requests == 5  # stopped sending after 5 failures in a row with no answer
    entry = json.loads((run_path / "manifest.json").read_text())["stages"]["traits"]
    assert entry["status"] == "failed" and "invalid api key" in entry["error"]
    assert "wrong-key-value-42" not in Path(run_path / "manifest.json").read_text()
