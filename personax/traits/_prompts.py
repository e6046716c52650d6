"""Prompt formats of the study, prompt rendering and strict answer parsing.

A :class:`PromptFormat` is one of the study's six answer formats (Number/Text x 3/5
levels x increasing/decreasing listing order); its wording lives in
``conf/traits/prompts/<format>.yaml``. The shared instruction text (``prompt`` in
``conf/traits/default.yaml``) is a :class:`string.Template` with ``$name``,
``$context_label``, ``$context``, ``$scale``, ``$allowed`` and ``$example``.

The model must answer one JSON object with the five traits, each
``{"description": str, "score": <allowed value>}``. :func:`parse_answer` accepts
that object alone or inside one Markdown code fence, and nothing else: wrong
JSON, missing or extra keys, wrong types and out-of-range scores raise
:class:`AnswerError` (which the client answers with one repair round-trip);
refusals raise :class:`Refusal`. The person's text goes between ``<person>`` tags
and is neutralised first (tags removed, control characters dropped, length
capped), so a bio that contains instructions cannot close the data block; what a
model makes of it is still checked by the same strict parser.

Example:
    >>> fmt = PromptFormat(name="Number-L3-Inc", levels=3, answer_type="number",
    ...                    values={"1": 1, "2": 2, "3": 3, "0": 0}, scale="1 = low ...")
    >>> body = {k: {"description": "d", "score": 2} for k in TRAIT_KEYS}
    >>> parse_answer(json.dumps(body), fmt).scores
    {'o': 2, 'c': 2, 'e': 2, 'a': 2, 'n': 2}
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
import unicodedata
from collections.abc import Mapping
from typing import Any

from personax.traits._common import TRAIT_KEYS, TRAITS


class AnswerError(ValueError):
    """The model's answer is not the required JSON (wrong syntax, keys, types or range)."""


class Refusal(ValueError):
    """The model declined to answer."""


@dataclasses.dataclass(frozen=True)
class PromptFormat:
    """One answer format.

    Attributes:
        name: The study's name, e.g. ``Number-L3-Inc``.
        levels: Number of levels besides 0 (3 or 5).
        answer_type: ``number`` (the score is an integer) or ``text`` (a label).
        values: Allowed answer (as text) -> numeric level; 0 = insufficient information.
        scale: The scale as listed in the prompt (its order is the format's order).
        order: ``increasing`` or ``decreasing`` (documentation and the symmetry test).
    """

    name: str
    levels: int
    answer_type: str
    values: Mapping[str, int]
    scale: str
    order: str = "increasing"

    def __post_init__(self) -> None:
        if self.answer_type not in ("number", "text"):
            raise ValueError(f"format {self.name}: answer_type must be 'number' or 'text', got {self.answer_type!r}")
        levels = sorted(set(int(v) for v in self.values.values()))
        if levels != list(range(self.levels + 1)):
            raise ValueError(f"format {self.name}: values must map onto 0..{self.levels}, got {levels}")

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> PromptFormat:
        return cls(
            name=str(node["name"]),
            levels=int(node["levels"]),
            answer_type=str(node["answer_type"]),
            values={str(k): int(v) for k, v in dict(node["values"]).items()},
            scale=str(node["scale"]).strip(),
            order=str(node.get("order", "increasing")),
        )

    def allowed(self) -> list[Any]:
        """The allowed values of ``score`` in the JSON answer, in the listing order."""
        if self.answer_type == "number":
            return [int(k) for k in self.values]
        return list(self.values)

    def example(self) -> str:
        return "<one of the allowed scores>" if self.answer_type == "text" else "<integer>"

    def to_level(self, score: Any) -> int:
        """Maps one answered score to its level, or raises :class:`AnswerError`."""
        if self.answer_type == "number":
            if isinstance(score, bool) or not isinstance(score, int):
                raise AnswerError(f"score {score!r} is not an integer")
            if str(score) not in self.values:
                raise AnswerError(f"score {score} is outside the allowed values {self.allowed()}")
            return self.values[str(score)]
        if not isinstance(score, str):
            raise AnswerError(f"score {score!r} is not one of the allowed labels {self.allowed()}")
        lookup = {k.lower(): v for k, v in self.values.items()}
        key = " ".join(score.lower().split())
        if key not in lookup:
            raise AnswerError(f"score {score!r} is not one of the allowed labels {self.allowed()}")
        return lookup[key]


