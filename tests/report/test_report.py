"""The report stage: sections from every stage, escaping, secret redaction, notes for missing stages, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from personax.pipeline import run_pipeline
from personax.report import build_report, redact
from personax.report._collect import REFIT_COST
from personax.report._markdown import escape
from tests.report.conftest import HOSTILE, HOSTILE_ID, raw_config

SECTIONS = ["Summary", "Data", "Rejected rows", "Embeddings", "Trait reliability", "Level I: independence tests",
            "Level II: CRL metrics", "Latent graphs", "Training curves", "Provenance"]


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_full_run_report_has_every_section_and_figure(full_run):
    html = (full_run / "report/report.html").read_text()
    markdown = (full_run / "report/report.md").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html and f"## {title}\n" in markdown, title
    assert "did not run" not in html and "could not be built" not in html
    figures = sorted(p.name for p in (full_run / "report/figures").glob("*.png"))
    assert {"traits_reliability.png", "level1_small_multiples.png", "crl_graph.png",
            "crl_pc_graph.png", "crl_training_curve.png"} <= set(figures)
    assert not any(name.startswith("level1_heatmap") for name in figures)  # one figure for every test
    # Self-contained: every figure inlined, nothing loaded from elsewhere.
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    # The Markdown twin links the copied PNGs, relative to report/.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(Path(link).name for link in links) == figures
    assert all((full_run / "report" / link).is_file() for link in links)
    # The data summary, the Level I summary, CRL metrics and provenance carry the run's facts.
    assert "| persons | 60 |" in markdown
    assert "| fisherz |" in markdown and "Dependent pairs per feature" in markdown
    assert "planted dependent traits" in markdown  # the synthetic cohort's truth, per feature
    metrics = json.loads((full_run / "crl/metrics.json").read_text())
    assert f"| epochs | {metrics['epochs']} |" in markdown
    for stage in ("ingest", "traits", "independence", "embeddings", "crl"):
        assert re.search(rf"\| {stage} \| done \|", markdown), stage
    assert "| crl.seed | 0 |" in markdown and re.search(r"\| numpy \| \d", markdown)
    assert re.search(r"\| git commit \| ([0-9a-f]{40}|unknown)", markdown)


def test_report_stage_records_what_it_read_and_is_skipped_when_nothing_changed(full_run):
    record = _manifest(full_run)["stages"]["report"]
    assert record["status"] == "done" and record["summary"]["figures"] >= 6
    inputs = {i["path"] for i in record["inputs"]}
    assert {"data/persons.parquet", "data/rejected.parquet", "traits/reliability.json", "level1/pvalues.parquet",
            "crl/metrics.json", "crl/graph.png", "embeddings/info.json"} <= inputs
    # every other stage's artifact that exists, shown or not, so any change makes the report rerun
    assert {"traits/scores.parquet", "embeddings/image.npy", "crl/latents.parquet", "data/faces"} <= inputs
    outputs = {o["path"] for o in record["outputs"]}
    assert {"report/report.html", "report/report.md", "report/figures/crl_graph.png"} <= outputs


def test_hostile_values_are_escaped_in_both_reports(hostile_bios, run_path):
    run_pipeline(raw_config(hostile_bios), run_path)
    html = (run_path / "report/report.html").read_text()
    markdown = (run_path / "report/report.md").read_text()
    rejected = pd.read_parquet(run_path / "data/rejected.parquet")
    assert rejected["value"].str.contains(HOSTILE, regex=False).any() and HOSTILE_ID in set(rejected["person_id"])
    for text in (html, markdown):
        assert HOSTILE not in text and "<img src=x" not in text and "<b>actor" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=alert(2)&gt;" in text and "&lt;b&gt;actor&lt;/b&gt;" in text
    # The page's only script is its own image check.
    assert html.count("<script") == 1 and "window.addEventListener" in html and "<script src" not in html
    assert "2 row(s) rejected" in markdown


def test_missing_and_failed_stages_get_a_one_line_note(hostile_bios, run_path):
    run_pipeline(raw_config(hostile_bios), run_path)
    markdown = (run_path / "report/report.md").read_text()
    for stage, path in (("embeddings", "embeddings/info.json"), ("traits", "traits/reliability.json"),
                        ("independence", "level1/pvalues.parquet"), ("crl", "crl/metrics.json")):
        assert f"> *Stage {stage} did not run in this run directory (no {path}).*" in markdown
    assert "> *Stage ingest" not in markdown
    manifest = _manifest(run_path)
    manifest["stages"]["crl"] = {"stage": "crl", "status": "failed", "error": "ValueError: only 3 people"}
    (run_path / "manifest.json").write_text(json.dumps(manifest))
    build_report(run_path)
    markdown = (run_path / "report/report.md").read_text()
    assert "Stage crl failed (ValueError: only 3 people), so crl/metrics.json is missing." in markdown
    assert "| crl | failed |" in markdown


def test_secrets_in_the_config_are_redacted(hostile_bios, run_path):
    config = raw_config(hostile_bios)
    OmegaConf.set_struct(config, False)
    config.traits.raters["remote"] = {"kind": "openai", "api_key": "hunter2-plain", "base_url":
                                      "https://user:pa55word@llm.example/v1", "headers": {"Authorization":
                                      "Bearer tok-123456"}, "api_key_env": "REMOTE_API_KEY"}
    config["my_token"] = "t0k3n-value"
    config["db"] = {"password": "s3cret", "note": "sk-abcdefghijklmnopqrstu"}
    build_report(run_path, config)
    for name in ("report.html", "report.md"):
        text = (run_path / "report" / name).read_text()
        for secret in ("hunter2-plain", "pa55word", "tok-123456", "t0k3n-value", "s3cret", "sk-abcdefghij",
                       "REMOTE_API_KEY"):
            assert secret not in text, (name, secret)
        shown = "https://user:<redacted>@llm.example/v1"  # the Markdown shows the config in a code block
        assert (shown if name == "report.md" else shown.replace("<", "&lt;").replace(">", "&gt;")) in text
    assert redact({"a": {"secret_x": 1, "b": [{"token": "x"}]}}) == {"a": {"secret_x": "<redacted>",
                                                                          "b": [{"token": "<redacted>"}]}}


def test_report_reruns_when_an_earlier_stage_reruns(hostile_bios, run_path):
    config = raw_config(hostile_bios)
    assert run_pipeline(config, run_path) == {"ingest": "done", "report": "done"}
    assert run_pipeline(config, run_path) == {"ingest": "skipped", "report": "skipped"}
    config.force = ["ingest"]
    assert run_pipeline(config, run_path) == {"ingest": "done", "report": "done"}
    config.force = False
    config.report.title = "Another title"
    assert run_pipeline(config, run_path) == {"ingest": "skipped", "report": "done"}
    assert "<title>Another title</title>" in (run_path / "report/report.html").read_text()


def test_report_options_and_a_plain_config(hostile_bios, run_path, tmp_path):
    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    written = build_report(run_path, OmegaConf.create({"name": "x"}), {"title": "T & <U>", "max_rejected_rows": 1})
    html = written["html"].read_text()
    assert "<h1>T &amp; &lt;U&gt;</h1>" in html and "The first 1 of 2" in html
    assert written["markdown"].read_text().startswith("# T &amp; &lt;U&gt;\n")


@pytest.mark.parametrize("shd", [3, 0])
def test_the_summary_judges_the_learned_graph_against_the_planted_one(hostile_bios, run_path, shd):
    """Blocks can be recovered while their graph is not: the summary says which, and warns."""
    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    RunDir(run_path, stage="crl").write(A.CRL_RECOVERY, {
        "digit": {"mcc": 0.962, "best_baseline": "pca", "best_baseline_mcc": 0.5, "verdict": "recovered",
                  "diagnosis": None},
        "all": {"mcc": 0.962, "shd_learned_graph": shd, "shd_pc_graph": 5, "planted_edges": 3, "learned_edges": 5,
                "graph_verdict": "recovered" if shd == 0 else "not recovered",
                # runs from 2026-12-04 on: the SHD of the strong edges only (older run directories lack it)
                **({"shd_strong_graph": 1, "strong_threshold": 0.2} if shd else {})}})
    written = build_report(run_path, OmegaConf.create({"name": "x"}), {})
    summary = written["markdown"].read_text().split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    assert "CRL block all" not in summary  # "all" is not a block with a verdict of its own
    strong = "; its edges with a standardised effect above 0.2 only: SHD 1" if shd else ""
    assert (f"CRL, all latents: MCC 0.962 against the planted latents; learned graph SHD {shd} against the planted "
            f"graph (3 planted edge(s), 5 learned){strong}; PC on the learned latents: SHD 5: graph "
            f"{'not recovered' if shd else 'recovered'}.") in summary  # the verdict: the model's own graph
    assert ("The learned latent graph is not the planted one (SHD 3, each missing, extra or reversed edge counting "
            "1): read its edges as hypotheses, although every block is recovered." in summary) == bool(shd)
    assert "CRL blocks not recovered" not in summary  # the blocks are, and the warning does not say otherwise


def test_the_recovery_table_says_which_mcc_is_spearmans(hostile_bios, run_path):
    """A block's Spearman MCC stands in the table beside the baselines' Pearson ones: a note says
    to compare it only with the best baseline's Spearman MCC; without it (older runs), no note."""
    from personax import artifacts as A
    from personax.pipeline import RunDir
    from personax.report._collect import SPEARMAN_NOTE

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    RunDir(run_path, stage="crl").write(A.CRL_METRICS, {"epochs": 3})
    block = {"mcc": 0.797, "best_baseline": "rater_mean", "best_baseline_mcc": 0.828, "verdict": "not recovered"}
    RunDir(run_path, stage="crl").write(A.CRL_RECOVERY, {"text": block})
    older = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    assert "| 0.797 |" in older and SPEARMAN_NOTE not in older
    RunDir(run_path, stage="crl").write(A.CRL_RECOVERY, {"text": {**block, "mcc_spearman": 0.845,
                                                                   "best_baseline_mcc_spearman": 0.866}})
    level2 = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    table = level2.split("### Recovery of the planted latent blocks (test split)", 1)[1]
    assert table.index("| 0.845 |") < table.index(SPEARMAN_NOTE)


