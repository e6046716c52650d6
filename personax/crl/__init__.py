"""Level II: causal representation learning.

So far this package holds the identifiability diagnostics
(:mod:`personax.crl.diagnostics`); the model itself is issue 6's remaining work.
"""

from personax.crl import diagnostics

__all__ = ["diagnostics"]
