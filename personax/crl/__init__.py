"""Level II: causal representation learning (SPEC §4).

Public surface:

* :func:`fit` — trains the multimodal, multi-measurement causal VAE;
* :class:`FittedCRL` — ``.encode``, ``.graph``, ``.save_pretrained``;
* :func:`load_pretrained` — reloads a saved model (JSON + msgpack; no pickle);
* :class:`CRLConfig` — every model and training option;
* :mod:`personax.crl.diagnostics` — MCC, block R², SHD, seed stability, edge frequency.

Example:
    >>> from personax.crl import diagnostics
    >>> diagnostics.shd([[0, 1], [0, 0]], [[0, 0], [1, 0]])
    1
"""

from personax.crl import diagnostics
from personax.crl._fit import FittedCRL, fit, load_pretrained
from personax.crl._model import CRLConfig

__all__ = ["CRLConfig", "FittedCRL", "diagnostics", "fit", "load_pretrained"]
