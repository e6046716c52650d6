"""The Hugging Face dataset cards in data_cards/: metadata and the Datasheets sections.

Each card is YAML front matter (validated against the Hub's allowed values) followed by the
Datasheets-for-Datasets sections and the study's usage constraints (SPEC §1). The validator is
itself tested on broken cards, so a passing run means something.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "data_cards"
EXPECTED_CARDS = {"celebpersona", "athlepersona", "synthetic"}

# Allowed values of the Hub's dataset-card metadata (huggingface_hub.DatasetCardData).
SIZE_CATEGORIES = ["n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
                   "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T"]
ANNOTATIONS_CREATORS = {"found", "crowdsourced", "expert-generated", "machine-generated", "no-annotation", "other"}
LANGUAGE_CREATORS = {"found", "crowdsourced", "expert-generated", "machine-generated", "other"}
MULTILINGUALITY = {"monolingual", "multilingual", "translation", "other"}
# Lower-case SPDX-style ids as the Hub spells them, plus the Hub's "other" and "unknown".
LICENSES = {
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "isc", "mpl-2.0", "gpl-2.0", "gpl-3.0", "lgpl-3.0",
    "agpl-3.0", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0", "odc-by", "odbl", "pddl", "cdla-permissive-2.0",
    "unlicense", "other", "unknown",
}
TASK_CATEGORIES = {
    "text-classification", "token-classification", "table-question-answering", "question-answering",
    "zero-shot-classification", "translation", "summarization", "feature-extraction", "text-generation",
    "fill-mask", "sentence-similarity", "text-to-speech", "automatic-speech-recognition", "audio-classification",
    "image-classification", "object-detection", "image-segmentation", "text-to-image", "image-to-text",
    "image-feature-extraction", "zero-shot-image-classification", "tabular-classification", "tabular-regression",
    "time-series-forecasting", "reinforcement-learning", "graph-ml", "other",
}
REQUIRED_KEYS = ["pretty_name", "license", "language", "annotations_creators", "language_creators",
                 "multilinguality", "size_categories", "source_datasets", "task_categories", "tags"]
REQUIRED_SECTIONS = ["Usage constraints", "Motivation", "Composition", "Collection process",
                     "Preprocessing, cleaning and labeling", "Uses", "Out-of-scope uses", "Distribution",
                     "Maintenance"]
# SPEC §1: what every data card must say.
REQUIRED_PHRASES = ["research and teaching only", "hiring", "surveillance", "profiling", "re-identification",
                    "not self-reports"]


def split_card(text: str) -> tuple[dict, str]:
    """Front matter (a YAML mapping between the leading '---' lines) and the Markdown body."""
    match = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", text, flags=re.DOTALL)
    if match is None:
        raise ValueError("no YAML front matter (the card must start with '---' and close it with '---')")
    meta = yaml.safe_load(match.group(1))
    if not isinstance(meta, dict):
        raise ValueError("the front matter is not a YAML mapping")
    return meta, match.group(2)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def size_category(n: int) -> str:
    """The Hub's size bin of a data set with ``n`` examples."""
    for upper, label in zip([10**3 * 10**i for i in range(11)], SIZE_CATEGORIES):
        if n < upper:
            return label
    return SIZE_CATEGORIES[-1]


