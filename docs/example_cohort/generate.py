"""Regenerates the example cohort in this folder: ``bios.csv`` and ``faces/<person_id>.png``.

Everything here is synthetic: people drawn by :func:`personax.data.synthetic.make_cohort`
(invented names, template-written bios, procedurally drawn faces), exported the way a user's
own collection might look: its own column names (``Height``, ``Occupation``), labels instead of
codes, no face attributes and no trait scores. Run from the repository root:

    python docs/example_cohort/generate.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from personax.data.synthetic import make_cohort

HERE = Path(__file__).resolve().parent
N_PEOPLE = 80
SEED = 20261201


def main() -> None:
    cohort = make_cohort(N_PEOPLE, kind="celeb", seed=SEED, images=True, image_size=64, simulated_raters=[])
    table = cohort.table
    occupations = {code: label for label, code in cohort.label_maps["group"].items()}
    genders = {code: label for label, code in cohort.label_maps["gender"].items()}
    ids = [f"ex{i + 1:03d}" for i in range(len(table))]
    names = [f"Example Person {i + 1:03d}" for i in range(len(table))]
    texts = []
    for bio, invented, name in zip(table["bio"], table["name"], names):
        # The generator's invented names become obviously synthetic ones in the bios too.
        texts.append(bio.replace(invented, name).replace(invented.split()[0], name))
    bios = pd.DataFrame({
        "person_id": ids,
        "name": names,
        "Occupation": table["group"].map(occupations),
        "gender": table["gender"].map(genders),
        "birth_year": table["birth_year"], "birth_month": table["birth_month"], "birth_day": table["birth_day"],
        "latitude": table["latitude"].round(3), "longitude": table["longitude"].round(3),
        "Height": table["height_cm"].round(1), "weight_kg": table["weight_kg"].round(1),
        "bio": texts,
    })
    bios.to_csv(HERE / "bios.csv", index=False)
    faces = HERE / "faces"
    faces.mkdir(exist_ok=True)
    for stale in faces.glob("*.png"):
        stale.unlink()
    for pid, face in zip(ids, cohort.faces):
        Image.fromarray(face).save(faces / f"{pid}.png", optimize=True)
    print(f"wrote {len(bios)} people to {HERE / 'bios.csv'} and {len(ids)} faces to {faces}")


if __name__ == "__main__":
    main()
