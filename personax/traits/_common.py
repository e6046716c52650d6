"""Constants shared by the trait modules (the column vocabulary itself lives in personax.data.schema)."""

from __future__ import annotations

from personax.data.schema import TRAIT_NAMES, TRAITS, aggregate_column, rater_column

__all__ = ["TRAITS", "TRAIT_NAMES", "TRAIT_KEYS", "rater_column", "aggregate_column"]

# Keys the LLM answers with (and the letters they map to).
TRAIT_KEYS = {"openness": "o", "conscientiousness": "c", "extraversion": "e", "agreeableness": "a",
              "neuroticism": "n"}
