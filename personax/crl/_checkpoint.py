"""Crash-safe checkpoints of a CRL fit's training loop: a killed fit resumes where it was.

:func:`personax.crl.fit` with ``checkpoint=path`` writes its whole training state (the
parameters and optimiser state of every restart, the random keys, the best parameters so far,
the early-stopping counters and the curves) to ``path`` every ``CHECKPOINT_EVERY_S`` seconds
and once more when training ends. A later ``fit`` with the same path, configuration and data
starts from that state instead of from scratch. Each epoch is a deterministic function of
that state, so on the same machine the resumed fit returns the same model as one that was
never interrupted.

The training on after a fit's searches (``orient_shared``, ``order_search``: warm starts,
``initial_params``) checkpoints too, into the same file: the file holds one state per training
loop, keyed by its fingerprint. A fit from a random start writes its own state alone (whatever
the file held before belongs to another fit); a warm start adds its state beside the others. So
after a crash in the training on, the rerun takes the ended fit from the file, runs the search
again (to the same turn, on the same machine) and resumes the training on.

A state is used only when its fingerprint matches: the model configuration, the training and
validation arrays, the number of restarts and of devices, the versions of JAX and personax, and
for a warm start the parameters it started from. Anything else is ignored with a log line (and
overwritten by the next save), never half-used. Files are written atomically and in msgpack
through ``flax.serialization``, the format of saved models; nothing is ever unpickled.

Example:
    >>> import tempfile, pathlib
    >>> from personax.data.synthetic import make_multimodal_numeric
    >>> from personax.crl import fit
    >>> bench = make_multimodal_numeric(200, seed=0)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fit.msgpack"
    >>> options = dict(latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=3, hidden=(8,))
    >>> first = fit(bench.modalities, checkpoint=path, **options)
    >>> path.exists()  # the state at the end of training: a crash after it skips the training
    True
    >>> again = fit(bench.modalities, checkpoint=path, **options)  # resumes: nothing left to train
    >>> again.best_val_elbo == first.best_val_elbo
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from personax.artifacts import atomic_path

log = logging.getLogger(__name__)

# Seconds of training between two checkpoints: a crash loses at most this much (plus one epoch).
CHECKPOINT_EVERY_S = 30.0
_FORMAT = "personax-crl-fit-checkpoint-v3"  # v3: one state per training loop


@dataclasses.dataclass
class TrainingState:
    """Everything a fit's training loop needs to go on from the end of an epoch.

    Attributes:
        epochs_done: Epochs trained so far.
        params: Parameters of every restart (stacked on a leading axis).
        opt_state: The optimiser's state, likewise stacked.
        keys: Each restart's random key (typed JAX keys).
        best_params: Each restart's parameters at its best validation ELBO.
        best: Each restart's best validation ELBO.
        patience_reference: The ELBO that last beat its predecessor by ``min_delta``.
        waited: Epochs since then.
        lr_scale: Each restart's learning rate as a fraction of the configured one (below 1
            after the cuts of the "plateau" schedule; 1 under the cosine schedule).
        cuts: Each restart's learning-rate cuts so far.
        train_loss: (epochs_done, restarts) training losses.
        val_elbo: (epochs_done, restarts) validation ELBOs.
        learning_rate: (epochs_done, restarts) learning rates at each epoch's first step.
        stopped: Why training ended, or None while it goes on.
        elapsed_s: Seconds spent in the fit before this state was saved.
    """

    epochs_done: int
    params: Any
    opt_state: Any
    keys: jax.Array
    best_params: Any
    best: np.ndarray
    patience_reference: np.ndarray
    waited: np.ndarray
    lr_scale: np.ndarray
    cuts: np.ndarray
    train_loss: np.ndarray
    val_elbo: np.ndarray
    learning_rate: np.ndarray
    stopped: str | None
    elapsed_s: float


def fingerprint(config: Any, arrays: Mapping[str, Mapping[str, Any]], restarts: int, *,
                initial_params: Any = None) -> str:
    """What a checkpoint must match to be resumed: the configuration, the data and the setting.

    Args:
        config: The model's :class:`~personax.crl.CRLConfig` (a dataclass).
        arrays: split name -> measurement key -> array (the standardised training and
            validation data the loop reads).
        restarts: Number of restarts trained side by side.
        initial_params: A warm start's parameters (any tree of arrays), or None for a random start.
    """
    from personax import __version__

    digest = hashlib.sha256()
    setting = {"config": dataclasses.asdict(config), "restarts": int(restarts), "devices": jax.device_count(),
               "jax": jax.__version__, "personax": __version__}
    digest.update(json.dumps(setting, sort_keys=True, default=str).encode())
    for split in sorted(arrays):
        for key in sorted(arrays[split]):
            _update(digest, f"{split}/{key}", arrays[split][key])
    if initial_params is not None:
        for where, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(initial_params)):
            _update(digest, "initial" + jax.tree_util.keystr(where), leaf)
    return digest.hexdigest()


def _update(digest: Any, name: str, array: Any) -> None:
    value = np.ascontiguousarray(np.asarray(array))
    digest.update(f"{name}/{value.dtype}/{value.shape}".encode())
    digest.update(value.tobytes())


def save(path: str | os.PathLike[str], state: TrainingState, *, fingerprint: str, beside: bool = False) -> None:
    """Writes ``state`` to ``path`` atomically (a crash mid-write keeps the previous checkpoint).

    Args:
        path: The checkpoint file.
        state: The training loop's state.
        fingerprint: What the state was computed from (:func:`fingerprint`); it replaces any
            state of the same fingerprint.
        beside: Keep the file's other states (a warm start's training on, whose fit's ended state
            must survive it); by default the file holds this state alone.
    """
    trees = {"params": state.params, "opt_state": state.opt_state, "best_params": state.best_params,
             "keys": jax.random.key_data(state.keys)}
    payload = {
        "epochs_done": int(state.epochs_done),
        "stopped": "" if state.stopped is None else state.stopped, "elapsed_s": float(state.elapsed_s),
        "best": np.asarray(state.best), "patience_reference": np.asarray(state.patience_reference),
        "waited": np.asarray(state.waited), "lr_scale": np.asarray(state.lr_scale),
        "cuts": np.asarray(state.cuts), "train_loss": np.asarray(state.train_loss),
        "val_elbo": np.asarray(state.val_elbo), "learning_rate": np.asarray(state.learning_rate),
        "trees": serialization.to_state_dict(jax.device_get(trees)),
    }
    states = _states_to_keep(Path(path)) if beside else {}
    states[fingerprint] = payload
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialization.msgpack_serialize({"format": _FORMAT, "states": states}))


def _read_states(path: Path) -> dict[str, Any]:
    """The states in a checkpoint file (raises when it is not one of this format)."""
    file = serialization.msgpack_restore(path.read_bytes())
    if not isinstance(file, dict) or file.get("format") != _FORMAT:
        found = file.get("format") if isinstance(file, dict) else type(file).__name__
        raise ValueError(f"format {found!r}, expected {_FORMAT!r}")
    return dict(file["states"])


def _states_to_keep(path: Path) -> dict[str, Any]:
    """The file's states, or none when there is no file or it cannot be read."""
    try:
        return _read_states(path) if path.is_file() else {}
    except Exception:  # an unreadable file holds nothing to keep
        return {}


