"""Issue 13 items 6 and 12: config values checked at load; one-line errors, full tracebacks in run.log."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from personax._config_checks import ConfigError, check_config
from personax.pipeline import run_pipeline
from personax.run import _preflight, report_failure

ROOT = Path(__file__).resolve().parents[1]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personax.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_failed_stage_error_is_in_run_log_and_the_console_shows_one_line(tmp_path):
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,-3\n")
    failed = _cli(tmp_path, "data=raw", f"data.bios={bios}", "name=bad")
    assert failed.returncode == 1
    assert "personax: stage 'ingest' failed: DataValidationError: 1 problem(s) in the input:" in failed.stderr
    assert "bios.csv row 1 (person_id 'a'), column 'height_cm': negative value -3" in failed.stderr
    assert "rerun with debug=true" in failed.stderr and "Traceback" not in failed.stderr + failed.stdout
    log = (tmp_path / "runs/bad/run.log").read_text()
    assert "Traceback (most recent call last)" in log and "negative value -3" in log
    assert 'personax/data/stage.py", line' in log  # the frame that raised
    debug = _cli(tmp_path, "data=raw", f"data.bios={bios}", "name=bad", "debug=true")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stages=ingest"], "stages must be a list, e.g. stages=[ingest] (got the string 'ingest')"),
        (["independence.alpha=2"], "independence.alpha must be a number in (0, 1), got 2"),
        (["seed=abc"], "seed must be an integer >= 0, got 'abc'"),
        (["data.n=0"], "data.n must be a positive integer, got 0"),
        (["force=[ingets]"], "force must be true, false or a list of stage names"),
        (["independence.conditioning=gender"], "independence.conditioning must be a list, e.g. "
                                               "independence.conditioning=[gender]"),
        (["traits.repeats=0", "crl.pc.alpha=1.5"], "traits.repeats must be a positive integer, got 0; "
                                                   "crl.pc.alpha must be a number in (0, 1), got 1.5"),
        (["~crl.latent_dims", "+crl.latent_dims={face:2,bio:3}"],
         "crl.fit.sparse_decoder names modalities ['text'] that crl.latent_dims does not have (['bio', 'face']): "
         "remove the option with ~crl.fit.sparse_decoder"),
    ],
)
def test_values_that_make_no_sense_are_refused_at_load(compose_cfg, overrides, message):
    with pytest.raises(ConfigError) as info:
        check_config(compose_cfg(overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_sparse_decoder_option_can_be_removed_for_other_modalities(compose_cfg):
    """The docs' way out when the modalities are not the default's (the sparse decoder is keyed by `text`)."""
    config = compose_cfg(["~crl.fit.sparse_decoder", "~crl.latent_dims", "+crl.latent_dims={face:2,bio:3}"])
    check_config(config)
    assert "sparse_decoder" not in config.crl.fit


def test_every_shipped_config_passes_the_checks(compose_cfg):
    for experiment in sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml")):
        check_config(compose_cfg([f"+experiment={experiment}"]))


def test_config_error_on_the_command_line_is_one_line(tmp_path):
    failed = _cli(tmp_path, "stages=ingest", "independence.alpha=2")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "personax: config error: stages must be a list, e.g. stages=[ingest] (got the string 'ingest'); "
        "independence.alpha must be a number in (0, 1), got 2"]


def test_conditioning_column_that_does_not_exist_names_it_and_lists_the_columns(compose_cfg, run_path):
    cfg = compose_cfg(["data.n=40", "data.images=false", "stages=[ingest,traits,independence]",
                       "independence.conditioning=[gendre]", "independence.tests=[fisherz]"])
    with pytest.raises(ConfigError, match=r"independence.conditioning names column\(s\) \['gendre'\] that are not "
                                          r"in the person table data/persons.parquet; available: \[.*'gender'"):
        run_pipeline(cfg, run_path)
    # A run that reuses the table is checked before any stage runs.
    cfg.stages = ["ingest"]
    run_pipeline(cfg, run_path)
    cfg.stages = ["independence"]
    with pytest.raises(ConfigError, match="'gendre'"):
        _preflight(cfg, run_path)


def test_failure_text_and_run_log_never_hold_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("RUN_ERRORS_KEY", "sk-run-errors-0123456789")
    config = OmegaConf.create({"traits": {"raters": {"r": {"api_key_env": "RUN_ERRORS_KEY"}}}})
    handler = logging.FileHandler(tmp_path / "run.log")
    logging.getLogger().addHandler(handler)
    try:
        try:
            raise RuntimeError("server said: bad key sk-run-errors-0123456789 at https://h/v1?key=abcdef123")
        except RuntimeError as err:
            text = report_failure(err, config, tmp_path)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    logged = (tmp_path / "run.log").read_text()
    assert "Traceback" in logged and "Traceback" not in text
    for secret in ("sk-run-errors-0123456789", "abcdef123"):
        assert secret not in text and secret not in logged
    assert text.startswith("personax: error: RuntimeError: server said: bad key <redacted>")


def test_a_full_disk_gets_a_hint_that_the_finished_stages_are_kept(tmp_path):
    config = OmegaConf.create({})
    full = OSError(errno.ENOSPC, "No space left on device")
    assert "The disk that holds" in report_failure(full, config, tmp_path)
    assert report_failure(full, config, tmp_path, debug=True).endswith("a run in the same run directory skips them.")
    try:
        try:
            raise full
        except OSError as err:
            raise RuntimeError("could not save the checkpoint") from err
    except RuntimeError as wrapped:
        text = report_failure(wrapped, config, tmp_path)
    assert text.startswith("personax: error: RuntimeError: could not save the checkpoint")
    assert f"The disk that holds {tmp_path} is full" in text and "skips them" in text
    for other in (OSError(errno.EACCES, "Permission denied"), RuntimeError("boom")):
        assert "The disk that holds" not in report_failure(other, config, tmp_path)
