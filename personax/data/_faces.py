"""Procedurally drawn faces whose geometry follows the CelebA face attributes.

Each attribute changes one visible part of the drawing (a thicker brow, a longer
nose, a second chin line, ...); four parts can instead follow a continuous value
(``geometry``: face length, nose length, smile, mouth width), which the synthetic
cohort uses for its Level II latents. Gender changes hair length, age greys the hair
and region shifts the skin tone, so an image model can recover these factors.
Small random jitter (position, colours) stands in for per-photo noise.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from personax.data.schema import FACE_ATTRIBUTES

_SKIN_TONES = np.array(
    [[241, 194, 167], [224, 172, 105], [198, 134, 66], [141, 85, 36], [255, 219, 172], [232, 190, 150], [170, 110, 70]],
    dtype=float,
)
_HAIR = np.array([[40, 30, 25], [95, 60, 35], [200, 160, 90], [20, 20, 20]], dtype=float)
_GREY = np.array([170, 170, 170], dtype=float)


# Continuous geometry (in standard units): each value moves one part of the drawing
# smoothly. Without it, the binary attribute gives +-1 (the look of the attribute on/off).
GEOMETRY = ("face_length", "nose_length", "smile", "mouth_width")
_SUPERSAMPLE = 4  # drawn at 4x and box-filtered down, so sub-pixel changes show as grey levels


def draw_face(
    attributes: dict[str, int],
    *,
    male: bool,
    age_years: float,
    region: int,
    rng: np.random.Generator,
    size: int = 64,
    geometry: dict[str, float] | None = None,
) -> np.ndarray:
    """Draws one face; returns a ``size x size x 3`` uint8 array.

    Args:
        attributes: Face attribute name -> -1 or +1 (all of ``FACE_ATTRIBUTES``).
        male: Short hair if true, long hair otherwise.
        age_years: Greys the hair from about 45 years on.
        region: Index of the region (shifts the skin tone).
        rng: Source of the per-photo jitter.
        size: Output side in pixels (drawn at 256, anti-aliased down).
        geometry: Optional continuous values (standard units, about -2..2) of
            ``GEOMETRY``: face length (long and narrow vs round), nose length,
            smile (mouth curvature; negative frowns) and mouth width. A value given
            here replaces the look of the matching binary attribute (Oval_Face,
            Big_Nose, High_Cheekbones' smile).

    Example:
        >>> import numpy as np
        >>> face = draw_face({a: 1 for a in FACE_ATTRIBUTES}, male=True, age_years=40,
        ...                  region=0, rng=np.random.default_rng(0), geometry={"smile": 0.5})
        >>> face.shape, face.dtype
        ((64, 64, 3), dtype('uint8'))
    """
    on = {name: attributes.get(name, -1) == 1 for name in FACE_ATTRIBUTES}
    shape = {"face_length": 1.0 if on["Oval_Face"] else -1.0, "nose_length": 1.0 if on["Big_Nose"] else -1.0,
             "smile": 1.0 if on["High_Cheekbones"] else -1.0, "mouth_width": 0.0}
    unknown = set(geometry or {}) - set(GEOMETRY)
    if unknown:
        raise ValueError(f"unknown face geometry {sorted(unknown)}; known: {GEOMETRY}")
    shape.update({k: float(np.clip(v, -3.0, 3.0)) for k, v in (geometry or {}).items()})
    k = _SUPERSAMPLE

    def box(*values: float) -> list[float]:  # 64-pixel coordinates -> the supersampled canvas
        return [k * v for v in values]

    background = tuple(int(v) for v in rng.integers(190, 250, size=3))
    image = Image.new("RGB", (64 * k, 64 * k), background)
    draw = ImageDraw.Draw(image)
    dx, dy = (int(v) for v in rng.integers(-1, 2, size=2))
    cx, cy = 32 + dx, 34 + dy

    skin = _SKIN_TONES[region % len(_SKIN_TONES)] + rng.normal(0, 8, size=3)
    skin_rgb = tuple(int(v) for v in np.clip(skin, 0, 255))
    grey = float(np.clip((age_years - 45.0) / 30.0, 0.0, 1.0))
    hair = (1 - grey) * _HAIR[rng.integers(len(_HAIR))] + grey * _GREY
    hair_rgb = tuple(int(v) for v in np.clip(hair + rng.normal(0, 6, size=3), 0, 255))

    # A binary attribute that thresholds a continuous value adds a step, so both show.
    oval = 1.0 if on["Oval_Face"] else 0.0
    half_w = 13.5 - 1.5 * shape["face_length"] - oval
    half_h = 17.5 + 1.5 * shape["face_length"] + oval
    if not male:  # long hair behind the face
        draw.rectangle(box(cx - half_w - 4, cy - half_h, cx + half_w + 4, cy + half_h + 8), fill=hair_rgb)
    if on["Double_Chin"]:
        draw.ellipse(box(cx - half_w + 3, cy + half_h - 6, cx + half_w - 3, cy + half_h + 5), fill=skin_rgb,
                     outline=(120, 80, 60), width=k)
    draw.ellipse(box(cx - half_w, cy - half_h, cx + half_w, cy + half_h), fill=skin_rgb)
    # Hair cap: a receding hairline leaves more forehead.
    hairline = cy - half_h + (3 if on["Receding_Hairline"] else 8)
    draw.chord(box(cx - half_w - 1, cy - half_h - 4, cx + half_w + 1, 2 * hairline - (cy - half_h - 4)), 180, 360,
               fill=hair_rgb)

    eye_y = cy - 3
    brow_y = eye_y - 5
    brow_width = 4 if on["Bushy_Eyebrows"] else 1
    brow_rgb = tuple(int(0.6 * v) for v in hair_rgb)  # brows darker than hair, visible on any skin
    for side in (-1, 1):
        ex = cx + side * 6
        if on["Arched_Eyebrows"]:
            draw.arc(box(ex - 4, brow_y - 3, ex + 4, brow_y + 7), 200, 340, fill=brow_rgb, width=k * brow_width)
        else:
            draw.line(box(ex - 4, brow_y + 1, ex + 4, brow_y + 1), fill=brow_rgb, width=k * brow_width)
        eye_h = 1 if on["Narrow_Eyes"] else 3
        draw.ellipse(box(ex - 3, eye_y - eye_h, ex + 3, eye_y + eye_h), fill=(255, 255, 255), outline=(40, 40, 40),
                     width=k)
        draw.ellipse(box(ex - 0.6, eye_y - 0.6, ex + 0.6, eye_y + 0.6), fill=(30, 30, 60))
        if on["High_Cheekbones"]:
            draw.ellipse(box(ex - 3, eye_y + 5, ex + 3, eye_y + 8), fill=(230, 140, 140))

    nose_len = 6 + 1.5 * min(shape["nose_length"], 2.0) + (1.0 if on["Big_Nose"] else 0.0)
    nose_w = 3 + 0.7 * shape["nose_length"]
    nose_top, nose_tip = eye_y + 1, eye_y + 1 + nose_len
    if on["Pointy_Nose"]:
        # a dark filled triangle of fixed width: pointy or not stays plain at any nose length
        draw.polygon([tuple(box(cx, nose_top)), tuple(box(cx - 4, nose_tip)), tuple(box(cx + 4, nose_tip))],
                     fill=(120, 70, 50))
    else:
        draw.line(box(cx, nose_top, cx, nose_tip - 1), fill=(110, 70, 50), width=k)
        draw.ellipse(box(cx - nose_w, nose_tip - 2, cx + nose_w, nose_tip + 1), outline=(110, 70, 50), width=k)

    # The mouth: a curve whose middle sags by the smile (a negative smile frowns), drawn
    # thick for Big_Lips.
    mouth_y = cy + 11  # fixed, so the smile's curve is not confounded with the nose's length
    lip = (180, 60, 70)
    thickness = 3.5 if on["Big_Lips"] else 1.5
    half_mouth = 6 + 1.2 * min(max(shape["mouth_width"], -2.5), 2.5)
    xs = np.linspace(-half_mouth, half_mouth, 25)
    curve = [tuple(box(cx + x, mouth_y + 2.5 * shape["smile"] * (1 - (x / half_mouth) ** 2))) for x in xs]
    draw.line(curve, fill=lip, width=max(1, int(round(k * thickness))), joint="curve")

    image = image.resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)
