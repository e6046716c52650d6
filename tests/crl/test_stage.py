"""The crl stage on a tiny synthetic run: every output, a reloadable model, recovery scores, PC graph."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import personax
from personax.crl.stage import pc_on_latents, restart_agreement_record
from personax.pipeline import run_pipeline


@pytest.mark.slow  # ~35 s CPU; the crl stage also runs end to end in tests/report (full_run)
def test_crl_stage_writes_model_latents_graphs_and_recovery(compose_cfg, run_path):
    cfg = compose_cfg(["stages=[ingest,traits,embeddings,crl]", "data.n=150", "crl.fit.max_epochs=3",
                       "crl.fit.hidden=[16]", "crl.latent_dims.image=4", "crl.latent_dims.text=3",
                       "crl.fit.orient_epochs=2", "+crl.fit.orient_steps=20", "crl.auxiliary=[group,gender]",
                       "crl.fit.shared_experts_excluded=[image_embedding]", "crl.fit.restarts=2",
                       "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false"])
    run_pipeline(cfg, run_path)
    crl = run_path / "crl"
    for name in ("graph.png", "pc_graph.png", "training_curve.png", "mcc.png", "metrics.json", "recovery.json"):
        assert (crl / name).is_file(), name
    latents = pd.read_parquet(crl / "latents.parquet")
    assert len(latents) == 150 and set(latents.split) == {"train", "val", "test"}
    assert [c for c in latents.columns if c not in ("person_id", "split")][:3] == ["s1", "s2", "image1"]
    model = personax.load_pretrained(crl / "model")
    assert model.config.latent_dims == {"image": 4, "text": 3}
    assert model.config.auxiliary_dim >= 2  # group and gender, one-hot, condition the prior
    assert list(model.config.shared_experts_excluded) == ["image_0"]  # named as crl.modalities lists it
    recovery = json.loads((crl / "recovery.json").read_text())
    assert set(recovery) == {"shared", "image", "text"} and 0 <= recovery["text"]["mcc"] <= 1
    for name, block in recovery.items():  # beside every MCC: the baselines on the same split and a verdict
        # the image modality's two measurements (embedding, thumbnail) differ in width: no mean to take
        methods = ("pca", "fastica", "cca_ica") if name == "image" else ("pca", "fastica", "rater_mean", "cca_ica")
        assert {f"baseline_mcc_{m}" for m in methods} <= set(block)
        assert block["verdict"] in ("recovered", "not recovered") and block["reason"]
        # where the block's information is: this block, all learned latents, the measurements
        assert {"r2_own_block", "r2_all_latents", "r2_measurements"} <= set(block)
        assert (block["diagnosis"] is None) == (block["verdict"] == "recovered")
    metrics = json.loads((crl / "metrics.json").read_text())
    # the text modality is one measurement per rater in the trait table; score 0 is missing, masked
    assert metrics["measurements"]["text"] == [f"trait_scores:trait_{r}_?" for r in ("lexicon", "sima", "simb", "simc")]
    assert metrics["left_out_missing_measurement"] < 15 and sum(metrics["missing_entries"].values()) > 0
    assert metrics["stopped"] in ("epoch cap", "early stopping on validation")
    # each measurement's agreement with the others' proposals for s, by name, the excluded one included
    assert set(metrics["shared_proposal_agreement"]) == {name for names in metrics["measurements"].values() for name in names}
    # the stage trains to convergence (conf/crl/default.yaml): no plateau in 3 epochs, so no cut yet
    assert model.config.lr_schedule == "plateau" and metrics["learning_rate_cuts"] == []
    # score columns, and the sparse decoder kept the text block in use: no warning but the restarts' (3 epochs
    # leave their axes apart) ...
    assert [w for w in metrics["warnings"] if "restarts turn" not in w and "restarts do not find" not in w] == []
    # ... whose agreement, block by block, is recorded for the 2 restarts (crl.fit.restarts)
    agreement = metrics["restart_agreement"]
    assert agreement["restarts"] == 2 and set(agreement["blocks"]) == {"shared", "image", "text"}
    assert sum("restarts turn" in w or "restarts do not find the same content" in w for w in metrics["warnings"]) == sum(
        b["axes"] < agreement["axes_floor"] or b["content"] < agreement["content_floor"]
        for b in agreement["blocks"].values())
    assert metrics["best_val_elbo"] == model.best_val_elbo
    assert "mixture_weights" not in metrics  # only a learned mixture (crl.fit.shared_posterior) has weights to report
    # the stage searched the shared block's axes (its default): the decision, without the turn's matrix
    assert metrics["orientation"]["decision"] in ("kept", "rejected") and "matrix" not in metrics["orientation"]
    assert model.orientation["decision"] == metrics["orientation"]["decision"]
    # "stopped" and "fit_epochs" are the fit's own, before the training on after the search (its 2 epochs)
    trained_on = metrics["orientation"].get("epochs", 0)
    assert metrics["fit_epochs"] == 3 and metrics["epochs"] == 3 + trained_on and metrics["stopped"] == "epoch cap"
    assert isinstance(metrics["test_elbo"], float) and np.isfinite(metrics["test_elbo"])  # computed on a second thread
    graph = json.loads((crl / "graph.json").read_text())
    weights = np.array(graph["adjacency"])
    assert np.allclose(weights[:, :2], 0) and np.allclose(weights[6:, 2:6], 0)  # nothing into s; text not into image
    assert np.allclose(np.linalg.matrix_power((weights != 0).astype(float), len(weights)), 0)  # acyclic


def test_pc_respects_the_background_knowledge():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(2000, 1))
    a = s + 0.5 * rng.normal(size=(2000, 1))
    b = a + 0.5 * rng.normal(size=(2000, 1))
    graph = pc_on_latents(np.hstack([s, a, b]), ["s1", "a", "b"], 1, alpha=0.01, test="fisherz")
    assert graph.loc["a", "s1"] == 0 and graph.loc["s1", "a"] == 1  # nothing points into the shared latent
    assert graph.loc["s1", "b"] == 0 and graph.loc["b", "s1"] == 0  # s independent of b given a
    assert graph.loc["a", "b"] == 1


def test_shared_experts_excluded_must_name_a_measurement_of_the_run():
    from personax.crl.stage import measurement_keys_named

    names = {"image": ["image_embedding", "image_pixels"], "text": ["trait_scores:trait_sima_?"]}
    assert measurement_keys_named(["image_pixels", "trait_scores:trait_sima_?"], names) == ["image_1", "text_0"]
    with pytest.raises(ValueError, match=r"names \['image_0'\], which this run does not measure; its measurements"):
        measurement_keys_named(["image_0"], names)


def test_a_proposal_for_s_that_shows_nothing_the_others_agree_on_gets_a_warning():
    """metrics.json "shared_proposal_agreement", by measurement name, and the warning for a proposal
    below the floor, while the others agree, that is not left out already (a stub model: the numbers
    are the diagnostic's)."""
    from types import SimpleNamespace

    from personax.crl.stage import shared_proposal_agreement

    rng = np.random.default_rng(0)
    s = rng.normal(size=(400, 2))
    proposals = {"image_0": (rng.normal(size=s.shape), np.ones(400, bool)),
                 "image_1": (s + 0.3 * rng.normal(size=s.shape), np.ones(400, bool)),
                 "text_0": (s + 0.3 * rng.normal(size=s.shape), np.ones(400, bool))}
    names = {"image": ["image_embedding", "image_pixels"], "text": ["trait_scores:trait_sima_?"]}

    def stub(excluded):
        config = SimpleNamespace(latent_dims={"image": 2, "text": 3}, measurements={"image": 2, "text": 1},
                                 shared_experts_excluded=excluded)
        return SimpleNamespace(config=config, splits={"train": np.arange(300), "val": np.arange(300, 400)},
                               shared_proposals=lambda data: proposals)

    agreement, warnings = shared_proposal_agreement(stub(()), {}, names)
    assert set(agreement) == {"image_embedding", "image_pixels", "trait_scores:trait_sima_?"}
    assert agreement["image_embedding"] < 0.05 < 0.3 < min(agreement["image_pixels"], agreement["trait_scores:trait_sima_?"])
    (warning,) = warnings
    assert warning.startswith("the proposal for s of image_embedding (-0.00) predicts almost none") and "others 0.44 to 0.49" in warning
    assert "crl.fit.shared_experts_excluded=[image_embedding]" in warning
    assert shared_proposal_agreement(stub(("image_0",)), {}, names)[1] == []  # left out already: no warning
    proposals["image_1"] = (rng.normal(size=s.shape), np.ones(400, bool))  # now no two proposals agree
    assert shared_proposal_agreement(stub(()), {}, names)[1] == []  # no consensus, so none stands out


def test_a_block_whose_restarts_turn_its_axes_gets_a_warning_naming_the_block():
    """metrics.json restart_agreement: each block's agreement, and a warning only for a block whose
    restarts' axes agree below the floor (the shared block's says that the search turns it after)."""
    rng = np.random.default_rng(7)
    z = {"shared": rng.normal(size=(300, 2)), "image": rng.normal(size=(300, 2)), "text": rng.normal(size=(300, 2))}
    turn = np.array([[np.cos(0.7), np.sin(0.7)], [-np.sin(0.7), np.cos(0.7)]])
    restarts = [z, {**z, "shared": z["shared"] @ turn, "text": -z["text"][:, ::-1]}]
    model = SimpleNamespace(restart_params=[{}, {}], chosen_restart=1, orientation={"decision": "kept"},
                            splits={"train": np.arange(200), "test": np.arange(200, 300)},
                            encode_restarts=lambda data: restarts)
    record, warnings = restart_agreement_record(model, data={})
    assert record["restarts"] == 2 and record["returned_restart"] == 1 and set(record["blocks"]) == set(z)
    assert record["content_floor"] == 0.9 and record["test_rows"] == 100
    assert record["blocks"]["text"]["axes"] == pytest.approx(1.0)  # the same axes, reordered and flipped
    assert len(warnings) == 1 and "shared block's axes" in warnings[0] and "search of the shared axes" in warnings[0]
    # without the search of s's axes (crl.fit.orient_shared=false) the warning ends where the sentence does
    _, unsearched = restart_agreement_record(SimpleNamespace(**{**vars(model), "orientation": {}}), data={})
    assert len(unsearched) == 1 and unsearched[0].endswith("another initialisation returns other axes")
    # a block whose restarts hold different content is not called turned: its content is what differs
    restarts[1] = {**restarts[1], "image": rng.normal(size=(300, 2))}
    record, warnings = restart_agreement_record(model, data={})
    assert record["blocks"]["image"]["content"] < 0.1
    (image,) = [w for w in warnings if "image" in w]
    assert image.startswith("the 2 restarts do not find the same content in the image block") and "on 100 test rows" in image


@pytest.mark.parametrize("recovery, expected", [
    ({"all": {"shd_learned_graph": 4, "shd_strong_graph": 1, "graph_verdict": "not recovered"}},
     "planted graph: not recovered (SHD 4, strong edges only 1)"),
    ({"all": {"shd_learned_graph": 0}}, "planted graph: recovered (SHD 0)"),
    (None, "no planted graph to check it against: its edges are hypotheses"),
    ({"shared": {"mcc": 0.7}}, "not scored: its blocks' sizes are not the planted ones; its edges are hypotheses"),
])
def test_the_learned_graph_figure_s_title_line_says_whether_it_is_the_planted_graph(recovery, expected):
    from personax.crl.stage import graph_verdict_line

    assert graph_verdict_line(recovery) == expected


def test_the_mcc_figure_s_caption_gives_each_block_s_verdict_beside_its_best_baseline():
    from personax.crl.stage import recovery_caption

    caption = recovery_caption({
        "shared": {"mcc": 0.4238, "best_baseline": "rater_mean", "best_baseline_mcc": 0.826, "verdict": "not recovered"},
        "text": {"mcc": 0.91, "best_baseline": "pca", "best_baseline_mcc": 0.5, "verdict": "recovered"},
        "image": {"mcc": 0.3},  # scored before verdicts existed: no line
        "all": {"mcc": 0.5, "shd_learned_graph": 3}})
    assert caption.splitlines() == ["shared: MCC 0.424, best baseline rater_mean 0.826: not recovered",
                                    "text: MCC 0.910, best baseline pca 0.500: recovered"]


def test_the_learned_graph_dashes_every_edge_whose_direction_is_not_decided_and_says_why():
    """graph.json ``directions`` -> the dashed edges and the line under the graph: undetermined, reverse
    preferred and not tested are dashed; the line names what the dashes mean in this graph."""
    from personax.crl.stage import undecided_edges, undecided_note

    def record(*verdicts):
        return {"directions": [{"parent": f"a{k}", "child": f"b{k}", "verdict": v} for k, v in enumerate(verdicts)]}

    tested = record("decided", "undetermined", "reverse preferred")
    assert undecided_edges(tested) == [("a1", "b1"), ("a2", "b2")]
    assert undecided_note(tested) == "dashed: the data do not decide this edge's direction"
    assert undecided_note(record("not tested", "not tested")) == "dashed: direction not tested (too few validation rows)"
    assert undecided_note(record("undetermined", "not tested")) == \
        "dashed: the data do not decide this edge's direction, or it was not tested"
    assert undecided_edges(record("decided")) == [] and undecided_edges({}) == []
