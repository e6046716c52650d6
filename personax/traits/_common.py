"""Constants shared by the trait modules."""

from __future__ import annotations

from personax.data.schema import TRAIT_NAMES, TRAITS

__all__ = ["TRAITS", "TRAIT_NAMES", "TRAIT_KEYS", "rater_column", "aggregate_column"]

# Keys the LLM answers with (and the letters they map to).
TRAIT_KEYS = {"openness": "o", "conscientiousness": "c", "extraversion": "e", "agreeableness": "a",
              "neuroticism": "n"}


def rater_column(rater: str, trait: str) -> str:
    """``trait_<rater>_<t>``, the per-rater column of the person table."""
    return f"trait_{rater}_{trait}"


def aggregate_column(trait: str) -> str:
    """``trait_<t>``, the aggregate column."""
    return f"trait_{trait}"
