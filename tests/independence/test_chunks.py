"""``independence.chunk=i/k``: the matrix split into feature chunks and merged with BH over the
whole matrix (not per chunk)."""

import numpy as np
import pandas as pd
import pytest

from personax.independence import test_matrix
from personax.independence._chunks import (chunk_features, chunk_slice, data_digest, mark_chunk, merge_chunks,
                                            parse_chunk)
from personax.sweep import main as sweep_main
from tests.conftest import run_cli
from tests.independence.test_lowrank import cohort_frame


@pytest.mark.parametrize("bad", ["0/2", "3/2", "a/b", "1-2", "1/0", "/2", 3])
def test_chunk_format_is_validated(bad):
    with pytest.raises(ValueError, match="independence.chunk"):
        parse_chunk(bad)


def test_chunk_slices_cover_the_features_once():
    assert parse_chunk(None) is None and parse_chunk(" 2 / 5 ") == (2, 5)
    feats = [f"f{k}" for k in range(22)]
    parts = [chunk_features(feats, (i, 4)) for i in range(1, 5)]
    assert sum(parts, []) == feats and {len(p) for p in parts} <= {5, 6}
    with pytest.raises(ValueError, match="only 22 features"):
        chunk_slice(22, (1, 23))


@pytest.fixture(scope="module")
def tiny():
    frame, features, traits, _ = cohort_frame(150, seed=3)
    return frame, features, traits[:5]


def _chunked(frame, features, traits, k, **kw):
    digest = data_digest(frame)
    out = []
    for i in range(1, k + 1):
        sl = chunk_slice(len(features), (i, k))
        part = test_matrix(frame, features[sl], traits, first_feature_index=sl.start, **kw)
        out.append(mark_chunk(part, (i, k), digest))
    return out


def test_two_chunk_split_merges_to_the_unchunked_q_values(tiny):
    frame, features, traits = tiny
    kw = dict(tests=["kci", "rcit", "chisq"], seed=4)
    whole = test_matrix(frame, features, traits, **kw)
    parts = _chunked(frame, features, traits, 2, **kw)
    assert all(p["q_value"].isna().all() for p in parts)  # no per-chunk BH
    merged = merge_chunks(parts[::-1])  # order of arrival does not matter
    # equal up to round-off (pairs are batched differently); params hold the same numbers as JSON
    pd.testing.assert_frame_equal(merged.drop(columns="params"), whole.drop(columns="params"), rtol=1e-9)
    assert (merged.q_value.isna() == whole.q_value.isna()).all() and merged.q_value.notna().sum() > 100
    # BH per chunk would differ: the whole-matrix correction is what the merge applies
    per_chunk = pd.concat([test_matrix(frame, features[chunk_slice(len(features), (i, 2))], traits,
                                       first_feature_index=chunk_slice(len(features), (i, 2)).start, **kw)
                           for i in (1, 2)], ignore_index=True)
    assert not np.allclose(per_chunk.q_value.fillna(-1), whole.q_value.fillna(-1))


def test_merge_refuses_incomplete_mixed_or_overlapping_chunks(tiny):
    frame, features, traits = tiny
    parts = _chunked(frame, features[:4], traits[:2], 2, tests=["kci"])
    with pytest.raises(ValueError, match=r"missing \['2/2'\]"):
        merge_chunks(parts[:1])
    with pytest.raises(ValueError, match="different data"):
        merge_chunks([parts[0], parts[1].assign(data_digest="other")])
    with pytest.raises(ValueError, match="overlap"):
        merge_chunks([parts[0], parts[0].assign(chunk="2/2")])
    with pytest.raises(ValueError, match="different splits"):
        merge_chunks([parts[0], parts[1].assign(chunk="2/3")])
    with pytest.raises(ValueError, match="not a chunk table"):
        merge_chunks([parts[0].drop(columns="chunk")])


@pytest.mark.slow
def test_multirun_over_chunks_then_sweep_merge_equals_the_unchunked_run(tmp_path, capsys):
    """The documented commands: a joblib multirun over 2 chunks, then python -m personax.sweep."""
    common = ["+experiment=smoke", "stages=[ingest,traits,independence]", "data.images=false"]
    run_cli(tmp_path, "-m", *common, "independence.chunk=1/2,2/2", "name=chunks", "hydra/launcher=joblib")  # docs/sweeps.md
    run_cli(tmp_path, *common, "name=whole")
    (sweep,) = (tmp_path / "multirun/chunks").iterdir()
    assert sweep_main([str(sweep)]) == 0
    assert "merged Level I chunks" in capsys.readouterr().out
    merged = pd.read_parquet(sweep / "level1/pvalues.parquet")
    whole = pd.read_parquet(tmp_path / "runs/whole/level1/pvalues.parquet")
    pd.testing.assert_frame_equal(merged.drop(columns="params"), whole.drop(columns="params"), rtol=1e-9)
    assert merged.q_value.notna().any()
