"""Command-line entry point: ``python -m personax.run [+experiment=NAME] [overrides]``.

Runs ``config.stages`` in the Hydra run directory (``runs/<name>`` by default, so a
second run of the same experiment resumes and skips finished stages). ``-m`` sweeps
run sequentially, or in parallel with ``hydra/launcher=joblib``.

The config is checked first (:func:`personax._config_checks.check_config`). When
a stage fails, the console shows its error in a line (the message, which for bad
input data lists each problem) and a hint; the full traceback goes to ``run.log``
in the run directory, and also to the console with ``debug=true``. Secrets are
redacted from both (:func:`personax._secrets.redact`). The exit status is 1.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from personax._compilation_cache import enable_compilation_cache
from personax._config_checks import ConfigError, check_config, check_person_columns
from personax._secrets import redact
from personax.artifacts import PERSONS, REPORT_HTML
from personax.pipeline import MANIFEST_NAME, Manifest, RunDir, run_pipeline

log = logging.getLogger("personax")


def config_dir() -> Path:
    """The Hydra config folder: packaged in a wheel, the repository's conf/ otherwise."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").exists():
            return candidate
    raise FileNotFoundError(f"personax configs not found next to {here}")


def _failed_stage(workdir: Path) -> str | None:
    """The stage the manifest last recorded as failed, if any (best effort: the manifest may not exist)."""
    try:
        history = json.loads((workdir / MANIFEST_NAME).read_text()).get("history", [])
    except (OSError, ValueError):
        return None
    last = history[-1] if history else {}
    return last.get("stage") if last.get("status") == "failed" else None


THIRD_PARTY_LOGGERS = ("open_clip", "jax", "matplotlib", "sentence_transformers", "transformers", "httpx", "httpcore",
                       "urllib3", "PIL", "numexpr", "absl")


class _QuietThirdParty(logging.Filter):
    """Keeps third-party INFO lines out of the console (run.log still has them).

    open_clip logs through the root logger, so its records are told apart by their file.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name.split(".")[0]
        if name in THIRD_PARTY_LOGGERS:
            return False
        return not (record.name == "root" and "open_clip" in record.pathname)


def quiet_third_party_loggers() -> None:
    """Adds :class:`_QuietThirdParty` to every console handler of the root logger."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if not any(isinstance(f, _QuietThirdParty) for f in handler.filters):
                handler.addFilter(_QuietThirdParty())


def _log_file_handlers() -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def report_failure(err: BaseException, config: DictConfig, workdir: Path, *, debug: bool = False) -> str:
    """Writes the full traceback to the job log (``run.log``) and returns the console text.

    Args:
        err: The exception that ended the run.
        config: The run config (its secrets are redacted from everything written).
        workdir: The run directory (for the failed stage's name and the hint).
        debug: Also put the full traceback in the console text.

    Returns:
        ``personax: stage '<name>' failed: <Type>: <message>`` and a hint line,
        preceded by the traceback when ``debug``; for a full disk ("No space left on device",
        raised or behind the error raised), a last line that says the finished stages are kept.
    """
    if isinstance(err, ConfigError):
        headline = redact(f"personax: config error: {err}", config)
    else:
        stage = _failed_stage(workdir)
        what = f"stage '{stage}' failed" if stage else "error"
        headline = redact(f"personax: {what}: {type(err).__name__}: {err}", config)
    full = redact("".join(traceback.format_exception(err)), config)
    handlers = _log_file_handlers()
    for handler in handlers:  # the full traceback in run.log only; the console gets the headline
        handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, f"{headline}\n{full.rstrip()}", None, None))
    logs = [Path(h.baseFilename) for h in handlers]
    disk = (f"\nThe disk that holds {workdir} is full. The stages that finished are kept (manifest.json): "
            "free some space and rerun; a run in the same run directory skips them." if _disk_full(err) else "")
    if debug:
        return f"{full.rstrip()}\n{headline}{disk}"
    if isinstance(err, ConfigError):
        return headline
    where = f"the full traceback is in {logs[0]}; " if logs else ""
    return f"{headline}\n({where}rerun with debug=true to print it here){disk}"