@pytest.mark.parametrize("orientation, sentence", [
    ({"decision": "kept", "trained_on_val_elbo": {"given": -98.62, "turned": -98.19}},
     "turned after the fit to the axes the causal prior fits best; the turned model, trained on, scored validation "
     "ELBO -98.19 against -98.62"),
    ({"decision": "kept", "trained_on_val_elbo": {"given": -1.0, "turned": -2.0}, "reason": "r",
      "rounds": [{"decision": "kept", "trained_on_val_elbo": {"given": -5.0, "turned": -4.0}},
                 {"decision": "rejected", "reason": "r", "trained_on_val_elbo": {"given": -1.0, "turned": -2.0}}]},
     "turned after the fit to the axes the causal prior fits best (1 of 2 searches kept a turn); the turned model, "
     "trained on, scored validation ELBO -4.0 against -5.0"),
    ({"decision": "kept", "tolerance": 0.5, "trained_on_val_elbo": {"given": 90.88, "turned": 90.84}},
     "turned after the fit to the axes the causal prior fits best; the turned model, trained on, scored validation "
     "ELBO 90.84 against 90.88 for the same training without the turn; lower, but by less than the tolerance of 0.5 "
     "nats per person"),
    # no epoch of the training on beat where the given model started: its score is that start's
    ({"decision": "kept", "trained_on_val_elbo": {"given": -98.62, "turned": -98.19}, "best_at_start": ["given"]},
     "turned after the fit to the axes the causal prior fits best; the turned model, trained on, scored validation "
     "ELBO -98.19 against -98.62 (where it started: no epoch of the training on beat it) for the same training "
     "without the turn"),
    ({"decision": "rejected", "reason": "the prior fits the given axes best"},
     "kept as fitted after the search (the prior fits the given axes best)"),
    # the turned candidate never improved past its start: the report says its score carries the prior's refit
    ({"decision": "rejected", "reason": "r", "best_at_start": ["given", "turned"]},
     "kept as fitted after the search (r). The turned candidate was scored where it started, as no epoch of the "
     "training on improved it, and this run (made before candidates' priors were refitted by the ELBO) refitted "
     "its prior to the latents' posterior means"),
    ({"decision": "kept", "trained_on_val_elbo": {"given": -1.0, "turned": -0.5}, "best_at_start": ["turned"]},
     "turned after the fit to the axes the causal prior fits best; the turned model, trained on, scored validation "
     "ELBO -0.5 (where it started: no epoch of the training on beat it) against -1.0"),  # kept: no caveat
    ({"decision": "skipped", "reason": "fewer than two shared latents"},
     "not searched (fewer than two shared latents)"),
])
def test_the_crl_section_says_what_the_search_of_the_shared_axes_did(hostile_bios, run_path, orientation, sentence):
    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    RunDir(run_path, stage="crl").write(A.CRL_METRICS, {"model": "personax", "people": 10, "orientation": orientation})
    markdown = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    section = markdown.split("## Level II: CRL metrics\n", 1)[1].split("\n## ", 1)[0]
    assert "Shared block's axes: " + sentence in section