def load(path: str | os.PathLike[str], *, fingerprint: str, template: TrainingState) -> TrainingState | None:
    """The state saved at ``path``, or None when there is none to resume from.

    Args:
        path: The checkpoint file.
        fingerprint: What the checkpoint must match (:func:`fingerprint`).
        template: A state of the same structure (the fresh start; its trees may hold
            ``jax.ShapeDtypeStruct`` leaves): it gives the parameter and optimiser trees
            their structure and shapes.

    Returns:
        The saved state, or None when the file does not exist, cannot be read, or was
        written for another configuration or other data (each case is logged).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = _read_states(path).get(fingerprint)
        if payload is None:
            log.info("crl: ignoring the fit checkpoint %s: it was written for another configuration, other data "
                     "or another warm start", path)
            return None
        expected = {"params": template.params, "opt_state": template.opt_state,
                    "best_params": template.best_params, "keys": jax.random.key_data(template.keys)}
        trees = serialization.from_state_dict(jax.device_get(expected), payload["trees"])
        _check_shapes(expected, trees)
        return TrainingState(
            epochs_done=int(payload["epochs_done"]), params=trees["params"], opt_state=trees["opt_state"],
            keys=jax.random.wrap_key_data(np.asarray(trees["keys"])), best_params=trees["best_params"],
            best=np.asarray(payload["best"]), patience_reference=np.asarray(payload["patience_reference"]),
            waited=np.asarray(payload["waited"]), lr_scale=np.asarray(payload["lr_scale"]),
            cuts=np.asarray(payload["cuts"]), train_loss=np.asarray(payload["train_loss"]),
            val_elbo=np.asarray(payload["val_elbo"]), learning_rate=np.asarray(payload["learning_rate"]),
            stopped=payload["stopped"] or None,
            elapsed_s=float(payload["elapsed_s"]))
    except Exception as error:  # msgpack and flax raise several types; each means "not a usable checkpoint"
        log.warning("crl: ignoring the fit checkpoint %s, which cannot be read (%s): training starts afresh",
                    path, error)
        return None


def _check_shapes(expected: Any, restored: Any) -> None:
    """Raises ValueError when a restored leaf's shape differs from the template's."""
    for (where, want), got in zip(jax.tree_util.tree_leaves_with_path(expected), jax.tree_util.tree_leaves(restored)):
        if tuple(want.shape) != np.shape(got):
            raise ValueError(f"{jax.tree_util.keystr(where)} has shape {np.shape(got)}, expected {tuple(want.shape)}")
