"""Command-line entry point: ``python -m personax.run [+experiment=NAME] [overrides]``.

Runs ``config.stages`` in the Hydra run directory (``runs/<name>`` by default, so a
second run of the same experiment resumes and skips finished stages). ``-m`` sweeps
run sequentially, or in parallel with ``hydra/launcher=joblib``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from personax.pipeline import run_pipeline

log = logging.getLogger("personax")


def config_dir() -> Path:
    """The Hydra config folder: packaged in a wheel, the repository's conf/ otherwise."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").exists():
            return candidate
    raise FileNotFoundError(f"personax configs not found next to {here}")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(config: DictConfig) -> None:
    """Runs the configured pipeline in the Hydra run directory."""
    workdir = Path(HydraConfig.get().runtime.output_dir)
    statuses = run_pipeline(config, workdir)
    for stage, status in statuses.items():
        log.info("%-12s %s", stage, status)
    log.info("run directory: %s (manifest.json lists every output)", workdir)


if __name__ == "__main__":
    main()
