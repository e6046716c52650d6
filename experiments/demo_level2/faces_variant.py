"""Run ``python -m personax.run`` with the synthetic cohort's faces drawn differently (an ablation).

Usage: ``python experiments/demo_level2/faces_variant.py VARIANT [hydra overrides...]``, which
``run.py --faces VARIANT`` calls once per seed. The planted latents, the person table and the
ground truth are unchanged; only what the two image measurements see changes:

* ``no_other_attributes``: the six face attributes that view no planted latent (Arched_Eyebrows,
  Pointy_Nose, Bushy_Eyebrows, Double_Chin, Receding_Hairline, Narrow_Eyes) are not drawn.
* ``plain``: as ``no_other_attributes``, and every face has the same background colour,
  position, hair palette draw and skin jitter. What still varies between faces: the geometry,
  the smile and mouth width (e, a), the two attributes that follow them, hair length (gender),
  grey hair (age) and skin tone (region).
* ``second_rendering``: the thumbnail (``image_pixels``) is taken from a second drawing of each
  face with its own background, position, hair colour draw and skin jitter, so that this
  nuisance differs between the two image measurements (per-measurement noise, as the model assumes).

This is a reproduction script, not part of the package: it replaces ``personax.data._faces.draw_face``
and the embeddings stage's ``thumbnails`` in this process, then runs the pipeline as usual.
"""

from __future__ import annotations

import re
import runpy
import sys

import numpy as np
from PIL import Image

VARIANTS = ("no_other_attributes", "plain", "second_rendering")
# The face attributes that are views of a planted latent (geometry thresholds, or e and a).
_VIEWS_OF_LATENTS = {"Oval_Face", "Big_Nose", "High_Cheekbones", "Big_Lips"}


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else ""
    if variant not in VARIANTS:
        raise SystemExit(f"usage: faces_variant.py {{{','.join(VARIANTS)}}} [hydra overrides...]")
    from personax.data import _faces
    from personax.embeddings import stage as embeddings_stage
    from personax.embeddings._pixels import grey_thumbnail

    draw_face = _faces.draw_face
    second: list[np.ndarray] = []  # the second drawing of face i, in the cohort's order
    second_rng = np.random.default_rng(20261202)

    def drawn(attributes, *args, rng, **kwargs):
        if variant in ("no_other_attributes", "plain"):
            attributes = {name: (value if name in _VIEWS_OF_LATENTS else -1) for name, value in attributes.items()}
        if variant == "plain":
            rng = np.random.default_rng(0)  # the same nuisance draws for every face
        if variant == "second_rendering":
            second.append(draw_face(attributes, *args, rng=second_rng, **kwargs))
        return draw_face(attributes, *args, rng=rng, **kwargs)

    _faces.draw_face = drawn
    if variant == "second_rendering":
        def second_thumbnails(paths, *, side, **_):
            # data/faces/celeb-000123.png is the cohort's face 123: its second drawing, not the file
            index = [int(re.search(r"(\d+)\.png$", str(path)).group(1)) for path in paths]
            return np.stack([grey_thumbnail(Image.fromarray(second[i]), side=side) for i in index]), [None] * len(paths)

        embeddings_stage.thumbnails = second_thumbnails
    sys.argv = ["personax.run", *sys.argv[2:]]
    runpy.run_module("personax.run", run_name="__main__")


if __name__ == "__main__":
    main()
