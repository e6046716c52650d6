"""Big Five trait inference: raters, prompt formats, a crash-safe request store, aggregation, reliability.

Raters score each person on the study's scale (1..L, 0 = insufficient information):

* :class:`ChatRater`: any OpenAI-compatible chat-completions endpoint (hosted APIs,
  vLLM, Ollama, llama.cpp server), configured by :class:`ChatConfig`; requests go
  through a :class:`RequestStore` so nothing answered is asked twice.
* :class:`LexiconRater` and :class:`EmbeddingRater`: offline stand-ins that read
  the bio (Big Five marker adjectives; MiniLM similarity to trait descriptors).
  They are not LLMs; see ``docs/traits.md`` for their limits.

Aggregates: :func:`median_rule` (the study's rule) and :func:`bayes_ordinal` (an
ordinal rater model in NumPyro). Reliability: :func:`stability`,
:func:`discrepancy_table`, :func:`krippendorff_alpha`, :func:`order_symmetry`,
:func:`recovery`. The pipeline stage is :mod:`personax.traits.stage`; a fake
server for tests is :mod:`personax.traits.testing`.

Example:
    >>> from personax.traits import LexiconRater, median_rule
    >>> LexiconRater().score_text("A shy, careless and anxious man.")
    {'o': 0, 'c': 1, 'e': 1, 'a': 0, 'n': 3}
"""

from personax.traits._aggregate import bayes_ordinal, median_rule
from personax.traits._cache import FINAL_STATUSES, RequestStore, request_key
from personax.traits._client import ChatConfig, ChatRater, Outcome, RaterConfigError, Task, parse_retry_after
from personax.traits._common import TRAIT_KEYS, TRAITS
from personax.traits._embedding import DESCRIPTORS, EmbeddingRater
from personax.traits._lexicon import MARKERS, LexiconRater
from personax.traits._prompts import AnswerError, ParsedAnswer, PromptFormat, Refusal, parse_answer, render_messages, sanitize
from personax.traits._reliability import discrepancy_table, krippendorff_alpha, order_symmetry, recovery, stability

__all__ = [
    "AnswerError",
    "ChatConfig",
    "ChatRater",
    "DESCRIPTORS",
    "EmbeddingRater",
    "FINAL_STATUSES",
    "LexiconRater",
    "MARKERS",
    "Outcome",
    "ParsedAnswer",
    "PromptFormat",
    "RaterConfigError",
    "Refusal",
    "RequestStore",
    "TRAITS",
    "TRAIT_KEYS",
    "Task",
    "bayes_ordinal",
    "discrepancy_table",
    "krippendorff_alpha",
    "median_rule",
    "order_symmetry",
    "parse_answer",
    "parse_retry_after",
    "recovery",
    "render_messages",
    "request_key",
    "sanitize",
    "stability",
]
