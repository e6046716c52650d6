"""A process keeps the jitted programs of recent configurations (personax.crl._fit._cached_program):
a later fit of the same model reuses them, and returns what a fit that built its own would."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from personax.crl import _fit, fit
from personax.crl._model import CausalMultimodalVAE, CRLConfig
from personax.data.synthetic import make_multimodal_numeric

OPTIONS = {"latent_dims": {"image": 2, "text": 2}, "shared_dim": 2, "max_epochs": 2, "hidden": (16,)}


def _same_params(a, b) -> bool:
    return jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b))


@pytest.mark.slow  # about 15 s: keeps the README's quick tests under their budget
def test_a_later_fit_reuses_the_programs_of_the_same_configuration_and_returns_the_same_model():
    bench = make_multimodal_numeric(200, seed=0)
    _fit._PROGRAMS.clear()
    first = fit(bench.modalities, seed=1, **OPTIONS)
    kept = dict(_fit._PROGRAMS)
    assert {kind for kind, *_ in kept} >= {"training", "init"}

    another_seed = fit(bench.modalities, seed=2, **OPTIONS)
    assert _fit._PROGRAMS.keys() == kept.keys()  # a seed picks keys, not programs
    assert all(_fit._PROGRAMS[key] is program for key, program in kept.items())
    again = fit(bench.modalities, seed=1, **OPTIONS)
    assert _same_params(again.params, first.params) and again.history == first.history

    _fit._PROGRAMS.clear()  # built afresh: the same model as with the kept programs
    fresh = fit(bench.modalities, seed=2, **OPTIONS)
    assert _same_params(fresh.params, another_seed.params) and fresh.history == another_seed.history
    np.testing.assert_array_equal(fresh.encode(bench.modalities)["shared"],
                                  another_seed.encode(bench.modalities)["shared"])

    # The measurements' own proposals for s, compiled as one program, are the module's, op by op.
    proposals = fresh.shared_proposals(bench.modalities, chunk=150)  # two chunks: two shapes of one program
    data = {k: jax.numpy.asarray(v) for k, v in fresh._standardise(bench.modalities).items()}
    eager = fresh.module.apply({"params": fresh.params}, data, method=CausalMultimodalVAE.view_means)
    assert proposals.keys() == eager.keys()
    for name, (mean, present) in proposals.items():
        np.testing.assert_allclose(mean, np.asarray(eager[name][0]), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(present, np.asarray(eager[name][2]) > 0)


def test_only_the_most_recently_used_programs_are_kept():
    _fit._PROGRAMS.clear()
    config = CRLConfig(shared_dim=1, latent_dims={"a": 1}, measurements={"a": 1}, input_dims={"a": 1})
    built = []
    for size in range(_fit._PROGRAMS_KEPT + 3):
        _fit._cached_program("test", config, lambda c, size=size: built.append(size) or size, size)
    assert len(_fit._PROGRAMS) == _fit._PROGRAMS_KEPT
    _fit._cached_program("test", config, lambda c: built.append("again"), 0)
    assert built[-1] == "again"  # size 0 had been dropped (least recently used): built again
    last = _fit._PROGRAMS_KEPT + 2
    assert _fit._cached_program("test", config, lambda c: built.append("no"), last) == last
    assert built[-1] == "again"  # still kept: not built again
    seeded = dataclasses.replace(config, seed=7)  # built from the seed-0 configuration
    assert _fit._cached_program("test", seeded, lambda c: c.seed, "seed") == 0
    other = dataclasses.replace(config, hidden=(8,))  # another model: its own program
    assert _fit._cached_program("test", other, lambda c: c.hidden, "seed") == (8,)
    _fit._PROGRAMS.clear()


@pytest.mark.slow  # about 15 s: keeps the README's quick tests under their budget
def test_restarts_initialise_from_the_single_key_program_with_the_values_of_a_vmapped_one():
    """A fit's restarts call the one-key initialisation per key (which the searches of s's axes and of
    the within-block orders use too, so it compiles once): bit for bit what vmapping it gives."""
    config = CRLConfig(shared_dim=2, latent_dims={"image": 2, "text": 3}, measurements={"image": 2, "text": 3},
                       input_dims={"image": 16, "text": 5}, image_shapes={"image": (4, 4, 1)}, ordinal={"text": 5},
                       sparse_decoder={"text": 0.1}, auxiliary_dim=2, hidden=(8,))
    keys = jax.random.split(jax.random.key(3), 3)
    stacked = _fit._restart_init(config)(keys)
    vmapped = jax.jit(jax.vmap(_fit._init_program(config)))(keys)
    assert jax.tree_util.tree_structure(stacked) == jax.tree_util.tree_structure(vmapped)
    assert _same_params(stacked, vmapped)
    first = _fit._init_program(config)(keys[0])
    assert _same_params(jax.tree_util.tree_map(lambda x: x[0], stacked), first)
