"""Run directories for the report tests: one tiny run of every stage, and a small hostile raw-data run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from personax.pipeline import run_pipeline
from tests.conftest import compose_config

ALL_STAGES = "[ingest,traits,embeddings,independence,crl,report]"
TINY = [
    "+experiment=smoke", "data.n=60", "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false",
    "independence.tests=[fisherz,chisq]", "crl.fit.max_epochs=2", "crl.fit.hidden=[8]", "crl.latent_dims.image=2",
    "crl.latent_dims.text=2",
]
HOSTILE = "<script>alert(1)</script>"
HOSTILE_ID = "<img src=x onerror=alert(2)>"


def _build_full_run(root: Path) -> Path:
    cfg = compose_config([*TINY, f"stages={ALL_STAGES}", f"embeddings.cache_dir={root / 'cache'}"])
    run_pipeline(cfg, root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    """Every stage, tiny, once for the whole session (about a minute on two cores).

    Under pytest-xdist the workers share one build: the first one to take the lock builds
    it, the others wait and read it (the tests only read it; one copies it before changing it).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: nobody to share with
        return _build_full_run(tmp_path_factory.mktemp("report_full"))
    root = tmp_path_factory.getbasetemp().parent / "report_full"  # shared by this session's workers
    built = root / "built"  # written last: a build that failed part-way is redone
    with FileLock(str(root) + ".lock"):
        if not built.is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            _build_full_run(root)
            built.write_text("ok\n")
    return root / "run"


def raw_config(bios: Path, stages: str = "[ingest,report]", *extra: str):
    return compose_config(["data=raw", f"data.bios={bios}", "data.strict=false", f"stages={stages}", *extra])


@pytest.fixture
def hostile_bios(tmp_path) -> Path:
    """A bio table whose rejected rows and labels carry markup."""
    bios = tmp_path / "bios.csv"
    bios.write_text(
        "person_id,name,height_cm,birth_year,birth_month,birth_day,group,bio\n"
        f"p1,{HOSTILE},180,1980,5,17,<b>actor</b>,Likes the stage.\n"
        f"p2,Ann,165,1990,2,{HOSTILE},writer,Quiet.\n"
        f"{HOSTILE_ID},Bob,-170,1970,1,1,actor,Negative height.\n"
        "p4,Cy,175,1966,3,3,writer,Fine.\n"
    )
    return bios
