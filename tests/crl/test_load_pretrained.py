"""Issue 13 item 11: ``load_pretrained`` checks a model at load time (digest, shapes, finite weights, scales)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from flax import serialization

from personax.crl import fit, load_pretrained
from personax.data.synthetic import make_multimodal_numeric


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    bench = make_multimodal_numeric(200, seed=0)
    model = fit(bench.modalities, latent_dims={"image": 1, "text": 1}, shared_dim=1, seed=0, max_epochs=1, hidden=(8,))
    directory = model.save_pretrained(tmp_path_factory.mktemp("crl") / "model")
    return directory, bench


@pytest.fixture
def copy(saved, tmp_path):
    directory, _ = saved
    return shutil.copytree(directory, tmp_path / "model")


def _edit_config(directory, edit):
    payload = json.loads((directory / "config.json").read_text())
    edit(payload)
    (directory / "config.json").write_text(json.dumps(payload))


def _rewrite_weights(directory, change):
    """Changes the weights and records the new digest (a consistent but broken model)."""
    import hashlib

    model = load_pretrained(directory)
    params = change(model.params)
    blob = serialization.to_bytes(params)
    (directory / "weights.msgpack").write_bytes(blob)
    _edit_config(directory, lambda p: p.update(weights_sha256=hashlib.sha256(blob).hexdigest()))


def test_intact_model_loads_and_encodes_finite_latents(saved):
    directory, bench = saved
    model = load_pretrained(directory)
    latents = model.encode(bench.modalities)
    assert all(np.isfinite(v).all() for v in latents.values())
    with pytest.raises(ValueError, match="restarts >= 2"):  # restarts are not saved with the model
        model.encode_restarts(bench.modalities)


def test_truncated_weights_file_error_names_the_file(copy):
    blob = (copy / "weights.msgpack").read_bytes()
    (copy / "weights.msgpack").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"weights\.msgpack: SHA-256 .* does not match"):
        load_pretrained(copy)


def test_missing_digest_fails_at_load(copy):
    _edit_config(copy, lambda p: p.pop("weights_sha256"))
    with pytest.raises(ValueError, match=r"config\.json records no weights_sha256"):
        load_pretrained(copy)


def test_truncated_weights_with_a_matching_digest_name_the_file(copy):
    import hashlib

    blob = (copy / "weights.msgpack").read_bytes()[:-40]
    (copy / "weights.msgpack").write_bytes(blob)
    _edit_config(copy, lambda p: p.update(weights_sha256=hashlib.sha256(blob).hexdigest()))
    with pytest.raises(ValueError, match=r"weights\.msgpack: not the weights of this model"):
        load_pretrained(copy)


def test_changed_shape_fails_at_load_not_at_encode(copy):
    _edit_config(copy, lambda p: p["config"].update(hidden=[9]))
    with pytest.raises(ValueError, match=r"weights\.msgpack: parameter .* has shape \[.*\] in the weights file but the "
                                         r"config implies"):
        load_pretrained(copy)


def test_nan_weights_fail_at_load(copy):
    def poison(params):
        params = dict(params)
        params["log_sigma_u"] = np.full_like(np.asarray(params["log_sigma_u"]), np.nan)
        return params

    _rewrite_weights(copy, poison)
    with pytest.raises(ValueError, match=r"parameter \['log_sigma_u'\] has non-finite values"):
        load_pretrained(copy)


def test_zero_scale_fails_at_load(copy):
    def zero(payload):
        mean, scale = payload["standardization"]["text_0"]
        payload["standardization"]["text_0"] = [mean, [0.0] * len(scale)]

    _edit_config(copy, zero)
    with pytest.raises(ValueError, match=r"config\.json: standardization\['text_0'\] .* scale that is not positive"):
        load_pretrained(copy)