def test_only_a_rejection_whose_candidate_was_never_trained_past_its_start_carries_the_refit_warning():
    from personax.report._collect import refit_caveat

    assert "refitted its prior to the latents' posterior means" in refit_caveat(
        {"decision": "rejected", "best_at_start": ["given", "turned"]}, "turned")
    assert refit_caveat({"decision": "rejected", "best_at_start": ["given"]}, "turned") == ""  # trained past it
    assert refit_caveat({"decision": "kept", "best_at_start": ["turned"]}, "turned") == ""  # kept: nothing to doubt
    assert refit_caveat({"decision": "rejected", "reason": "the prior fits the given axes best"}, "turned") == ""
    # a run whose candidate's prior was refitted by the ELBO (this version's records say so): no handicap to warn of
    assert refit_caveat({"decision": "rejected", "best_at_start": ["given", "turned"],
                         "prior_refit": "by the ELBO on posterior draws"}, "turned") == ""


@pytest.mark.parametrize("reordering, sentence", [
    ({"decision": "kept", "trained_on_val_elbo": {"given": 42.70, "reordered": 42.81},
      "returned_orders": {"image": ["image2", "image1"], "text": ["text1", "text2"]}},
     "Within-block orders: changed after the fit to the orders the causal prior fits best (image: image2 < image1; "
     "text: text1 < text2); the reordered model, trained on, scored validation ELBO 42.81 against 42.7 for the same "
     "training without the change (metrics.json reordering)."),
    ({"decision": "kept", "trained_on_val_elbo": {"given": 42.70, "reordered": 42.81}, "best_at_start": ["reordered"],
      "returned_orders": {"image": ["image2", "image1"]}},
     "Within-block orders: changed after the fit to the orders the causal prior fits best (image: image2 < image1); "
     "the reordered model, trained on, scored validation ELBO 42.81 (where it started: no epoch of the training on "
     "beat it) against 42.7 for the same training without the change (metrics.json reordering)."),
    ({"decision": "rejected", "reason": "the prior fits the given orders best"},
     "Within-block orders: kept as fitted after the search (the prior fits the given orders best)."),
    ({"decision": "rejected", "reason": "r", "best_at_start": ["reordered"]},
     "Within-block orders: kept as fitted after the search (r). The reordered candidate was scored where it "
     "started, as no epoch of the training on improved it, and this run (made before candidates' priors were "
     "refitted by the ELBO) refitted its prior to the latents' posterior means: on the demo such a refit alone, "
     f"with nothing turned, lowered the validation ELBO by {REFIT_COST} nats per person, so this rejection may "
     "reflect the refit rather than the change; rerun the crl stage (docs/crl.md, \"The candidate's prior "
     "refit\")."),
    ({"decision": "skipped", "reason": "no causal prior"}, "Within-block orders: not searched (no causal prior)."),
    (None, ""),
])
def test_the_crl_section_says_what_the_search_of_the_block_orders_did(reordering, sentence):
    from personax.report._collect import reordering_sentence

    assert reordering_sentence(reordering) == sentence



