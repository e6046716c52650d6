"""A synthetic PersonaX cohort with a planted structural causal model.

:func:`make_cohort` draws people whose latent Big Five traits depend on some
biographical features and not on others, and whose faces show some traits. The returned
:class:`GroundTruth` holds the true trait values, the planted DAG over every
variable (hidden ones included), which features are direct causes of which
trait, and the *marginal* dependence matrix that an unconditional independence
test should find. Bios are written from the traits (so text raters can recover
them) and faces are drawn from the face attributes (so image models can).

Level II (the crl stage) is planted on purpose to meet the model's assumptions
(celebrity cohort): continuous, non-Gaussian latents in three blocks. The shared
block is extraversion and agreeableness, seen in the bio *and* the face (the
smile's curve, the mouth's width); the image block is the face's geometry (face
length -> nose length, an edge inside the block), seen only in the face; the text
block is openness, conscientiousness and neuroticism (c -> n), seen only in the
bio. Gender, birth year and occupation shift these latents and are observed, so
the crl stage conditions its prior on them (``crl.auxiliary``). Four CelebA
attributes are views of these latents: Oval_Face and Big_Nose are thresholds of
the geometry, High_Cheekbones and Big_Lips follow e and a.

Marginal dependence is read off the DAG: two variables are dependent exactly
when they share an ancestor (one may be the other's ancestor), which is
d-connection given the empty set under faithfulness. One simplification is
documented rather than modelled: the day of year of a date after February shifts
by one day in leap years, so ``day_of_year`` is not exactly independent of
``birth_year``; the DAG omits that edge because its effect is below one day.

Example:
    >>> cohort = make_cohort(200, kind="celeb", seed=0, images=False)
    >>> cohort.table.shape[0], cohort.truth.traits
    (200, ['o', 'c', 'e', 'a', 'n'])
    >>> bool(cohort.truth.marginal_dependence.loc["birth_month"].any())
    False
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personax.data import _bios, _faces
from personax.data.schema import FACE_ATTRIBUTES, TRAITS, date_features, rater_column
from personax.data.truth import GroundTruth

KINDS = ("celeb", "athlete")

OCCUPATIONS = ("actor", "musician", "athlete", "politician", "writer", "scientist", "entrepreneur", "model")
# Effect of occupation on (O, C, E, A, N), in trait standard deviations.
_OCCUPATION_EFFECT = np.array(
    [
        [0.5, -0.2, 0.7, 0.1, 0.2],
        [0.8, -0.5, 0.4, 0.0, 0.4],
        [-0.4, 0.4, 0.4, 0.0, -0.3],
        [-0.2, 0.5, 0.6, -0.5, -0.2],
        [0.9, 0.1, -0.6, 0.1, 0.4],
        [0.6, 0.7, -0.6, 0.1, 0.0],
        [0.2, 0.6, 0.3, -0.4, -0.3],
        [0.0, -0.2, 0.3, 0.2, 0.3],
    ]
)
_OCCUPATION_GIVEN_GENDER = np.array(  # rows: female, male
    [
        [0.22, 0.16, 0.06, 0.06, 0.14, 0.08, 0.08, 0.20],
        [0.16, 0.14, 0.20, 0.14, 0.10, 0.12, 0.12, 0.02],
    ]
)
LEAGUES = ("NBA", "NFL", "NHL", "ATP", "PGA", "Premier League", "Bundesliga")
_LEAGUE_SHARE = np.array([450, 1700, 700, 300, 250, 500, 500], dtype=float)
_LEAGUE_ROLE = (
    "a basketball player in the NBA",
    "an American football player in the NFL",
    "an ice hockey player in the NHL",
    "a tennis player on the ATP tour",
    "a golfer on the PGA tour",
    "a footballer in the Premier League",
    "a footballer in the Bundesliga",
)
_LEAGUE_EFFECT = np.array(  # on (O, C, E, A, N)
    [
        [0.2, -0.2, 0.7, 0.0, 0.2],
        [-0.4, 0.3, 0.5, -0.3, -0.1],
        [-0.5, 0.4, 0.0, -0.4, -0.2],
        [0.3, 0.6, -0.5, 0.1, 0.4],
        [0.1, 0.8, -0.4, 0.4, -0.4],
        [0.0, -0.3, 0.3, 0.2, 0.2],
        [-0.2, 0.2, -0.2, 0.3, 0.0],
    ]
)
_LEAGUE_HEIGHT = np.array([200.0, 188.0, 185.0, 186.0, 180.0, 181.0, 183.0])
_LEAGUE_BMI = np.array([24.5, 31.0, 26.0, 23.0, 25.0, 23.0, 23.5])
_LEAGUE_BIRTH_YEAR = np.array([1996.0, 1996.0, 1995.0, 1995.0, 1988.0, 1997.0, 1997.0])

REGIONS = ("North America", "Latin America", "Western Europe", "Northern Europe", "East Asia", "Africa", "Oceania")
_REGION_CENTRE = np.array([[40, -95], [-10, -60], [47, 5], [60, 15], [35, 120], [5, 20], [-30, 145]], dtype=float)
_REGION_SPREAD = np.array([[8, 18], [15, 12], [4, 8], [4, 8], [8, 12], [12, 15], [6, 12]], dtype=float)
_REGION_GIVEN_LEAGUE = np.array(
    [
        [0.80, 0.03, 0.07, 0.02, 0.02, 0.04, 0.02],
        [0.97, 0.01, 0.00, 0.00, 0.00, 0.01, 0.01],
        [0.72, 0.00, 0.02, 0.26, 0.00, 0.00, 0.00],
        [0.12, 0.14, 0.40, 0.14, 0.10, 0.03, 0.07],
        [0.60, 0.04, 0.10, 0.08, 0.08, 0.04, 0.06],
        [0.00, 0.12, 0.60, 0.13, 0.01, 0.13, 0.01],
        [0.00, 0.03, 0.78, 0.10, 0.03, 0.06, 0.00],
    ]
)
_REGION_SHARE_CELEB = np.array([0.34, 0.08, 0.24, 0.08, 0.12, 0.07, 0.07])
_REGION_EXTRAVERSION = np.array([0.3, 0.4, 0.0, -0.4, -0.5, 0.2, 0.1])

# Face attributes: logit = base + gender_effect * male_sign + age_effect * age_z (+ weight)
# male_sign is +1 for men, -1 for women; age_z is the standardised age.
_FACE_MODEL = {
    "Arched_Eyebrows": (-0.6, -1.2, 0.0),
    "Big_Nose": (-0.8, 0.9, 0.0),
    "Pointy_Nose": (-0.6, 0.0, 0.0),
    "Bushy_Eyebrows": (-0.9, 0.9, 0.0),
    "Big_Lips": (-0.7, -0.7, 0.0),
    "Oval_Face": (-0.5, 0.0, 0.0),
    "Double_Chin": (-1.8, 0.0, 0.8),
    "Receding_Hairline": (-1.6, 1.0, 1.0),
    "Narrow_Eyes": (-1.0, 0.0, 0.0),
    "High_Cheekbones": (-0.2, -0.9, 0.0),
}
# Attributes that are thresholds of a continuous latent (the drawing follows the latent).
_FACE_FROM_LATENT = {"Oval_Face": ("face_length", 0.3), "Big_Nose": ("nose_length", 0.5)}
# Traits seen in the face: logit += effect * standardised trait (the drawing's smile and mouth width
# follow extraversion and agreeableness continuously).
_TRAIT_ON_FACE = {"High_Cheekbones": ("smile", 0.8), "Big_Lips": ("mouth_width", 0.6)}
_DRAWN_TRAIT = {"smile": "e", "mouth_width": "a"}  # the face geometry that shows each shared trait
_C_ON_N = -0.4  # conscientiousness lowers neuroticism (an edge inside the text block)
_FACE_LENGTH_ON_NOSE, _GENDER_ON_NOSE = 0.9, 0.45  # the edges into nose_length
# Direct effect of gender on (O, C, E, A, N), times +1 for men and -1 for women.
_GENDER_ON_TRAITS = np.array([0.25, -0.25, -0.25, -0.35, -0.35])

SIMULATED_RATERS = {
    # name: (noise sd, bias, probability of answering 0 = insufficient information)
    "sima": (0.5, 0.0, 0.02),
    "simb": (0.7, 0.2, 0.05),
    "simc": (0.9, -0.2, 0.10),
}


@dataclasses.dataclass
class Cohort:
    """A synthetic cohort: the person table, what was planted, and the faces.

    Attributes:
        table: Person table in canonical columns (``image_path`` empty until the
            faces are written somewhere), plus simulated rater columns.
        truth: The planted ground truth.
        faces: ``n x size x size x 3`` uint8 array, or None.
        label_maps: Label -> code maps for ``group`` and ``gender``.
    """

    table: pd.DataFrame
    truth: GroundTruth
    faces: np.ndarray | None
    label_maps: dict[str, dict[str, int]]


def ancestors(edges: Sequence[tuple[str, str, float]], node: str) -> set[str]:
    """All ancestors of ``node`` in the DAG given by ``edges``."""
    parents: dict[str, set[str]] = {}
    for parent, child, _ in edges:
        parents.setdefault(child, set()).add(parent)
    seen: set[str] = set()
    stack = [node]
    while stack:
        for parent in parents.get(stack.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def marginally_dependent(edges: Sequence[tuple[str, str, float]], a: str, b: str) -> bool:
    """d-connection of ``a`` and ``b`` given nothing: they share an ancestor."""
    return bool((ancestors(edges, a) | {a}) & (ancestors(edges, b) | {b}))


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() if x.std() > 0 else 1.0)


def _random_dates(years: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform day of a (non-leap reference) year, as month and day."""
    doy = rng.integers(0, 365, size=len(years))
    reference = pd.Timestamp("2001-01-01") + pd.to_timedelta(doy, unit="D")
    return reference.month.to_numpy(), reference.day.to_numpy()