@dataclasses.dataclass(frozen=True)
class ParsedAnswer:
    """A valid answer: a level (0 = insufficient information) and a description per trait."""

    scores: dict[str, int]
    descriptions: dict[str, str]

    @property
    def insufficient(self) -> list[str]:
        return [t for t, s in self.scores.items() if s == 0]


# --------------------------------------------------------------------------- rendering

_TAG = re.compile(r"</?\s*person\s*>", re.IGNORECASE)


def sanitize(text: Any, max_chars: int = 2000) -> str:
    """Person text made safe to embed: no ``<person>`` tags, no control characters, capped."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    text = _TAG.sub(" ", str(text))
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    text = " ".join(text.split())
    return text[:max_chars]


def render_messages(
    fmt: PromptFormat,
    template: Mapping[str, str],
    *,
    name: str,
    context_label: str,
    context: str,
    max_chars: int = 2000,
) -> list[dict[str, str]]:
    """Chat messages (system + user) for one person in one format."""
    fields = {
        "name": sanitize(name, 200),
        "context_label": context_label,
        "context": sanitize(context, max_chars),
        "scale": fmt.scale,
        "allowed": json.dumps(fmt.allowed()),
        "example": fmt.example(),
    }
    messages = []
    if template.get("system"):
        messages.append({"role": "system", "content": string.Template(template["system"]).safe_substitute(fields).strip()})
    messages.append({"role": "user", "content": string.Template(template["user"]).safe_substitute(fields).strip()})
    return messages


def repair_message(template: Mapping[str, str], fmt: PromptFormat, error: str) -> dict[str, str]:
    """The follow-up user message of the one repair round-trip."""
    text = string.Template(template["repair"]).safe_substitute(error=error, allowed=json.dumps(fmt.allowed()))
    return {"role": "user", "content": text.strip()}


# --------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i can’t|i cannot|i won'?t|i will not|i'm unable|i am unable|"
    r"as an ai|i do not feel comfortable|i don't feel comfortable|i must decline)",
    re.IGNORECASE,
)


def parse_answer(content: Any, fmt: PromptFormat, refusal: Any = None, finish_reason: Any = None) -> ParsedAnswer:
    """Parses and validates one answer (see the module docstring).

    Raises:
        Refusal: The API flagged a refusal, stopped for content filtering, or the
            text is a refusal rather than JSON.
        AnswerError: Anything else that is not the required JSON.
    """
    if refusal:
        raise Refusal(f"model refused: {str(refusal)[:200]}")
    if finish_reason == "content_filter":
        raise Refusal("answer stopped by the provider's content filter")
    if not isinstance(content, str) or not content.strip():
        raise AnswerError("empty answer")
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        if _REFUSAL.match(text):
            raise Refusal(f"model refused: {text[:200]}") from None
        raise AnswerError(f"not valid JSON ({err.msg} at position {err.pos})") from None
    if not isinstance(obj, dict):
        raise AnswerError(f"expected a JSON object, got {type(obj).__name__}")
    keys = {str(k).strip().lower(): v for k, v in obj.items()}
    missing = [k for k in TRAIT_KEYS if k not in keys]
    extra = sorted(k for k in keys if k not in TRAIT_KEYS)
    if missing or extra:
        raise AnswerError(f"keys must be exactly {list(TRAIT_KEYS)}; missing {missing}, unexpected {extra}")
    scores, descriptions = {}, {}
    for key, letter in TRAIT_KEYS.items():
        item = keys[key]
        if not isinstance(item, dict) or set(item) != {"description", "score"}:
            raise AnswerError(f"'{key}' must be an object with exactly 'description' and 'score'")
        if not isinstance(item["description"], str):
            raise AnswerError(f"'{key}'.description must be a string")
        try:
            scores[letter] = fmt.to_level(item["score"])
        except AnswerError as err:
            raise AnswerError(f"'{key}': {err}") from None
        descriptions[letter] = item["description"].strip()[:500]
    return ParsedAnswer(scores={t: scores[t] for t in TRAITS}, descriptions={t: descriptions[t] for t in TRAITS})