@pytest.mark.parametrize("metrics, warning", [
    # the fit ran to its cap; the training on after the search stopped early: still not converged
    ({"stopped": "epoch cap", "epochs": 340, "fit_epochs": 300},
     "CRL training stopped at the epoch cap (300 epochs), not by early stopping: the model may not have converged "
     "(the 40 epochs of training on after the search of the shared axes do not change that)."),
    ({"stopped": "epoch cap", "epochs": 300, "fit_epochs": 300},
     "CRL training stopped at the epoch cap (300 epochs), not by early stopping: the model may not have converged."),
    # both searches trained on: the warning names both
    ({"stopped": "epoch cap", "epochs": 420, "fit_epochs": 300,
      "orientation": {"decision": "kept", "trained_on_val_elbo": {}}, "reordering": {"decision": "rejected",
                                                                                      "trained_on_val_elbo": {}}},
     "(the 120 epochs of training on after the search of the shared axes and the within-block orders do not change "
     "that)."),
    # the fit stopped early; the training on ran its 60 epochs to their cap, as it is meant to: no warning
    ({"stopped": "early stopping on validation", "epochs": 180, "fit_epochs": 120}, None),
])
def test_the_epoch_cap_warning_reads_the_fit_s_own_stop(hostile_bios, run_path, metrics, warning):
    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    RunDir(run_path, stage="crl").write(A.CRL_METRICS, {"model": "personax", "people": 10, **metrics})
    summary = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text().split(
        "## Summary\n", 1)[1].split("\n## ", 1)[0]
    if warning is None:
        assert "epoch cap" not in summary
    else:
        assert warning in summary


