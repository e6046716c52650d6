"""personax: multimodal trait analysis and causal representation learning.

The pipeline runs as ``python -m personax.run`` (a Hydra app over ``conf/``); the
stages are also usable as a library:

Example:
    >>> from personax.data.synthetic import make_cohort
    >>> cohort = make_cohort(50, kind="athlete", seed=0, images=False)
    >>> len(cohort.table)
    50
"""

__version__ = "0.1.0"

from personax._compilation_cache import enable_compilation_cache  # noqa: E402  (jax loads on first use)

__all__ = ["enable_compilation_cache", "load_pretrained"]


def load_pretrained(directory):
    """Loads a CRL model saved with ``save_pretrained`` (see :func:`personax.crl.load_pretrained`)."""
    from personax.crl import load_pretrained as _load

    return _load(directory)