def _sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``probs`` (rows sum to 1)."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (rng.random((len(probs), 1)) > cumulative).sum(axis=1)


def _simulated_scores(traits: np.ndarray, rng: np.random.Generator, raters: Sequence[str]) -> dict[str, np.ndarray]:
    """Scores on the study's Number-L3-Inc scale: 1..3, 0 = insufficient information."""
    cuts = np.array([-0.43, 0.43])  # terciles of a standard normal
    scores = {}
    scale = traits.std(axis=0, keepdims=True)
    for name in raters:
        if name not in SIMULATED_RATERS:
            raise ValueError(f"unknown simulated rater {name!r}; known: {sorted(SIMULATED_RATERS)}")
        noise, bias, p_zero = SIMULATED_RATERS[name]
        perceived = traits / scale + bias + rng.normal(0.0, noise, size=traits.shape)
        level = 1 + np.searchsorted(cuts, perceived).astype(float)
        level[rng.random(traits.shape) < p_zero] = 0.0
        scores[name] = level
    return scores


def _celeb(n: int, rng: np.random.Generator) -> dict[str, Any]:
    male = (rng.random(n) < 0.55).astype(int)
    occupation = _sample_categorical(_OCCUPATION_GIVEN_GENDER[male], rng)
    birth_year = np.clip(np.round(rng.normal(1968, 16, n)), 1920, 2006).astype(int)
    age_z = (1968 - birth_year) / 16.0
    region = _sample_categorical(np.tile(_REGION_SHARE_CELEB, (n, 1)), rng)
    male_sign = 2 * male - 1
    height = 166 + 7 * male_sign + rng.normal(0, 7, n)
    weight = 22.5 * (height / 100) ** 2 * np.exp(0.03 * male_sign + rng.normal(0, 0.10, n))
    # Level II image block: continuous face geometry, non-Gaussian, with an edge inside the
    # block (face_length -> nose_length) and gender as an observed auxiliary.
    face_length = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), n)
    nose_length = _standardised(_FACE_LENGTH_ON_NOSE * np.tanh(1.2 * face_length) + _GENDER_ON_NOSE * male_sign
                                + rng.laplace(0, 0.4, n))
    # Traits: occupation, age, region, gender, and Laplace (non-Gaussian) noise; c -> n inside the block.
    traits = rng.laplace(0, 1 / np.sqrt(2.0), (n, 5)) + _OCCUPATION_EFFECT[occupation]
    traits[:, 0] += -0.30 * age_z
    traits[:, 1] += 0.35 * age_z
    traits[:, 2] += _REGION_EXTRAVERSION[region]
    traits += _GENDER_ON_TRAITS * male_sign[:, None]
    traits[:, 4] += -0.25 * age_z + _C_ON_N * np.tanh(traits[:, 1])
    # The shared block: extraversion and agreeableness show in the face (smile, mouth width)
    # as well as in the bio, so both modalities measure them.
    geometry = {"face_length": face_length, "nose_length": nose_length,
                **{drawn: _standardised(traits[:, TRAITS.index(t)]) for drawn, t in _DRAWN_TRAIT.items()}}
    faces = {}
    for name, (base, gender_effect, age_effect) in _FACE_MODEL.items():
        logit = base + gender_effect * male_sign + age_effect * age_z
        if name in _FACE_FROM_LATENT:  # a thresholded view of a continuous latent
            latent, cut = _FACE_FROM_LATENT[name]
            faces[name] = np.where(geometry[latent] > cut, 1, -1)
            continue
        if name in _TRAIT_ON_FACE:
            drawn, effect = _TRAIT_ON_FACE[name]
            logit = logit + effect * geometry[drawn]
        faces[name] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 1, -1)

    edges: list[tuple[str, str, float]] = [
        ("gender", "group", 1.0),
        ("gender", "height_cm", 1.0),
        ("height_cm", "weight_kg", 1.0),
        ("gender", "weight_kg", 0.3),
        ("region", "latitude", 1.0),
        ("region", "longitude", 1.0),
        ("region", "e", 1.0),
        ("birth_month", "day_of_year", 1.0),
        ("birth_day", "day_of_year", 1.0),
        ("birth_month", "birth_day", 1.0),  # the day's range depends on the month
        ("day_of_year", "day_sin", 1.0),
        ("day_of_year", "day_cos", 1.0),
        ("birth_year", "o", -0.30),
        ("birth_year", "c", 0.35),
        ("birth_year", "n", -0.25),
    ]
    edges += [("gender", t, float(w)) for t, w in zip(TRAITS, _GENDER_ON_TRAITS)]
    edges += [("group", t, 1.0) for t in TRAITS]
    for name, (_, gender_effect, age_effect) in _FACE_MODEL.items():
        if name in _FACE_FROM_LATENT:
            edges.append((_FACE_FROM_LATENT[name][0], name, 1.0))
            continue
        if gender_effect:
            edges.append(("gender", name, gender_effect))
        if age_effect:
            edges.append(("birth_year", name, age_effect))
    edges += [("face_length", "nose_length", _FACE_LENGTH_ON_NOSE), ("gender", "nose_length", _GENDER_ON_NOSE),
              ("c", "n", _C_ON_N)]
    edges += [(_DRAWN_TRAIT[drawn], face, effect) for face, (drawn, effect) in _TRAIT_ON_FACE.items()]
    return {
        "group": occupation,
        "group_labels": OCCUPATIONS,
        "male": male,
        "gender_map": {"female": 0, "male": 1},
        "birth_year": birth_year,
        "region": region,
        "height": height,
        "weight": weight,
        "faces": faces,
        "geometry": geometry,
        "faces_observed": True,
        "traits": traits,
        "edges": edges,
        "roles": [("an " if OCCUPATIONS[o][0] in "aeiou" else "a ") + OCCUPATIONS[o] for o in occupation],
        "features": [
            "height_cm", "weight_kg", "birth_year", "birth_month", "birth_day", "day_of_year", "day_sin",
            "day_cos", "latitude", "longitude", "group", "gender", *FACE_ATTRIBUTES,
        ],
        "hidden": ["region", "face_length", "nose_length"],
        # Level II: e and a are seen in the face and the bio; the face geometry only in the face;
        # o, c, n only in the bio. Gender, birth year and occupation are observed auxiliaries.
        "latent_blocks": {"shared": ["e", "a"], "image": ["face_length", "nose_length"], "text": ["o", "c", "n"]},
        "latent_values": {"face_length": face_length, "nose_length": nose_length},
    }