def _disk_full(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised from or during, is "No space left on device"."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        err = err.__cause__ or err.__context__
    return False


def _preflight(config: DictConfig, workdir: Path) -> None:
    """Config checks that can run before any stage (see personax._config_checks)."""
    check_config(config)
    persons = RunDir(workdir).locate(PERSONS)
    stages = list(config.get("stages") or [])
    if "independence" in stages and "ingest" not in stages and persons.is_file():
        import pyarrow.parquet as pq

        check_person_columns(config, pq.read_schema(persons).names, str(persons))


def crl_recovery_line(record: dict) -> str | None:
    """What the crl stage's recovery said, for the run's last lines (from its summary in the manifest):
    the blocks and graph it did not recover, or that nothing checked it; None when every one was
    recovered, or the stage did not run."""
    if record.get("status") != "done":  # a skipped stage keeps its record, "done", from the run that made it
        return None
    summary = record.get("summary") or {}
    if "recovery_verdicts" not in summary:  # a run directory from before this line existed
        return None
    verdicts = summary["recovery_verdicts"]
    if verdicts is None:
        return ("crl: no planted latents, so nothing checks the learned latents or graph: read them as hypotheses "
                f"(the report's summary); {_restarts_clause(summary.get('restart_agreement'))}")
    missed = [name for name, verdict in verdicts.items() if verdict != "recovered"]
    if not missed:
        return None
    return f"crl: not recovered against the planted truth: {', '.join(missed)} (the report's summary says why)"


def _restarts_clause(agreement: dict | None) -> str:
    """What the restarts' agreement (metrics.json ``restart_agreement``) says of a run with no truth:
    which blocks' content or axes are not reproducible, or how to find out with one restart. "As
    trained": the record compares the restarts before any search after the fit (of s's axes, of the
    orders)."""
    if not agreement:
        return "with 1 restart, crl.fit.restarts=3 would tell whether its axes are reproducible"
    from personax.crl.diagnostics import restart_agreement_verdict  # the stage's own verdict; jax is loaded by now

    floor, content_floor = agreement["axes_floor"], agreement.get("content_floor")  # the latter since 2026-12-07
    verdicts = {block: restart_agreement_verdict(values, axes_floor=floor, content_floor=content_floor)
                for block, values in (agreement.get("blocks") or {}).items()}
    other_content = [block for block, verdict in verdicts.items() if verdict == "content"]
    turned = [block for block, verdict in verdicts.items() if verdict == "axes"]
    restarts = agreement.get("restarts")
    found = ([f"find different content in {', '.join(other_content)} (content agreement below {content_floor})"]
             if other_content else []) + ([f"turn {', '.join(turned)} differently (axes agreement below {floor})"]
                                          if turned else [])
    if found:
        return f"its {restarts} restarts, as trained, {' and '.join(found)}: those latents are not reproducible one by one"
    # agreement is reproducibility, not recovery (docs/crl.md, "Do the restarts agree?"): say no more than that
    return (f"its {restarts} restarts, as trained, agree on every block's axes: reproducible, which does not make them "
            "the true ones")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(config: DictConfig) -> None:
    """Runs the configured pipeline in the Hydra run directory."""
    workdir = Path(HydraConfig.get().runtime.output_dir)
    debug = config.get("debug", False) is True
    quiet_third_party_loggers()
    try:
        enable_compilation_cache(config.get("compilation_cache"))
        _preflight(config, workdir)
        statuses = run_pipeline(config, workdir)
    except Exception as err:
        print(report_failure(err, config, workdir, debug=debug), file=sys.stderr, flush=True)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep's launcher decides what a failed job means
        sys.exit(1)
    for stage, status in statuses.items():
        log.info("%-12s %s", stage, status)
    crl_line = crl_recovery_line(Manifest(workdir).stages.get("crl") or {}) if "crl" in statuses else None
    if crl_line:  # a result that did not work says so in the last lines too, not only in the report
        log.warning(crl_line)
    log.info("run directory: %s (manifest.json lists every output)", workdir)
    report = RunDir(workdir).locate(REPORT_HTML)
    # The last line: what to open next.
    print(f"report: {report}" if report.is_file() else f"run directory: {workdir} (no report: add report to stages)",
          flush=True)


if __name__ == "__main__":
    main()
