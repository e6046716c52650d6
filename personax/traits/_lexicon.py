"""A lexicon rater: counts Big Five adjective markers in a bio.

The marker lists follow the published trait-descriptive adjective markers of the
Big Five: Goldberg's (1992) unipolar markers and Saucier's (1994) Mini-Markers,
with their usual noun and adverb forms and a few common synonyms of the same
markers. They were written from those marker lists, not from the synthetic
cohort's bio templates (``personax.data._bios``), so the rater is not circular
on the synthetic data; it does share the everyday English of both.

Scoring per trait: +1 for every high-pole marker, -1 for every low-pole marker,
with the sign flipped when a negator ("not", "never", "rarely", "little", ...)
stands within the three preceding words. A positive sum gives 3, a negative sum
1, a tie between markers present 2, and no marker at all 0 ("insufficient
information"). This is a bag-of-words rule: it cannot read context, irony or
anything not stated in words, and it is not an LLM.

Example:
    >>> LexiconRater().score_text("She is talkative, warm and well organised, but moody.")
    {'o': 0, 'c': 3, 'e': 3, 'a': 3, 'n': 3}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from personax.traits._common import TRAITS

# trait -> pole -> markers. A marker ending in "*" matches any word it starts.
MARKERS: dict[str, dict[str, tuple[str, ...]]] = {
    "e": {
        "high": ("talkative", "extraverted", "extroverted", "extravert*", "extrovert*", "bold", "boldly", "energetic",
                 "assertive", "verbal", "unrestrained", "outgoing", "sociable", "gregarious", "active",
                 "enthusiastic", "lively", "vivacious", "spirited", "dominant", "forceful", "adventurous",
                 "daring", "flamboyant", "charismatic"),
        "low": ("shy", "shyness", "quiet", "quietly", "bashful", "withdrawn", "introverted", "introvert*", "reserved",
                "untalkative", "inhibited", "timid", "unassertive", "passive", "unadventurous", "unenergetic",
                "solitary", "retiring", "aloof", "reticent", "low-key"),
    },
    "a": {
        "high": ("sympathetic", "warm", "warmth", "kind", "kindness", "cooperative", "co-operative", "cooperation",
                 "considerate", "generous", "generosity", "trustful", "trusting", "helpful", "agreeable",
                 "pleasant", "courteous", "polite", "friendly", "gentle", "tolerant", "forgiving", "charitable",
                 "compassionate", "amiable", "good-natured", "modest", "humble", "tactful"),
        "low": ("cold", "unsympathetic", "rude", "harsh", "unkind", "uncooperative", "inconsiderate",
                "uncharitable", "critical", "combative", "quarrelsome", "argumentative", "hostile", "stubborn",
                "selfish", "demanding", "rough", "blunt", "distrustful", "cynical", "abrasive", "confrontational",
                "antagonistic", "arrogant", "vindictive"),
    },
    "c": {
        "high": ("organized", "organised", "organization", "efficient", "systematic", "practical", "neat", "orderly",
                 "disciplined", "discipline", "thorough", "meticulous", "careful", "carefully", "conscientious",
                 "precise", "reliable", "dependable", "hard-working", "hardworking", "diligent", "punctual",
                 "industrious", "prompt", "methodical", "planful", "responsible",
                 "steady", "persistent", "prepared"),
        "low": ("disorganized", "disorganised", "sloppy", "inefficient", "careless", "carelessly", "haphazard",
                "unsystematic", "negligent", "inconsistent", "undependable", "unreliable", "lazy", "impulsive",
                "spontaneous", "messy", "forgetful", "aimless", "erratic", 
                "procrastinat*", "irresponsible", "chaotic", "scatterbrained"),
    },
    "n": {
        "high": ("moody", "jealous", "temperamental", "envious", "touchy", "fretful", "anxious", "anxiety",
                 "nervous", "nervously", "worried", "worrying", "stressed", 
                 "insecure", "emotional", "emotionally", "volatile", "irritable", "tense", "fearful", "panicky",
                 "self-conscious", "depressed", "unstable", "high-strung", "excitable"),
        "low": ("relaxed", "unenvious", "calm", "calmly", "stable", "composed", "composure", "unemotional",
                "imperturbable", "even-tempered", "unexcitable", "serene", "unflappable", "placid", "secure",
                "resilient", "steady-nerved", "poised", "level-headed", "cool-headed"),
    },
    "o": {
        "high": ("creative", "creativity", "imaginative", "imagination", "philosophical", "intellectual", "complex",
                 "deep", "curious", "curiosity", "inventive", "innovative", "innovation", "artistic",
                 "experimental", "original", "unconventional", "open-minded", "inquisitive", 
                 "abstract", "reflective", "perceptive", "insightful", "sophisticated", 
                 "visionary"),
        "low": ("uncreative", "unintellectual", "unimaginative", "unsophisticated", "shallow", "simple",
                "conventional", "traditional", "conservative",
                "unreflective", "imperceptive", "uninquisitive", "narrow-minded", "unadventurous", 
                "predictable", "rigid"),
    },
}

NEGATORS = frozenset({"not", "no", "never", "rarely", "seldom", "hardly", "little", "barely", "without",
                      "lacks", "lacking", "nor", "neither", "isn't", "wasn't", "doesn't", "don't", "never"})
NEGATION_WINDOW = 3
_WORD = re.compile(r"[a-z][a-z'\-]*")


def _index(markers: Mapping[str, Mapping[str, Sequence[str]]]) -> tuple[dict[str, list[tuple[str, int]]], list[tuple[str, str, int]]]:
    exact: dict[str, list[tuple[str, int]]] = {}
    prefixes: list[tuple[str, str, int]] = []
    for trait, poles in markers.items():
        for pole, words in poles.items():
            sign = 1 if pole == "high" else -1
            for word in words:
                if word.endswith("*"):
                    prefixes.append((word[:-1], trait, sign))
                else:
                    exact.setdefault(word, []).append((trait, sign))
    return exact, prefixes


class LexiconRater:
    """Scores the Big Five from marker adjectives (see the module docstring).

    Args:
        markers: ``trait -> {"high": words, "low": words}``; the built-in
            Goldberg/Saucier-style lists by default.
        negation_window: Words before a marker searched for a negator.
    """

    kind = "lexicon"

    def __init__(self, markers: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                 negation_window: int = NEGATION_WINDOW):
        self.markers = MARKERS if markers is None else markers
        self.negation_window = negation_window
        self._exact, self._prefixes = _index(self.markers)

    def evidence(self, text: str) -> dict[str, float]:
        """Signed marker counts per trait (0.0 where no marker occurs)."""
        words = _WORD.findall(text.lower())
        totals = {t: 0.0 for t in TRAITS}
        seen = {t: False for t in TRAITS}
        for pos, word in enumerate(words):
            hits = list(self._exact.get(word, ()))
            hits += [(trait, sign) for prefix, trait, sign in self._prefixes if word.startswith(prefix)]
            if not hits:
                continue
            window = words[max(0, pos - self.negation_window) : pos]
            flip = -1 if any(w in NEGATORS for w in window) else 1
            for trait, sign in hits:
                totals[trait] += flip * sign
                seen[trait] = True
        return {t: (totals[t] if seen[t] else float("nan")) for t in TRAITS}

    def score_text(self, text: str) -> dict[str, int]:
        """Scores on the 1..3 scale, 0 = no marker (insufficient information)."""
        scores = {}
        for trait, value in self.evidence(text).items():
            scores[trait] = 0 if np.isnan(value) else (3 if value > 0 else 1 if value < 0 else 2)
        return scores

    def score(self, texts: Iterable[str]) -> np.ndarray:
        """``n x 5`` integer scores (O, C, E, A, N order)."""
        return np.array([[s[t] for t in TRAITS] for s in map(self.score_text, texts)], dtype=float).reshape(-1, len(TRAITS))