def validate_card(text: str) -> list[str]:
    """Problems with a card; an empty list means it is valid."""
    try:
        meta, body = split_card(text)
    except (ValueError, yaml.YAMLError) as err:
        return [str(err)]
    problems = [f"missing key {key!r}" for key in REQUIRED_KEYS if meta.get(key) in (None, "", [])]

    def check(key: str, allowed) -> None:
        for value in _as_list(meta.get(key) or []):
            if value not in allowed:
                problems.append(f"{key}: {value!r} is not one of the allowed values")

    check("size_categories", SIZE_CATEGORIES)
    check("annotations_creators", ANNOTATIONS_CREATORS)
    check("language_creators", LANGUAGE_CREATORS)
    check("multilinguality", MULTILINGUALITY)
    check("task_categories", TASK_CATEGORIES)
    check("license", LICENSES)
    if "other" in _as_list(meta.get("license")) and not re.fullmatch(r"[a-z0-9-]+", str(meta.get("license_name", ""))):
        problems.append("license 'other' needs a license_name (lower case, digits and hyphens)")
    for language in _as_list(meta.get("language") or []):
        if not re.fullmatch(r"[a-z]{2,3}", str(language)):
            problems.append(f"language: {language!r} is not an ISO 639 code")
    for source in _as_list(meta.get("source_datasets") or []):
        if not re.fullmatch(r"original|extended(\|[\w.\-/]+)?", str(source)):
            problems.append(f"source_datasets: {source!r} is neither 'original' nor 'extended|<name>'")
    if not isinstance(meta.get("pretty_name", ""), str):
        problems.append("pretty_name must be a string")

    headings = {h.strip().lower() for h in re.findall(r"^#{2,3}\s+(.+?)\s*$", body, flags=re.MULTILINE)}
    problems += [f"missing section {s!r}" for s in REQUIRED_SECTIONS if s.lower() not in headings]
    flat = " ".join(body.lower().replace("*", "").split())
    problems += [f"usage constraints do not mention {p!r}" for p in REQUIRED_PHRASES if p not in flat]
    return problems


def _card(name: str) -> str:
    return (CARDS / f"{name}.md").read_text(encoding="utf-8")


def test_the_three_cards_exist():
    assert {p.stem for p in CARDS.glob("*.md")} >= EXPECTED_CARDS


@pytest.mark.parametrize("name", sorted(EXPECTED_CARDS))
def test_card_is_valid(name):
    assert validate_card(_card(name)) == []


@pytest.mark.parametrize("name, n", [("celebpersona", 9_444), ("athlepersona", 4_181)])
def test_study_card_size_bin_matches_the_study(name, n):
    meta, body = split_card(_card(name))
    assert meta["size_categories"] == [size_category(n)]
    assert f"{n:,}" in body
    assert meta["annotations_creators"] == ["machine-generated"]


def test_synthetic_card_matches_the_default_config_and_the_project_licence():
    meta, _ = split_card(_card("synthetic"))
    default_n = yaml.safe_load((ROOT / "conf/data/synthetic.yaml").read_text())["n"]
    assert meta["size_categories"] == [size_category(default_n)]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == project["license"]["text"].lower()


def test_size_category_bins():
    assert [size_category(n) for n in (0, 999, 1_000, 9_444, 10_000, 10**12)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "n>1T"]


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("---\n", "", "no YAML front matter"),
        ("pretty_name: personax synthetic PersonaX cohort\n", "", "missing key 'pretty_name'"),
        ("1K<n<10K", "about 2K", "size_categories: 'about 2K'"),
        ("annotations_creators:\n  - machine-generated", "annotations_creators:\n  - llm", "annotations_creators: 'llm'"),
        ("license: apache-2.0", "license: Apache License", "license: 'Apache License'"),
        ("license: apache-2.0", "license: other", "license 'other' needs a license_name"),
        ("  - en\n", "  - English\n", "language: 'English'"),
        ("  - original\n", "  - from the web\n", "source_datasets: 'from the web'"),
        ("## Maintenance", "## Upkeep", "missing section 'Maintenance'"),
        ("### Out-of-scope uses", "Out-of-scope uses", "missing section 'Out-of-scope uses'"),
        ("re-identification", "reuse", "do not mention 're-identification'"),
    ],
)
def test_validator_rejects_broken_cards(old, new, expected):
    good = _card("synthetic")
    broken = good.replace(old, new, 1) if old != "re-identification" else good.replace(old, new)
    assert broken != good, f"the mutation {old!r} -> {new!r} did not apply"
    problems = validate_card(broken)
    assert any(expected in p for p in problems), problems


def test_validator_rejects_front_matter_that_is_not_a_mapping():
    assert validate_card("---\n- a list\n---\n# x\n") == ["the front matter is not a YAML mapping"]
