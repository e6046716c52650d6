"""The offline raters: the NumPy MiniLM against sentence-transformers, the lexicon and the embedding rater."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personax.traits import LexiconRater

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def minilm():
    from personax.traits._minilm import MiniLM

    try:
        return MiniLM.from_package()
    except ImportError as err:
        pytest.skip(str(err))


def test_minilm_matches_sentence_transformers(minilm):
    # Recorded once with sentence-transformers 6.2 / torch 2.14.1 (data/make_minilm_reference.py).
    reference = json.loads(REFERENCE.read_text())
    for text, ids in zip(reference["texts"], reference["input_ids"]):
        assert minilm.tokenizer.encode(text, reference["max_seq_length"]) == ids, text
    vectors = minilm.encode(reference["texts"])
    np.testing.assert_allclose(vectors, np.array(reference["embeddings"]), atol=2e-5)


def test_embedding_rater_reads_direction(minilm):
    from personax.traits import EmbeddingRater

    rater = EmbeddingRater(encoder=minilm)
    scores = rater.score([
        "Mila is outgoing and energetic and loves being the centre of attention.",
        "Mila is shy and quiet and keeps to herself.",
        "Mila was born in 1980 in Oslo.",
    ])
    e = 2
    assert scores[0, e] == 3 and scores[1, e] == 1
    assert (scores[2] == 0).all()  # nothing about traits: insufficient information


def test_lexicon_markers_and_negation():
    rater = LexiconRater()
    assert rater.score_text("He is talkative and bold.")["e"] == 3
    assert rater.score_text("He is not talkative.")["e"] == 1
    assert rater.score_text("She rarely seems worried.")["n"] == 1
    assert rater.score_text("Quiet but energetic.")["e"] == 2
    assert rater.score_text("Born in 1970 in Lyon.") == dict.fromkeys("ocean", 0)
    assert rater.score(["shy", ""]).shape == (2, 5)
