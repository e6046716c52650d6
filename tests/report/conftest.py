"""Run directories for the report tests: one tiny run of every stage, and a small hostile raw-data run."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    """Every stage, tiny, once for the whole session (about a minute on two cores)."""
    root = tmp_path_factory.mktemp("report_full")
    cfg = compose_config([*TINY, f"stages={ALL_STAGES}", f"embeddings.cache_dir={root / 'cache'}"])
    run_pipeline(cfg, root / "run")
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
