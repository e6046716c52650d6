"""Level II: causal representation learning.

Public surface:

* :func:`fit` — trains the multimodal, multi-measurement causal VAE;
* :class:`FittedCRL` — ``.encode``, ``.graph``, ``.save_pretrained``;
* :func:`load_pretrained` — reloads a saved model (JSON + msgpack; no pickle);
* :class:`CRLConfig` — every model and training option;
* :func:`orient_shared` — turns a fitted model's shared block to the axes its prior fits best,
  if the validation ELBO says so (``fit(..., orient_shared=True)`` does it after training);
* :func:`order_blocks` — puts each modality block of a fitted model in the within-block order its
  prior fits best, if the validation ELBO says so (``fit(..., order_search=True)``);
* :func:`edge_direction_evidence` — whether the data decide the direction of each learned edge
  inside a modality block (Vuong's test between the block's orders);
* :func:`fit_reference` — the original study's design with its defects, for comparison only;
* :mod:`personax.crl.diagnostics` — MCC, block R², SHD, seed stability, edge frequency.

Example:
    >>> from personax.crl import diagnostics
    >>> diagnostics.shd([[0, 1], [0, 0]], [[0, 0], [1, 0]])
    1
"""

from personax.crl import diagnostics
from personax.crl._fit import FittedCRL, fit, load_pretrained
from personax.crl._model import CRLConfig
from personax.crl._orient import orient_shared
from personax.crl._order import edge_direction_evidence, order_blocks
from personax.crl._reference import FittedReference, fit_reference

__all__ = ["CRLConfig", "FittedCRL", "FittedReference", "diagnostics", "edge_direction_evidence", "fit", "fit_reference", "load_pretrained",
           "order_blocks", "orient_shared"]
