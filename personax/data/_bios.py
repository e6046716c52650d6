"""Template-written bios whose wording reflects the Big Five traits.

For each trait the writer picks a phrase from a high or low bank when the
person's trait value (plus writer noise) is clearly high or low, and says nothing
about that trait otherwise. Phrases use common Big Five adjective markers, so a
text-based rater (lexicon or embedding similarity) can recover the traits, but
not perfectly: noise and omissions are part of the design.
"""

from __future__ import annotations

import calendar

import numpy as np

from personax.data.schema import TRAITS

TRAIT_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "o": {
        "high": (
            "is known for restless curiosity and inventive, experimental work",
            "is often described as imaginative and open to unconventional ideas",
            "keeps exploring new art forms, cultures and philosophical questions",
        ),
        "low": (
            "prefers familiar, traditional approaches to new experiments",
            "is regarded as practical and conventional, with little interest in abstract ideas",
            "sticks to routines and proven methods",
        ),
    },
    "c": {
        "high": (
            "is famously disciplined, organised and meticulous in preparation",
            "is described by colleagues as reliable, hard-working and thorough",
            "plans every project carefully and rarely misses a deadline",
        ),
        "low": (
            "has a reputation for being disorganised and spontaneous about commitments",
            "is known to be careless with schedules and to act on impulse",
            "often leaves projects unfinished and dislikes planning",
        ),
    },
    "e": {
        "high": (
            "is outgoing and energetic, and loves the spotlight",
            "is a talkative, sociable presence at public events",
            "draws energy from crowds and is described as bold and assertive",
        ),
        "low": (
            "is reserved and quiet, and avoids public attention",
            "is described as shy and private, preferring solitude",
            "rarely gives interviews and keeps a low profile",
        ),
    },
    "a": {
        "high": (
            "is widely seen as warm, kind and generous to colleagues",
            "is known for a cooperative, forgiving and sympathetic manner",
            "supports many charities and is praised as considerate and trusting",
        ),
        "low": (
            "is known as combative and critical of rivals",
            "has a reputation for being blunt, stubborn and quarrelsome",
            "is often described as cold and uncooperative in public disputes",
        ),
    },
    "n": {
        "high": (
            "has spoken openly about anxiety and is easily stressed",
            "is described as moody and emotionally volatile under pressure",
            "often worries publicly and reacts nervously to criticism",
        ),
        "low": (
            "remains calm and emotionally stable under pressure",
            "is described as relaxed and even-tempered",
            "handles setbacks with composure and rarely seems worried",
        ),
    },
}

_FIRST = ("Ada", "Bruno", "Clara", "Dario", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
          "Mila", "Nils", "Olga", "Pavel", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wim", "Yara", "Zane")
_LAST = ("Abbott", "Berger", "Castro", "Dumont", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanov", "Jansen",
         "Kowalski", "Laurent", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka",
         "Ulrich", "Vargas", "Weber", "Yilmaz")


def make_names(n: int, rng: np.random.Generator) -> list[str]:
    """Fictional full names (not unique; ids are)."""
    first = rng.integers(len(_FIRST), size=n)
    last = rng.integers(len(_LAST), size=n)
    return [f"{_FIRST[f]} {_LAST[l]}" for f, l in zip(first, last)]


def write_bios(
    names: list[str],
    roles: list[str],
    places: list[str],
    birth: np.ndarray,
    traits: np.ndarray,
    rng: np.random.Generator,
    *,
    threshold: float = 0.5,
    writer_noise: float = 0.5,
) -> list[str]:
    """Writes one bio per person.

    Args:
        names: Person names.
        roles: Occupation or league phrase ("an actor", "a basketball player in the NBA").
        places: Region phrase ("North America").
        birth: ``n x 3`` integer array of year, month, day.
        traits: ``n x 5`` trait values in O, C, E, A, N order (standardised scale).
        rng: Randomness of phrase choice, order and writer noise.
        threshold: A trait is mentioned when ``|value + noise|`` exceeds it.
        writer_noise: Standard deviation of the writer's noise.
    """
    bios = []
    perceived = traits + rng.normal(0.0, writer_noise, size=traits.shape)
    for i, name in enumerate(names):
        year, month, day = (int(v) for v in birth[i])
        sentences = []
        for j, trait in enumerate(TRAITS):
            value = perceived[i, j]
            if abs(value) < threshold:
                continue
            bank = TRAIT_PHRASES[trait]["high" if value > 0 else "low"]
            sentences.append(f"{name.split()[0]} {bank[rng.integers(len(bank))]}.")
        rng.shuffle(sentences)
        opening = f"{name} is {roles[i]} from {places[i]}, born on {calendar.month_name[month]} {day}, {year}."
        bios.append(" ".join([opening, *sentences]))
    return bios