def _training_curves_section(bios: Path, run_path: Path, metrics: dict) -> str:
    """The report's "Training curves" section for a run whose crl stage wrote ``metrics`` and a curve."""
    import matplotlib.pyplot as plt

    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(bios, "[ingest]"), run_path)
    crl = RunDir(run_path, stage="crl")
    crl.write(A.CRL_METRICS, {"model": "personax", "people": 10, **metrics})
    figure = plt.figure()
    crl.write(A.CRL_CURVE, figure)
    plt.close(figure)
    return build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text().split(
        "## Training curves\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("resumed", [None, 120])
def test_the_training_curves_say_when_the_fit_resumed_from_a_checkpoint(hostile_bios, run_path, resumed):
    section = _training_curves_section(hostile_bios, run_path, {"resumed_at_epoch": resumed})
    said = "The fit resumed from the checkpoint an interrupted run left after epoch 120" in section
    assert said == (resumed is not None)


@pytest.mark.parametrize("record, resumed", [("orientation", 7), ("reordering", 7), ("orientation", None)])
def test_the_training_curves_say_when_the_training_on_resumed(hostile_bios, run_path, record, resumed):
    section = _training_curves_section(hostile_bios, run_path, {record: {"decision": "kept",
                                                                         "trained_on_resumed_at_epoch": resumed}})
    said = "resumed from the checkpoint an interrupted run left after its epoch 7" in section
    assert said == (resumed is not None)
    assert ("shared axes" in section) == (said and record == "orientation")


@pytest.mark.parametrize("metrics, expected", [
    ({"stopped": "epoch cap", "fit_epochs": 300}, "The fit ended after 300 epochs: epoch cap."),
    ({"stopped": "early stopping on validation", "fit_epochs": 291, "learning_rate_cuts": [190, 241]},
     "The fit ended after 291 epochs: early stopping on validation (training went on until the validation ELBO "
     "stopped rising at the lowest learning rate); the learning rate was cut at epochs 190, 241."),
    ({"stopped": "epoch cap", "fit_epochs": 1000, "learning_rate_cuts": [600]},
     "The fit ended after 1000 epochs: epoch cap; the learning rate was cut at epoch 600."),
    ({}, None)])
def test_the_training_curves_say_how_the_fit_ended(hostile_bios, run_path, metrics, expected):
    section = _training_curves_section(hostile_bios, run_path, metrics)
    if expected is None:
        assert "The fit ended" not in section
    else:
        assert expected in section


@pytest.mark.parametrize("graph, expected", [
    # the edge with the smaller |weight| has the larger effect: it is named first, with both numbers
    ({"nodes": ["s1", "t1", "t2"], "adjacency": [[0, 0.04, 0.3], [0, 0, 0], [0, 0, 0]],
      "effects": [[0, 0.9, 0.2], [0, 0, 0], [0, 0, 0]], "strong_edges": 1, "strong_threshold": 0.2},
     "Learned latent graph: 2 edge(s) over 3 latents (1 with a standardised effect above 0.2); largest standardised "
     "effects (sd of the edge's term over the child's sd): s1 → t1 (0.90; weight +0.040), s1 → t2 (0.20; weight "
     "+0.300)."),
    # an edge into a collapsed (constant) child latent has no effect (null): named first, as undefined
    ({"nodes": ["s1", "t1", "t2"], "adjacency": [[0, 0.04, 0.3], [0, 0, 0.1], [0, 0, 0]],
      "effects": [[0, None, 0.2], [0, 0, 0.5], [0, 0, 0]]},
     "Learned latent graph: 3 edge(s) over 3 latents; largest standardised effects (sd of the edge's term over the "
     "child's sd): s1 → t1 (undefined, the child latent is constant; weight +0.040), t1 → t2 (0.50; weight +0.100), "
     "s1 → t2 (0.20; weight +0.300)."),
    # a run directory written before graph.json held the effects: ranked by |weight|, as then (markdown escapes |)
    ({"nodes": ["s1", "t1", "t2"], "adjacency": [[0, 0.04, -0.3], [0, 0, 0], [0, 0, 0]]},
     "Learned latent graph: 2 edge(s) over 3 latents; largest \\|weight\\|: s1 → t2 (-0.30), s1 → t1 (+0.04)."),
])
def test_the_learned_graph_s_edges_are_ranked_by_their_standardised_effect(hostile_bios, run_path, graph, expected):
    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    RunDir(run_path, stage="crl").write(A.CRL_GRAPH, graph)
    assert expected in build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()


def test_markdown_escape():
    assert escape("a|b\nc") == "a\\|b c"
    assert escape("person_id [x](y) `z`") == "person_id \\[x\\](y) \\`z\\`"


def test_summary_box_says_what_ran_what_was_found_and_what_is_unreliable(full_run):
    html = (full_run / "report/report.html").read_text()
    markdown = (full_run / "report/report.md").read_text()
    # The summary is the first section, before Data.
    assert html.index('<section id="summary"') < html.index('<section id="data"')
    summary = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    for title in ("What ran", "What was found", "What is unreliable"):
        assert f"**{title}**" in summary
    assert "- Data: 60 people from the synthetic source (celeb) with planted ground truth" in summary
    table = pd.read_parquet(full_run / "level1/pvalues.parquet")
    ran = table[table.status == "ok"]
    pairs = ran[ran.q_value < 0.05][["feature", "trait"]].drop_duplicates()
    assert f"- Level I: {len(pairs)} of {len(ran[['feature', 'trait']].drop_duplicates())} (feature, trait column)" \
        in summary
    metrics = json.loads((full_run / "crl/metrics.json").read_text())
    recovery = json.loads((full_run / "crl/recovery.json").read_text())
    for block, values in recovery.items():
        assert f"CRL block {block}: MCC {values['mcc']:.3f}" in summary and values["verdict"] in summary
        if "supervised_readout_mcc" in values:  # the reference beside the baselines, for every planted block
            assert f"a linear readout fitted to the truth reaches {values['supervised_readout_mcc']:.3f}" in summary
    assert sum("supervised_readout_mcc" in v for v in recovery.values()) >= 3
    # The smoke run's random CLIP weights, and its two epochs, are flagged.
    assert "Warning: Image embeddings come from randomly initialised CLIP weights" in summary
    assert (metrics["stopped"] == "epoch cap") == ("CRL training stopped at the epoch cap" in summary)
    for block, values in recovery.items():  # each block not recovered is named with where its information is
        if values.get("verdict") == "not recovered":
            assert "CRL blocks not recovered" in summary and f"{block} ({values['diagnosis']})" in summary
    # Every line links a section that exists.
    anchors = set(re.findall(r'<section id="([^"]+)"', html))
    links = re.findall(r"\(\[details\]\(#([^)]+)\)\)", summary)
    assert len(links) >= 6 and set(links) <= anchors


def test_level1_ranks_dependent_pairs_by_one_effect_size(full_run):
    markdown = (full_run / "report/report.md").read_text()
    level1 = markdown.split("## Level I: independence tests\n", 1)[1].split("\n## ", 1)[0]
    table = pd.read_parquet(full_run / "level1/pvalues.parquet")
    dependent = table[(table.status == "ok") & (table.q_value < 0.05)]
    if dependent.empty:
        assert "Dependent pairs, by effect size" not in level1
        return
    section = level1.split("### Dependent pairs, by effect size\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    effects = [float(row[2]) for row in rows]
    assert effects == sorted(effects, reverse=True)
    keys = {(f.strip("| "), t) for f, t, *_ in rows}
    assert keys <= set(zip(dependent.feature, dependent.trait))  # only pairs some test decided dependent
    assert all(row[-1].strip(" |") in {"yes", "no"} for row in rows)  # planted truth column


def test_rank_effect_matches_scipy():
    import numpy as np
    from scipy import stats

    from personax.report._level1 import rank_effect

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = np.round(x + rng.normal(size=200)).clip(-2, 2)
    assert rank_effect(pd.Series(x), pd.Series(y)) == pytest.approx(abs(stats.spearmanr(x, y).statistic), abs=1e-12)
    # Category codes: eta^2 of the ranks equals the one-way ANOVA's F(k-1) / (F(k-1) + n-k).
    groups = rng.integers(0, 4, size=200)
    score = groups * 0.3 + rng.normal(size=200)
    ranks = stats.rankdata(score)
    f = stats.f_oneway(*[ranks[groups == g] for g in range(4)]).statistic
    eta2 = f * 3 / (f * 3 + 196)
    assert rank_effect(pd.Series(groups), pd.Series(score), categorical=True) ** 2 == pytest.approx(eta2, rel=1e-9)
    # Missing values are left out; too few rows or a constant column give NaN.
    assert np.isnan(rank_effect(pd.Series([1.0, None, 2.0]), pd.Series([1.0, 2.0, None])))
    assert np.isnan(rank_effect(pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series([1.0] * 4)))


def test_tables_mark_numbers_and_bold_cells():
    from personax.report._html import render_html
    from personax.report._markdown import render_markdown
    from personax.report._model import Report, Section, Table

    report = Report("t", [], [Section("S", [Table(["name", "value"], [["a", "0.5"], ["b", "12/30"]],
                                                  strong={(1, 1)})])])
    html = render_html(report)
    assert '<td class="num">0.5</td>' in html and '<td class="num"><strong>12/30</strong></td>' in html
    assert "<td>a</td>" in html and '<table class="sortable">' in html
    assert "| b | **12/30** |" in render_markdown(report)


def test_summary_flags_failed_raters_zero_shot_attributes_and_failed_stages(full_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    reliability = json.loads((run / "traits/reliability.json").read_text())
    reliability["raters"] = {"gpt": {"kind": "openai", "sent": 60, "failed": 3, "refused": 1, "invalid": 0}}
    (run / "traits/reliability.json").write_text(json.dumps(reliability))
    table = pd.read_parquet(run / "level1/pvalues.parquet")
    table.loc[table.feature == "Big_Nose", "feature_source"] = "zero-shot CLIP (random (meaningless))"
    table.to_parquet(run / "level1/pvalues.parquet")
    metrics = json.loads((run / "crl/metrics.json").read_text())
    metrics["warnings"] = ["the sparse decoder's L1 set every weight of the text block's latents to zero"]
    (run / "crl/metrics.json").write_text(json.dumps(metrics))
    manifest = _manifest(run)
    manifest["stages"]["crl"]["status"] = "failed"
    manifest["stages"]["crl"]["error"] = "ValueError: boom"
    (run / "manifest.json").write_text(json.dumps(manifest))
    build_report(run)
    summary = (run / "report/report.md").read_text().split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    assert "- Warning: Rater gpt: 3 failed, 1 refused answer(s)." in summary
    assert "- Warning: Face attributes in Level I come from zero-shot CLIP (random (meaningless))" in summary
    assert "- Warning: Stage crl failed: ValueError: boom." in summary
    assert "- Warning: CRL: the sparse decoder's L1 set every weight of the text block's latents to zero." in summary
    crl_section = (run / "report/report.md").read_text().split("\n## Level II", 1)[1]
    assert "Warning: the sparse decoder's L1 set every weight" in crl_section


@pytest.mark.parametrize("edges", [True, False])
def test_the_summary_says_that_latents_with_parents_are_identified_only_up_to_their_parents(hostile_bios, run_path,
                                                                                             edges):
    """Every latent with an incoming edge gets the transitivity caveat (z + c·parent fits as well);
    roots do not, and a graph without edges gives none."""
    from PIL import Image

    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    weights = [[0.0, 0.0, 0.4 * edges, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -0.7 * edges], [0.0] * 4]
    run_dir = RunDir(run_path, stage="crl")
    run_dir.write(A.CRL_GRAPH, {"nodes": ["s1", "s2", "image1", "text1"], "adjacency": weights,
                                "effects": [[0.0, 0.0, 0.3 * edges, 0.0], [0.0] * 4, [0.0, 0.0, 0.0, 0.5 * edges], [0.0] * 4]})
    Image.new("RGB", (4, 4)).save(run_dir.output_path(A.CRL_GRAPH_FIGURE))  # the section shows the figure
    markdown = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    summary = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    caveat = ("CRL latents with parents in the learned graph (image1, text1) are identified at best up to adding a "
              "multiple of their parents")
    assert (caveat in summary) == edges
    assert ("transitivity indeterminacy" in summary) == edges
    graphs = markdown.split("## Latent graphs\n", 1)[1].split("\n## ", 1)[0]  # and next to the graph
    assert ("image1, text1: each is identified at best up to adding a multiple of its parents" in graphs) == edges
    assert "edge width ~ standardised effect" in graphs  # what the figure's widths are, since graph.json has effects


def test_within_block_edges_whose_direction_the_data_do_not_decide_are_said_where_the_user_looks(hostile_bios,
                                                                                                   run_path):
    """graph.json's ``directions`` (Vuong's test of each within-block edge against its reverse): an
    undetermined edge and one whose reverse fits better each get a summary warning and a line next to
    the graph; a decided edge gets the line only. A graph.json from before the test says nothing of it."""
    from PIL import Image

    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    nodes = ["s1", "image1", "image2", "text1", "text2", "text3"]
    weights = [[0.0] * 6 for _ in nodes]
    weights[1][2], weights[3][4], weights[4][5] = 0.3, -0.2, 0.5
    directions = [{"parent": "image1", "child": "image2", "block": "image", "margin_per_person": 0.0321,
                   "vuong_z": 4.03, "p_value": 0.0001, "verdict": "decided"},
                  {"parent": "text1", "child": "text2", "block": "text", "margin_per_person": 0.0043,
                   "vuong_z": 1.61, "p_value": 0.1074, "verdict": "undetermined"},
                  {"parent": "text2", "child": "text3", "block": "text", "margin_per_person": -0.0655,
                   "vuong_z": -4.04, "p_value": 0.0001, "verdict": "reverse preferred"}]
    run_dir = RunDir(run_path, stage="crl")
    Image.new("RGB", (4, 4)).save(run_dir.output_path(A.CRL_GRAPH_FIGURE))
    for tested in (True, False):
        run_dir.write(A.CRL_GRAPH, {"nodes": nodes, "adjacency": weights,
                                    **({"directions": directions, "direction_level": 0.05,
                                        "direction_min_margin": 0.01} if tested else {})})
        markdown = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
        summary = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
        graphs = markdown.split("## Latent graphs\n", 1)[1].split("\n## ", 1)[0]
        assert ("The data do not decide the direction of text1 → text2 (z +1.61, +0.0043 nats per person)"
                in summary) == tested
        assert ("The reverse direction fits the validation rows better than the learned one for text2 → text3 "
                "(z -4.04, -0.0655 nats per person)" in summary) == tested
        assert "image1 → image2" not in summary.split("**What is unreliable**", 1)[1]  # decided: no warning
        assert ("Within-block edge directions, each against its reverse at the 0.05 level and by at least 0.01 "
                "nats per person" in graphs) == tested
        assert ("image1 → image2: decided (z +4.03, p 0.000, +0.0321 nats per person)" in graphs) == tested
        assert ("text2 → text3: reverse preferred" in graphs) == tested
        # what a verdict is about, next to the verdicts and in the reverse-preferred warning
        assert ("compares orders of the encoded latents" in graphs and "a decided direction is not thereby the planted "
                "one" in graphs) == tested
        assert ("where a block's learned latents mix its true ones it can favour the wrong direction" in graphs) == tested
        assert ("the learned direction is in doubt" in summary and "compares orders of the encoded latents" in summary
                ) == tested


def test_within_block_edges_not_tested_for_want_of_rows_are_said_where_the_user_looks(hostile_bios, run_path):
    """A cohort too small for the test of directions: the summary warns once, with the reason, and the
    line next to the graph says "not tested" for each edge; no number is made up."""
    from PIL import Image

    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    nodes = ["s1", "image1", "image2", "text1", "text2"]
    weights = [[0.0] * 5 for _ in nodes]
    weights[1][2], weights[4][3] = 0.3, 0.2
    reason = "15 validation rows; the test needs at least 100"
    directions = [{"parent": p, "child": c, "block": p[:-1], "margin_per_person": None, "vuong_z": None,
                   "p_value": None, "verdict": "not tested", "reason": reason}
                  for p, c in (("image1", "image2"), ("text2", "text1"))]
    run_dir = RunDir(run_path, stage="crl")
    Image.new("RGB", (4, 4)).save(run_dir.output_path(A.CRL_GRAPH_FIGURE))
    run_dir.write(A.CRL_GRAPH, {"nodes": nodes, "adjacency": weights, "directions": directions,
                                "direction_level": 0.05, "direction_min_margin": 0.01})
    markdown = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    summary = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    graphs = markdown.split("## Latent graphs\n", 1)[1].split("\n## ", 1)[0]
    assert (f"The direction of image1 → image2; text2 → text1 was not tested ({reason}): nothing says the data "
            "decide it." in summary)
    assert "The data do not decide" not in summary and "nats per person" not in summary
    assert f"image1 → image2: not tested ({reason}); text2 → text1: not tested ({reason})" in graphs


@pytest.mark.parametrize("recovery", [None, {"shared": {"mcc": 0.9, "verdict": "recovered"}}])
def test_a_crl_run_with_no_planted_truth_says_nothing_checked_it(hostile_bios, run_path, recovery):
    """A user's own cohort has no planted truth: the summary says that nothing scored the CRL's latents or
    graph, and what the synthetic cohort's record says of the default model; a scored run does not."""
    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    crl = RunDir(run_path, stage="crl")
    crl.write(A.CRL_METRICS, {"model": "personax", "people": 10})
    if recovery is not None:
        crl.write(A.CRL_RECOVERY, recovery)
    summary = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text().split(
        "## Summary\n", 1)[1].split("\n## ", 1)[0]
    assert ("CRL on a cohort with no planted latents" in summary) == (recovery is None)
    assert ("recovers no block of latents on any recorded seed" in summary) == (recovery is None)


@pytest.mark.parametrize("restarts", [1, 3])
def test_the_restarts_agreement_is_tabled_and_a_run_without_it_says_how_to_get_it(hostile_bios, run_path, restarts):
    """With several restarts the CRL section tables their agreement per block and explains it, and the
    stage's warning for a turned block reaches the summary; with one, the summary says how to get it."""
    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    metrics = {"model": "personax", "people": 10, "warnings": []}
    if restarts > 1:
        warning = "the 3 restarts turn the text block's axes differently (axes agreement 0.78 below 0.9, content 0.98)"
        metrics.update(warnings=[warning], restart_agreement={
            "restarts": 3, "returned_restart": 2, "axes_floor": 0.9, "content_floor": 0.9, "test_rows": 30,
            "blocks": {"text": {"axes": 0.7829, "axes_min": 0.7533, "content": 0.9763, "content_min": 0.9712, "pairs": 3}}})
    RunDir(run_path, stage="crl").write(A.CRL_METRICS, metrics)
    markdown = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    summary = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    section = markdown.split("## Level II: CRL metrics\n", 1)[1].split("\n## ", 1)[0]
    assert ("With crl.fit.restarts=3 or more" in summary) == (restarts == 1)
    assert ("Agreement of the 3 restarts (test split)" in section) == (restarts > 1)
    if restarts > 1:
        assert "CRL: the 3 restarts turn the text block's axes differently" in summary
        assert "| text | 0.783 | 0.753 | 0.976 | 0.971 | 3 |" in section
        assert "Agreement is about reproducibility, not recovery" in section and "returns restart 2" in section
        assert "Content below 0.9: the restarts do not even find the same content" in section
        assert "computed on 30 test rows" in section


def test_a_run_without_the_crl_stage_gets_no_crl_warning(hostile_bios, run_path):
    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    summary = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text()
    assert "CRL on a cohort with no planted latents" not in summary


@pytest.mark.parametrize("recovery, expected", [
    ({"all": {"mcc": 0.5, "shd_learned_graph": 3, "planted_edges": 2, "learned_edges": 3, "graph_verdict": "not recovered"}},
     "Learned graph SHD 3 against the planted graph (2 planted edge(s), 3 learned): graph not recovered."),
    ({"all": {"mcc": 0.9, "shd_learned_graph": 0, "planted_edges": 2, "learned_edges": 2, "graph_verdict": "recovered"}},
     "Learned graph SHD 0 against the planted graph (2 planted edge(s), 2 learned): graph recovered."),
    ({"shared": {"mcc": 0.9}}, "Not scored against the planted graph"),
    (None, "No planted graph to check this one against: read its edges as hypotheses."),
])
def test_the_learned_graph_says_next_to_it_how_it_compares_with_the_planted_one(hostile_bios, run_path, recovery,
                                                                                 expected):
    import matplotlib.pyplot as plt

    from personax import artifacts as A
    from personax.pipeline import RunDir

    run_pipeline(raw_config(hostile_bios, "[ingest]"), run_path)
    crl = RunDir(run_path, stage="crl")
    figure = plt.figure()
    crl.write(A.CRL_GRAPH_FIGURE, figure)
    plt.close(figure)
    crl.write(A.CRL_GRAPH, {"nodes": ["s1", "t1"], "adjacency": [[0, 0.5], [0, 0]]})
    if recovery is not None:
        crl.write(A.CRL_RECOVERY, recovery)
    section = build_report(run_path, OmegaConf.create({"name": "x"}), {})["markdown"].read_text().split(
        "## Latent graphs\n", 1)[1].split("\n## ", 1)[0]
    assert expected in section