def _athlete(n: int, rng: np.random.Generator) -> dict[str, Any]:
    league = _sample_categorical(np.tile(_LEAGUE_SHARE / _LEAGUE_SHARE.sum(), (n, 1)), rng)
    birth_year = np.clip(np.round(_LEAGUE_BIRTH_YEAR[league] + rng.normal(0, 4.5, n)), 1970, 2007).astype(int)
    age_z = (1995 - birth_year) / 5.0
    region = _sample_categorical(_REGION_GIVEN_LEAGUE[league], rng)
    height = _LEAGUE_HEIGHT[league] + rng.normal(0, 7, n)
    weight = _LEAGUE_BMI[league] * (height / 100) ** 2 * np.exp(rng.normal(0, 0.07, n))
    # Athletes' faces are drawn too, from attributes the table does not record.
    faces = {name: np.where(rng.random(n) < 0.4, 1, -1) for name in FACE_ATTRIBUTES}
    traits = rng.normal(0, 1, (n, 5)) + _LEAGUE_EFFECT[league]
    traits[:, 0] += -0.30 * age_z
    traits[:, 1] += 0.40 * age_z
    traits[:, 4] += -0.30 * age_z
    edges: list[tuple[str, str, float]] = [
        ("group", "birth_year", 1.0),
        ("group", "region", 1.0),
        ("group", "height_cm", 1.0),
        ("group", "weight_kg", 1.0),
        ("height_cm", "weight_kg", 1.0),
        ("region", "latitude", 1.0),
        ("region", "longitude", 1.0),
        ("birth_month", "day_of_year", 1.0),
        ("birth_day", "day_of_year", 1.0),
        ("birth_month", "birth_day", 1.0),
        ("day_of_year", "day_sin", 1.0),
        ("day_of_year", "day_cos", 1.0),
        ("birth_year", "o", -0.30),
        ("birth_year", "c", 0.40),
        ("birth_year", "n", -0.30),
    ]
    edges += [("group", t, 1.0) for t in TRAITS]
    return {
        "group": league,
        "group_labels": LEAGUES,
        "male": np.ones(n, dtype=int),
        "gender_map": {"male": 1},
        "birth_year": birth_year,
        "region": region,
        "height": height,
        "weight": weight,
        "faces": faces,
        "faces_observed": False,
        "traits": traits,
        "edges": edges,
        "roles": [_LEAGUE_ROLE[g] for g in league],
        "features": ["birth_year", "birth_month", "birth_day", "group", "latitude", "longitude", "height_cm", "weight_kg"],
        "hidden": ["region"],
        "latent_blocks": {"shared": ["group", "birth_year"], "image": ["region"], "text": list(TRAITS)},
    }


