"""A seeded, invertible transform of embeddings, like the one the public release applied.

``z = f(x Q + c)`` with ``Q`` a random orthogonal matrix (Haar), ``c`` a random
shift and ``f`` an optional elementwise map ``f(u) = sinh(b * asinh(u))`` with a
per-dimension ``b`` in [0.8, 1.25] (strictly monotone, so invertible in closed
form). Whoever holds the seed can invert it; without it the coordinates are
scrambled. The rotation alone preserves Euclidean distances exactly; the
elementwise map preserves the ranks within each coordinate.

This is obfuscation, not anonymisation: nearest-neighbour structure survives by
design, so it does not stop re-identification by someone who holds other
embeddings of the same faces.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(5, 4))
    >>> t = PrivacyTransform.from_seed(4, seed=123)
    >>> np.allclose(t.inverse(t.transform(x)), x)
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.stats import ortho_group


@dataclasses.dataclass(frozen=True)
class PrivacyTransform:
    """The transform's parameters (keep them, or the seed, secret)."""

    rotation: np.ndarray
    shift: np.ndarray
    power: np.ndarray | None

    @classmethod
    def from_seed(cls, dim: int, seed: int, *, elementwise: bool = True) -> PrivacyTransform:
        rng = np.random.default_rng(seed)
        rotation = ortho_group.rvs(dim, random_state=rng) if dim > 1 else np.ones((1, 1))
        shift = rng.normal(0.0, 0.1, size=dim)
        power = np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=dim)) if elementwise else None
        return cls(rotation=rotation, shift=shift, power=power)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Applies the transform to the rows of ``x`` (NaN rows stay NaN)."""
        u = np.asarray(x, dtype=np.float64) @ self.rotation + self.shift
        if self.power is not None:
            u = np.sinh(self.power * np.arcsinh(u))
        return u.astype(np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float64)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Undoes :meth:`transform`."""
        u = np.asarray(z, dtype=np.float64)
        if self.power is not None:
            u = np.sinh(np.arcsinh(u) / self.power)
        return ((u - self.shift) @ self.rotation.T).astype(np.asarray(z).dtype)
