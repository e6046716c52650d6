"""A CRL fit that dies resumes from its checkpoint and returns the model an uninterrupted fit returns."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import jax
import numpy as np
import pytest

import personax
from personax import artifacts as A
from personax.crl import _checkpoint, fit
from personax.data.synthetic import make_multimodal_numeric
from personax.pipeline import run_pipeline

OPTIONS = dict(latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=6, hidden=(8,), restarts=2)


class _Killed(Exception):
    """Stands in for a kill: raised right after a checkpoint reached the disk."""


def _dies_after(epochs: int, monkeypatch, *, warm_start: bool = False):
    """Checkpoints after every epoch, and the process "dies" once the one after ``epochs`` is saved
    (with ``warm_start``: the one of a warm start's training on, which saves beside the fit's)."""
    real = _checkpoint.save

    def save(path, state, *, fingerprint, beside=False):
        real(path, state, fingerprint=fingerprint, beside=beside)
        if state.epochs_done == epochs and beside == warm_start:
            raise _Killed

    monkeypatch.setattr(_checkpoint, "CHECKPOINT_EVERY_S", 0.0)
    monkeypatch.setattr(_checkpoint, "save", save)


def _same_params(a, b) -> bool:
    return jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b))


@pytest.fixture(scope="module")
def bench():
    return make_multimodal_numeric(300, seed=0)


# The plateau schedule carries more from epoch to epoch (each restart's rate and cuts): killed after
# epoch 4 it has made one cut and waited one epoch at the second rate; it stops after epoch 7.
PLATEAU = dict(OPTIONS, max_epochs=8, lr_schedule="plateau", patience=2, min_delta=1e9)


@pytest.mark.slow  # ~25 s CPU per schedule: four small fits
@pytest.mark.parametrize("options, killed_after, epochs", [(OPTIONS, 3, 6), (PLATEAU, 4, 7)],
                         ids=["cosine", "plateau"])
def test_a_resumed_fit_returns_the_uninterrupted_fit(bench, tmp_path, monkeypatch, options, killed_after, epochs):
    uninterrupted = fit(bench.modalities, **options)
    assert len(uninterrupted.history) == epochs
    path = tmp_path / "fit.msgpack"
    with monkeypatch.context() as patch:
        _dies_after(killed_after, patch)
        with pytest.raises(_Killed):
            fit(bench.modalities, checkpoint=path, **options)
    assert path.is_file()
    resumed = fit(bench.modalities, checkpoint=path, **options)
    assert resumed.resumed_at_epoch == killed_after and uninterrupted.resumed_at_epoch is None
    # every restart's state, keys, early-stopping counters and rate came back: the same model, bit for bit
    assert _same_params(resumed.params, uninterrupted.params)
    assert resumed.history == uninterrupted.history and resumed.best_val_elbo == uninterrupted.best_val_elbo
    assert resumed.stopped == uninterrupted.stopped and resumed.fit_seconds > 0
    # the checkpoint now holds the finished training: another crash (in a later step) skips it
    again = fit(bench.modalities, checkpoint=path, **options)
    assert again.resumed_at_epoch == epochs and _same_params(again.params, uninterrupted.params)


def _tiny_state(value: float = 1.0) -> _checkpoint.TrainingState:
    params = {"layer": {"kernel": np.full((2, 3), value, np.float32)}}
    return _checkpoint.TrainingState(
        epochs_done=1, params=params, opt_state=(params, np.zeros(2, np.int32)), keys=jax.random.split(jax.random.key(0)),
        best_params=params, best=np.array([-3.0, -4.0]), patience_reference=np.array([-3.0, -4.0]),
        waited=np.array([0, 1]), lr_scale=np.array([1.0, 0.3]), cuts=np.array([0, 1]),
        train_loss=np.ones((1, 2)), val_elbo=np.array([[-3.0, -4.0]]),
        learning_rate=np.array([[2e-3, 6e-4]]), stopped=None,
        elapsed_s=2.5)


def test_a_checkpoint_of_other_data_or_settings_is_not_resumed(tmp_path, caplog):
    from personax.crl import CRLConfig

    config, data = _tiny_config_and_data()
    stamp = _checkpoint.fingerprint(config, data, restarts=2)
    assert stamp == _checkpoint.fingerprint(config, {k: dict(v) for k, v in data.items()}, restarts=2)
    others = [_checkpoint.fingerprint(config, {**data, "val": {"image_0": np.zeros((2, 3), np.float32)}}, restarts=2),
              _checkpoint.fingerprint(CRLConfig(**{**config.__dict__, "max_epochs": 4}), data, restarts=2),
              _checkpoint.fingerprint(config, data, restarts=3)]
    assert stamp not in others and len(set(others)) == 3

    path = tmp_path / "fit.msgpack"
    _checkpoint.save(path, _tiny_state(), fingerprint=stamp)
    loaded = _checkpoint.load(path, fingerprint=stamp, template=_tiny_state(0.0))
    assert loaded.epochs_done == 1 and loaded.elapsed_s == 2.5 and loaded.stopped is None
    assert _same_params(loaded.params, _tiny_state().params) and loaded.waited.tolist() == [0, 1]
    assert loaded.lr_scale.tolist() == [1.0, 0.3] and loaded.cuts.tolist() == [0, 1]
    assert np.array_equal(jax.random.key_data(loaded.keys), jax.random.key_data(_tiny_state().keys))
    with caplog.at_level(logging.INFO, logger="personax.crl._checkpoint"):
        assert _checkpoint.load(path, fingerprint=others[0], template=_tiny_state()) is None
    assert "written for another configuration, other data or another warm start" in caplog.text
    wider = {"layer": {"kernel": np.zeros((2, 4), np.float32)}}  # a model of another shape, same fingerprint
    with caplog.at_level(logging.WARNING, logger="personax.crl._checkpoint"):
        assert _checkpoint.load(path, fingerprint=stamp, template=dataclasses.replace(_tiny_state(), params=wider)) is None
    assert "has shape (2, 3), expected (2, 4)" in caplog.text
    path.write_bytes(b"not a checkpoint")  # e.g. a disk that filled up: nothing is used, training starts afresh
    with caplog.at_level(logging.WARNING, logger="personax.crl._checkpoint"):
        assert _checkpoint.load(path, fingerprint=stamp, template=_tiny_state()) is None
    assert "cannot be read" in caplog.text
    assert _checkpoint.load(tmp_path / "absent.msgpack", fingerprint=stamp, template=_tiny_state()) is None


def test_a_warm_start_keeps_its_state_beside_the_fits(tmp_path):
    path = tmp_path / "fit.msgpack"
    fitted, warm, other = _tiny_state(1.0), _tiny_state(2.0), _tiny_state(3.0)
    _checkpoint.save(path, fitted, fingerprint="fit")
    _checkpoint.save(path, warm, fingerprint="warm", beside=True)
    _checkpoint.save(path, dataclasses.replace(warm, epochs_done=2), fingerprint="warm", beside=True)  # replaced
    for stamp, state, epochs in (("fit", fitted, 1), ("warm", warm, 2)):
        loaded = _checkpoint.load(path, fingerprint=stamp, template=_tiny_state(0.0))
        assert _same_params(loaded.params, state.params) and loaded.epochs_done == epochs
    _checkpoint.save(path, other, fingerprint="another fit")  # a fit from a random start: the file is its own
    assert _checkpoint.load(path, fingerprint="fit", template=_tiny_state()) is None
    assert _checkpoint.load(path, fingerprint="warm", template=_tiny_state()) is None
    assert _same_params(_checkpoint.load(path, fingerprint="another fit", template=_tiny_state()).params, other.params)
    params = {"w": np.zeros(3, np.float32)}  # a warm start's parameters are part of its fingerprint
    config, data = _tiny_config_and_data()
    stamps = {_checkpoint.fingerprint(config, data, 2, initial_params=p)
              for p in (None, params, {"w": np.ones(3, np.float32)}, [params, params])}
    assert len(stamps) == 4
    assert _checkpoint.fingerprint(config, data, 2, initial_params={"w": np.zeros(3, np.float32)}) in stamps


def _tiny_config_and_data():
    from personax.crl import CRLConfig

    config = CRLConfig(shared_dim=2, latent_dims={"image": 2}, measurements={"image": 1}, input_dims={"image": 3})
    return config, {"train": {"image_0": np.zeros((4, 3), np.float32)}, "val": {"image_0": np.ones((2, 3), np.float32)}}


@pytest.mark.slow  # ~40 s CPU: three small fits, each with its training on
def test_a_killed_training_on_after_the_search_resumes(bench, tmp_path, monkeypatch):
    from personax.crl import _orient

    # the search turns the shared block by 40 degrees, whatever the prior says: the training on always runs
    monkeypatch.setattr(_orient, "search_shared_axes", lambda config, *a, **k: (
        _orient._givens(config.shared_dim, 0, 1, 40.0), [{"axes": [0, 1], "chosen": 40.0}]))
    options = dict(OPTIONS, restarts=1, orient_shared=True, orient_epochs=5, orient_steps=10)
    uninterrupted = fit(bench.modalities, **options)
    assert uninterrupted.orientation["epochs"] == 5 and uninterrupted.orientation["trained_on_resumed_at_epoch"] is None
    path = tmp_path / "fit.msgpack"
    with monkeypatch.context() as patch:
        _dies_after(3, patch, warm_start=True)
        with pytest.raises(_Killed):
            fit(bench.modalities, checkpoint=path, **options)
    resumed = fit(bench.modalities, checkpoint=path, **options)
    # the fit came from its ended state, the training on from the state it was killed in
    assert resumed.resumed_at_epoch == 6 and resumed.orientation["trained_on_resumed_at_epoch"] == 3
    assert _same_params(resumed.params, uninterrupted.params)
    assert resumed.history == uninterrupted.history and resumed.best_val_elbo == uninterrupted.best_val_elbo
    assert resumed.orientation["trained_on_val_elbo"] == uninterrupted.orientation["trained_on_val_elbo"]


@pytest.mark.slow  # ~90 s CPU: the upstream stages once, then three crl stages
def test_the_crl_stage_resumes_a_killed_fit(compose_cfg, tmp_path, monkeypatch):
    overrides = ["data.n=150", "crl.fit.max_epochs=5", "crl.fit.hidden=[16]", "crl.fit.orient_epochs=2",
                 "+crl.fit.orient_steps=20", "traits.raters.embedding.enabled=false",
                 "traits.aggregate.bayes.enabled=false"]
    upstream, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    run_pipeline(compose_cfg(["stages=[ingest,traits,embeddings]", *overrides]), upstream)
    shutil.copytree(upstream, killed)
    crl_only = compose_cfg(["stages=[crl]", *overrides])
    run_pipeline(crl_only, upstream)

    with monkeypatch.context() as patch:
        _dies_after(2, patch)
        with pytest.raises(_Killed):
            run_pipeline(crl_only, killed)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["stages"]["crl"]["status"] == "failed"
    checkpoint = killed / A.CRL_FIT_CHECKPOINT.relpath()
    assert checkpoint.is_file()
    # a kill -9 in the middle of a save leaves the atomic write's temporary file
    leftover = checkpoint.with_name(f".{checkpoint.stem}.tmp-99999{checkpoint.suffix}")
    leftover.write_bytes(b"half a checkpoint")

    assert run_pipeline(crl_only, killed)["crl"] == "done"
    metrics = json.loads((killed / A.CRL_METRICS.relpath()).read_text())
    assert metrics["resumed_at_epoch"] == 2
    assert json.loads((upstream / A.CRL_METRICS.relpath()).read_text())["resumed_at_epoch"] is None
    assert not checkpoint.exists() and not leftover.exists()  # the stage finished: nothing to resume or left behind
    resumed, uninterrupted = (personax.load_pretrained(d / A.CRL_MODEL.relpath()) for d in (killed, upstream))
    assert _same_params(resumed.params, uninterrupted.params)  # the shared axes' search ran again, the same
    assert resumed.orientation["decision"] == uninterrupted.orientation["decision"]