def make_cohort(
    n: int = 2000,
    kind: str = "celeb",
    seed: int = 0,
    *,
    images: bool = True,
    image_size: int = 64,
    simulated_raters: Sequence[str] = tuple(SIMULATED_RATERS),
) -> Cohort:
    """Draws a synthetic cohort of ``n`` people; the same arguments give the same cohort.

    Args:
        n: Number of people.
        kind: "celeb" (occupation, gender, face attributes) or "athlete" (7
            leagues, men only, no face attributes).
        seed: Seed of every random choice.
        images: Draw a face per person (about 0.3 ms each).
        image_size: Side of the face images in pixels.
        simulated_raters: Names from ``SIMULATED_RATERS``; each adds noisy
            ``trait_<name>_<t>`` scores on the study's 1..3 scale (0 =
            insufficient information), standing in for LLM raters. ``()`` for none.

    Returns:
        The cohort: table, ground truth, faces and label maps.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    draw = _celeb(n, rng) if kind == "celeb" else _athlete(n, rng)
    month, day = _random_dates(draw["birth_year"], rng)
    doy, day_sin, day_cos = np.array(
        [date_features(int(y), int(m), int(d)) for y, m, d in zip(draw["birth_year"], month, day)]
    ).T
    region = draw["region"]
    centre, spread = _REGION_CENTRE[region], _REGION_SPREAD[region]
    latitude = np.clip(centre[:, 0] + spread[:, 0] * rng.standard_normal(n), -89.0, 89.0)
    longitude = (centre[:, 1] + spread[:, 1] * rng.standard_normal(n) + 180.0) % 360.0 - 180.0
    traits = draw["traits"]

    ids = [f"{kind}-{i:06d}" for i in range(n)]
    names = _bios.make_names(n, rng)
    places = [REGIONS[r] for r in region]
    birth = np.stack([draw["birth_year"], month, day], axis=1)
    bios = _bios.write_bios(names, draw["roles"], places, birth, traits, rng)

    table = pd.DataFrame(
        {
            "person_id": ids,
            "name": names,
            "dataset": pd.Categorical([kind] * n, categories=KINDS),
            "group": pd.array(draw["group"], dtype="Int64"),
            "gender": pd.array(draw["male"], dtype="Int64"),
            "birth_year": pd.array(draw["birth_year"], dtype="Int64"),
            "birth_month": pd.array(month, dtype="Int64"),
            "birth_day": pd.array(day, dtype="Int64"),
            "day_of_year": pd.array(doy.astype(int), dtype="Int64"),
            "day_sin": day_sin,
            "day_cos": day_cos,
            "latitude": latitude,
            "longitude": longitude,
            "height_cm": np.round(draw["height"], 1),
            "weight_kg": np.round(draw["weight"], 1),
        }
    )
    for name in FACE_ATTRIBUTES:
        values = draw["faces"][name] if draw["faces_observed"] else np.full(n, pd.NA)
        table[name] = pd.array(values, dtype="Int8")
    table["bio"] = pd.Series(bios, dtype=object)
    table["image_path"] = pd.Series([None] * n, dtype=object)
    for rater, scores in _simulated_scores(traits, rng, list(simulated_raters)).items():
        for j, trait in enumerate(TRAITS):
            table[rater_column(rater, trait)] = scores[:, j]

    faces = None
    if images:
        face_rng = np.random.default_rng([seed, 1])
        ages = 2025 - draw["birth_year"]
        faces = np.stack(
            [
                _faces.draw_face(
                    {a: int(draw["faces"][a][i]) for a in FACE_ATTRIBUTES},
                    male=bool(draw["male"][i]),
                    age_years=float(ages[i]),
                    region=int(region[i]),
                    rng=face_rng,
                    size=image_size,
                    geometry={k: float(v[i]) for k, v in draw.get("geometry", {}).items()},
                )
                for i in range(n)
            ]
        )

    features = draw["features"]
    edges = draw["edges"]
    nodes = {f: "feature" for f in features}
    nodes.update({t: "trait" for t in TRAITS})
    nodes.update({h: "hidden" for h in draw["hidden"]})
    direct = pd.DataFrame(0, index=features, columns=list(TRAITS))
    for parent, child, _ in edges:
        if parent in direct.index and child in direct.columns:
            direct.loc[parent, child] = 1
    marginal = pd.DataFrame(
        [[int(marginally_dependent(edges, f, t)) for t in TRAITS] for f in features],
        index=features,
        columns=list(TRAITS),
    )
    trait_values = pd.DataFrame({"person_id": ids, **{t: traits[:, j] for j, t in enumerate(TRAITS)},
                                 **{k: np.asarray(v, dtype=float) for k, v in draw.get("latent_values", {}).items()}})
    truth = GroundTruth(
        kind=kind,
        seed=seed,
        features=list(features),
        traits=list(TRAITS),
        nodes=nodes,
        edges=edges,
        latent_blocks=draw["latent_blocks"],
        direct_effects=direct,
        marginal_dependence=marginal,
        trait_values=trait_values,
        raters={r: dict(zip(("noise_sd", "bias", "p_insufficient"), SIMULATED_RATERS[r])) for r in simulated_raters},
    )
    label_maps = {
        "group": {label: code for code, label in enumerate(draw["group_labels"])},
        "gender": dict(draw["gender_map"]),
    }
    return Cohort(table=table, truth=truth, faces=faces, label_maps=label_maps)


# --------------------------------------------------------------------------- CRL benchmark


@dataclasses.dataclass
class MultimodalBenchmark:
    """Multi-measurement multimodal data with known latents (the study's generative model: shared, modality-specific and per-measurement latents).

    Attributes:
        modalities: modality name -> list of K measurement arrays (n x obs_dim each),
            x(m,k) = g(m,k)(s, z(m), eta(m,k)).
        latents: "shared" and each modality name -> the true latent block (n x dim).
        noise: modality name -> list of per-measurement noise arrays eta(m,k).
        graph: Weighted adjacency over the latent names (entry [parent, child]);
            nothing points into the shared block.
        auxiliary: Observed group label per person (integers), when the benchmark's
            latents depend on one (``make_multimodal_numeric(auxiliary_groups=...)``); else None.
    """

    modalities: dict[str, list[np.ndarray]]
    latents: dict[str, np.ndarray]
    noise: dict[str, list[np.ndarray]]
    graph: pd.DataFrame
    auxiliary: np.ndarray | None = None


def _invertible_mlp(in_dim: int, out_dim: int, rng: np.random.Generator, layers: int = 2) -> Any:
    """A random injective map R^in -> R^out (out >= in): leaky-ReLU MLP with full-rank weights."""
    if out_dim < in_dim:
        raise ValueError(f"obs_dim ({out_dim}) must be at least the input dimension ({in_dim}) to stay injective")
    weights = []
    dim = in_dim
    for layer in range(layers):
        target = out_dim if layer == 0 else out_dim
        q, _ = np.linalg.qr(rng.normal(size=(max(dim, target), max(dim, target))))
        w = q[:target, :dim] if target >= dim else q[:dim, :target].T
        weights.append(w * rng.uniform(0.8, 1.2, size=(target, 1)))
        dim = target

    def apply(u: np.ndarray) -> np.ndarray:
        h = u
        for i, w in enumerate(weights):
            h = h @ w.T
            if i < len(weights) - 1:
                h = np.where(h > 0, h, 0.2 * h)  # leaky ReLU: strictly monotone, so invertible
        return h

    return apply


def make_multimodal_numeric(
    n: int = 5000,
    *,
    shared_dim: int = 2,
    modality_dims: dict[str, int] | None = None,
    measurements: dict[str, int] | None = None,
    obs_dim: int = 10,
    noise_dim: int = 1,
    noise_scale: float = 0.5,
    edge_probability: float = 0.5,
    auxiliary_groups: int = 0,
    seed: int = 0,
) -> MultimodalBenchmark:
    """The numeric CRL benchmark: latents from a known SCM, measurements through random injective MLPs.

    Latents are ordered [s, z(1), ..., z(M)]. Shared latents are independent roots.
    Each modality latent gets each earlier latent as a parent with probability
    ``edge_probability`` (at least one shared parent, so the blocks are linked), and
    mechanism ``z = sum_p w_p * tanh(parent_p) + 0.5 * e`` with |w| in [0.5, 1.5].

    With ``auxiliary_groups`` = G > 0 every person also has an observed group (uniform over G,
    ``bench.auxiliary``) that shifts the location (by U(-1, 1)) and scales (by exp U(-0.7, 0.7))
    every latent's exogenous noise e, the setting of iVAE's identifiability (Khemakhem et al.
    2020: components are identified given 2d + 1 distinct groups for d latents). The groups use
    their own random stream: the rest of the draw is the same as without them.

    Example:
        >>> bench = make_multimodal_numeric(100, seed=0)
        >>> [x.shape for x in bench.modalities["image"]]
        [(100, 10), (100, 10), (100, 10)]
        >>> bool(bench.graph.loc[:, ["s1", "s2"]].abs().sum().sum() == 0)
        True
    """
    modality_dims = dict(modality_dims or {"image": 2, "text": 2})
    measurements = dict(measurements or {m: 3 for m in modality_dims})
    rng = np.random.default_rng(seed)
    names = [f"s{i + 1}" for i in range(shared_dim)]
    for modality, dim in modality_dims.items():
        names += [f"{modality}{i + 1}" for i in range(dim)]
    graph = pd.DataFrame(0.0, index=names, columns=names)
    groups, location, scale = None, np.zeros((1, len(names))), np.ones((1, len(names)))
    if auxiliary_groups:
        group_rng = np.random.default_rng([seed, 7])
        groups = group_rng.integers(auxiliary_groups, size=n)
        location = group_rng.uniform(-1.0, 1.0, size=(auxiliary_groups, len(names)))[groups]
        scale = np.exp(group_rng.uniform(-0.7, 0.7, size=(auxiliary_groups, len(names))))[groups]
    values = np.zeros((n, len(names)))
    values[:, :shared_dim] = location[:, :shared_dim] + scale[:, :shared_dim] * rng.normal(size=(n, shared_dim))
    for j in range(shared_dim, len(names)):
        parents = [i for i in range(j) if rng.random() < edge_probability]
        if not any(i < shared_dim for i in parents):
            parents.append(int(rng.integers(shared_dim)))
        total = 0.5 * (location[:, j] + scale[:, j] * rng.normal(size=n))
        for i in sorted(set(parents)):
            weight = rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)
            graph.iloc[i, j] = weight
            total = total + weight * np.tanh(values[:, i])
        values[:, j] = total / values[:, :j].std(axis=0).mean() if j else total
        values[:, j] = (values[:, j] - values[:, j].mean()) / values[:, j].std()
    latents = {"shared": values[:, :shared_dim]}
    start = shared_dim
    for modality, dim in modality_dims.items():
        latents[modality] = values[:, start : start + dim]
        start += dim
    modalities, noise = {}, {}
    for modality in modality_dims:
        modalities[modality], noise[modality] = [], []
        for _ in range(measurements[modality]):
            eta = noise_scale * rng.normal(size=(n, noise_dim))
            inputs = np.concatenate([latents["shared"], latents[modality], eta], axis=1)
            mix = _invertible_mlp(inputs.shape[1], obs_dim, rng)
            modalities[modality].append(mix(inputs).astype(np.float32))
            noise[modality].append(eta)
    return MultimodalBenchmark(modalities=modalities, latents=latents, noise=noise, graph=graph, auxiliary=groups)


VARIANT_DIGITS_GRAPH = (("Z11", "Z12"), ("Z11", "Z21"), ("Z21", "Z22"))
_COLOURS = np.array([[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.3, 0.45, 1.0]])


def _read_idx_images(path: str | Path) -> np.ndarray:
    """Reads an MNIST-format IDX image file (optionally gzipped) without pickle."""
    import gzip

    path = Path(path).expanduser()
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise ValueError(f"{path} is not an IDX image file (magic number 2051 expected)")
    count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + count * rows * cols:
        raise ValueError(f"{path}: expected {count}x{rows}x{cols} bytes of pixels, found {len(raw) - 16}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols).astype(np.float32) / 255.0


def _bundled_digits(classes: Sequence[int], size: int) -> np.ndarray:
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[np.isin(digits.target, classes)] / 16.0
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # room to rotate and scale
    return np.clip(zoom(padded, (1, size / 12, size / 12), order=1), 0, 1).astype(np.float32)


def _transform(image: np.ndarray, angle: float, scale: float, shear: float, shift: np.ndarray) -> np.ndarray:
    from scipy.ndimage import affine_transform

    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) / scale
    centre = (np.array(image.shape) - 1) / 2
    offset = centre - matrix @ centre + shift
    return affine_transform(image, matrix, offset=offset, order=1, mode="constant")


def make_variant_digits(
    n: int = 5000,
    *,
    seed: int = 0,
    measurements: int = 3,
    image_size: int = 28,
    mnist_path: str | Path | None = None,
    fashion_path: str | Path | None = None,
    pixel_noise: float = 0.05,
    exemplars: str = "per_measurement",
) -> MultimodalBenchmark:
    """The "variant digits" CRL benchmark from real handwritten digits.

    True graph over [Z11, Z12, Z21, Z22]: Z11 -> Z12, Z11 -> Z21, Z21 -> Z22.
    Modality ``digit``: a digit whose rotation follows Z11 and scale Z12, rendered
    ``measurements`` times in different colours, each with its own noise eta (a
    small translation) and pixel noise. Modality ``fashion``: a second image type
    whose shear follows Z21 and scale Z22. By default both come from scikit-learn's
    bundled 8x8 digits (classes 0-4 for ``digit``, 5-9 for ``fashion``), upsampled;
    with ``mnist_path`` / ``fashion_path`` (IDX files, e.g. train-images-idx3-ubyte.gz)
    the real MNIST / Fashion-MNIST images are used.

    Returns:
        A :class:`MultimodalBenchmark`; images are flattened ``size*size*3`` float32
        vectors in [0, 1]; ``latents`` has ``digit`` = [Z11, Z12] and ``fashion`` =
        [Z21, Z22] and an empty ``shared`` block.

    Example:
        >>> bench = make_variant_digits(20, seed=0, image_size=16)
        >>> bench.modalities["digit"][0].shape, list(bench.graph.index)
        ((20, 768), ['Z11', 'Z12', 'Z21', 'Z22'])
    """
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    z11 = rng.uniform(-1, 1, n)
    z12 = np.tanh(1.5 * z11) * 0.6 + 0.4 * rng.uniform(-1, 1, n)
    z21 = np.sin(1.5 * z11) * 0.6 + 0.4 * rng.uniform(-1, 1, n)
    z22 = np.tanh(1.5 * z21) * 0.6 + 0.4 * rng.uniform(-1, 1, n)
    names = ["Z11", "Z12", "Z21", "Z22"]
    graph = pd.DataFrame(0.0, index=names, columns=names)
    for parent, child in VARIANT_DIGITS_GRAPH:
        graph.loc[parent, child] = 1.0

    def pool(path, classes):
        if path is None:
            return _bundled_digits(classes, image_size)
        images = _read_idx_images(path)
        return np.clip(zoom(images, (1, image_size / images.shape[1], image_size / images.shape[2]), order=1), 0, 1)

    sources = {"digit": pool(mnist_path, range(5)), "fashion": pool(fashion_path, range(5, 10))}
    factors = {
        "digit": [dict(angle=0.6 * a, scale=1.0 + 0.25 * b, shear=0.0) for a, b in zip(z11, z12)],
        "fashion": [dict(angle=0.0, scale=1.0 + 0.25 * b, shear=0.6 * a) for a, b in zip(z21, z22)],
    }
    modalities, noise = {}, {}
    for modality, images in sources.items():
        shared_picks = images[rng.integers(len(images), size=n)]
        modalities[modality], noise[modality] = [], []
        for k in range(measurements):
            eta = rng.uniform(-1, 1, size=(n, 2))
            picks = images[rng.integers(len(images), size=n)] if exemplars == "per_measurement" else shared_picks
            colour = _COLOURS[k % len(_COLOURS)]
            out = np.empty((n, image_size, image_size, 3), dtype=np.float32)
            for i in range(n):
                grey = _transform(picks[i], shift=1.5 * eta[i], **factors[modality][i])
                out[i] = grey[..., None] * colour
            out += pixel_noise * rng.normal(size=out.shape).astype(np.float32)
            modalities[modality].append(np.clip(out, 0, 1).reshape(n, -1))
            noise[modality].append(eta)
    latents = {"shared": np.zeros((n, 0)), "digit": np.column_stack([z11, z12]), "fashion": np.column_stack([z21, z22])}
    return MultimodalBenchmark(modalities=modalities, latents=latents, noise=noise, graph=graph)
