"""The ``crl`` stage: fit the causal multimodal VAE on the run's measurements.

Reads the measurements listed in ``config.crl.modalities`` (modality -> list of
artifact references, see :func:`load_measurements`: e.g. ``image_embedding``, and
``trait_scores:each_rater``, one text measurement per rater present in the trait
table) and the person table. A missing entry (a trait score 0, "insufficient information";
a person without an image) is masked out of the likelihood; people with nothing observed in a
modality are left out and counted. ``config.crl.model`` picks the model: ``personax`` (default) or
``crl_reference``, the original study's design kept for comparison
(:func:`personax.crl.fit_reference`; its ``model/`` reloads with
``personax.crl._reference.load_reference`` and its metrics report the study's loss,
not an ELBO). Writes (artifacts ``crl_*``) into ``crl/``:

* ``model/`` — the fitted model (``personax.load_pretrained``);
* ``latents.parquet`` — person_id, split, and every learned latent;
* ``graph.json`` / ``graph.png`` — the learned weighted DAG, and each edge's standardised effect
  (``effects``: |weight| depends on the latents' scale, the effect does not), and for each edge
  inside a modality block whether the data decide its direction (``directions``, Vuong's test
  between the block's orders: :func:`personax.crl.edge_direction_evidence`; the figure draws
  the undecided ones dashed; ``crl.edge_directions: false`` leaves it out);
* ``pc_graph.json`` / ``pc_graph.png`` — PC (causal-learn) on the learned latents with
  background knowledge that nothing points into the shared block, as the study did;
* ``training_curve.png`` and ``metrics.json``;
* on the synthetic cohort, ``recovery.json`` and ``mcc.png``: MCC and block R² of each
  learned block against the planted one (held-out split), and SHD where the blocks
  have the planted sizes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from personax.crl import diagnostics as D
from personax.crl._auxiliary import auxiliary_design
from personax.crl._baselines import recovery_with_baselines
from personax.crl._fit import fit, learning_rate_cuts, missing_entries, standardised_edge_effects, usable_rows
from personax.crl._order import DIRECTION_LEVEL, DIRECTION_MIN_MARGIN, edge_direction_evidence
from personax.crl._orient import fit_stop
from personax.crl._reference import fit_reference
from personax import artifacts as A
from personax.data.schema import raters_in, rater_column, TRAITS
from personax.data.truth import planted_truth
from personax.pipeline import RunDir

log = logging.getLogger(__name__)


def draw_graph(adjacency: pd.DataFrame, path: Path, title: str, *, directed_only: bool = True,
               strengths: np.ndarray | None = None, undecided: Sequence[tuple[str, str]] = (),
               undecided_note: str = "dashed: the data do not decide this edge's direction") -> None:
    """Draws a weighted DAG with nodes on a circle (edge width ~ ``strengths``, by default |weight|;
    colour: the weight's sign; a NaN strength is drawn dotted; the (parent, child) edges in
    ``undecided``, whose direction the data do not decide, dashed with a hollow head, and
    ``undecided_note`` under the graph says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(adjacency.index)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    xy = np.column_stack([np.cos(angles), np.sin(angles)])
    fig, ax = plt.subplots(figsize=(6, 6))
    weights = adjacency.to_numpy(dtype=float)
    widths = np.abs(weights) if strengths is None else np.abs(np.asarray(strengths, dtype=float))
    undefined = np.isnan(widths)  # an effect into a collapsed child latent: drawn dotted, at full width
    top = np.nanmax(widths, initial=0.0) or 1.0
    undecided = {(names.index(a), names.index(b)) for a, b in undecided}
    for i, j in zip(*np.nonzero(weights)):
        head = "-" if not directed_only else "-|>" if (i, j) not in undecided else "->"
        ax.annotate("", xy=xy[j] * 0.9, xytext=xy[i] * 0.9,
                    arrowprops=dict(arrowstyle=head,
                                    lw=3.0 if undefined[i, j] else 0.5 + 2.5 * widths[i, j] / top,
                                    linestyle=":" if undefined[i, j] else "--" if (i, j) in undecided else "-",
                                    color="tab:red" if weights[i, j] < 0 else "tab:blue", shrinkA=8, shrinkB=8))
    if undecided:
        ax.text(0.5, 0.0, undecided_note, transform=ax.transAxes,
                ha="center", va="top", fontsize=8)
    for (x, y), name in zip(xy, names):
        colour = "#f4d35e" if name.startswith("s") else "#cfe8fc"
        ax.text(x, y, name, ha="center", va="center", fontsize=9, bbox=dict(boxstyle="round", fc=colour))
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.axis("off")
    ax.set_title(title)
    with A.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


def undecided_edges(graph_record: dict[str, Any]) -> list[tuple[str, str]]:
    """The (parent, child) edges of graph.json whose direction the data do not decide
    (``edge_direction_evidence``: undetermined, the reverse preferred, or not tested)."""
    return [(d["parent"], d["child"]) for d in graph_record.get("directions") or [] if d["verdict"] != "decided"]


def undecided_note(graph_record: dict[str, Any]) -> str:
    """The line under the learned graph that says what its dashed edges are."""
    verdicts = {d["verdict"] for d in graph_record.get("directions") or [] if d["verdict"] != "decided"}
    if verdicts == {"not tested"}:
        return "dashed: direction not tested (too few validation rows)"
    if "not tested" in verdicts:
        return "dashed: the data do not decide this edge's direction, or it was not tested"
    return "dashed: the data do not decide this edge's direction"


def graph_verdict_line(recovery: dict[str, Any] | None) -> str:
    """One line under the learned graph's title: how it compares with the planted graph (recovery.json's
    "all" entry), that it could not be compared, or that no planted graph checks it."""
    if not recovery:
        return "no planted graph to check it against: its edges are hypotheses"
    overall = recovery.get("all") or {}
    if "shd_learned_graph" not in overall:
        return "not scored: its blocks' sizes are not the planted ones; its edges are hypotheses"
    verdict = overall.get("graph_verdict") or ("recovered" if overall["shd_learned_graph"] == 0 else "not recovered")
    strong = f", strong edges only {overall['shd_strong_graph']}" if "shd_strong_graph" in overall else ""
    return f"planted graph: {verdict} (SHD {overall['shd_learned_graph']}{strong})"


def recovery_verdicts(recovery: dict[str, Any] | None) -> dict[str, str] | None:
    """Each scored block's verdict and the graph's (``graph``), for the manifest's summary of the stage
    (the command line's last lines say them); None when no planted latents scored the run."""
    if not recovery:
        return None
    verdicts = {block: values["verdict"] for block, values in recovery.items() if block != "all" and "verdict" in values}
    if "graph_verdict" in (recovery.get("all") or {}):
        verdicts["graph"] = recovery["all"]["graph_verdict"]
    return verdicts


def recovery_caption(recovery: dict[str, Any]) -> str:
    """The lines under the MCC figure: each block's MCC, its best baseline on the same split and the
    verdict (recovery.json), so that the figure says what it shows when it travels alone."""
    lines = []
    for block, values in recovery.items():
        if block == "all" or "verdict" not in values:
            continue
        baseline = (f", best baseline {values['best_baseline']} {values['best_baseline_mcc']:.3f}"
                    if values.get("best_baseline") else "")
        lines.append(f"{block}: MCC {values['mcc']:.3f}{baseline}: {values['verdict']}")
    return "\n".join(lines)


def pc_on_latents(latents: np.ndarray, names: list[str], shared: int, *, alpha: float, test: str) -> pd.DataFrame:
    """PC (causal-learn) on the learned latents; nothing may point into the shared block.

    Returns an adjacency with 1 for i -> j, and 1 both ways for an undirected edge.
    """
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    nodes = [GraphNode(f"X{i + 1}") for i in range(len(names))]
    knowledge = BackgroundKnowledge()
    for j in range(shared):
        for i in range(len(names)):
            if i != j:
                knowledge.add_forbidden_by_node(nodes[i], nodes[j])
    graph = pc(latents, alpha, test, background_knowledge=knowledge, show_progress=False, node_names=[n.get_name() for n in nodes])
    endpoints = graph.G.graph
    adjacency = np.zeros((len(names), len(names)))
    for i in range(len(names)):
        for j in range(len(names)):
            if endpoints[j, i] == 1 and endpoints[i, j] == -1:  # i -> j
                adjacency[i, j] = 1
            elif endpoints[i, j] == -1 and endpoints[j, i] == -1:  # undirected
                adjacency[i, j] = adjacency[j, i] = 1
    return pd.DataFrame(adjacency, index=names, columns=names)


EACH_RATER = "each_rater"
# the fit options of conf/crl/default.yaml that set what the stage optimises, not its training budget
# (epochs, batches, restarts); auxiliary_in_decoders acts only where covariates are given. The sparse
# decoder for the raters' scores (sparse_decoder, sparse_decoder_inputs) is left out: it is keyed by the
# stage's `text` modality, which in the benchmarks is a random network's mixture, not score columns
OBJECTIVE_FIELDS = ("shared_posterior", "contrastive", "noise_dim", "auxiliary_in_decoders")


def default_objective(fields: tuple[str, ...] = OBJECTIVE_FIELDS) -> dict[str, Any]:
    """The crl stage's default objective (or the named ``fields`` of its fit options) as
    :func:`personax.crl.fit` options, read from ``conf/crl/default.yaml`` (so the benchmarks that
    measure "the stage's objective" cannot drift from it)."""
    from personax.run import config_dir  # here: only this helper needs the launcher (and Hydra)

    stage_fit = OmegaConf.to_object(OmegaConf.load(config_dir() / "crl" / "default.yaml").fit)
    return {key: stage_fit[key] for key in fields}


def load_measurements(run_dir: RunDir, reference: str, persons: pd.DataFrame,
                      tables: dict[str, pd.DataFrame] | None = None) -> list[tuple[str, np.ndarray]]:
    """The measurements one reference names, rows in the order of ``persons``.

    ``reference`` names a declared artifact (:func:`personax.artifacts.parse_reference`):

    * an array artifact, e.g. ``image_embedding``, ``text_embedding[bio]``,
      ``release_embedding[image]``: one measurement, one row per person;
    * a table artifact with a column pattern, e.g. ``trait_scores:trait_gpt4o_?``: one
      measurement made of the matching columns (shell-style pattern);
    * ``trait_scores:each_rater``: one measurement per rater present in the trait table
      (its five ``trait_<rater>_<t>`` columns), as the study had one per LLM.

    ``tables`` caches tables across calls. Returns ``(name, array)`` pairs.
    """
    import fnmatch

    item, key, columns = A.parse_reference(reference)
    if item.format == "parquet":
        if columns is None:
            raise ValueError(f"crl.modalities: {reference!r} is a table; name its columns, e.g. "
                             f"{item.name}:{EACH_RATER} or {item.name}:trait_<rater>_?")
        tables = {} if tables is None else tables
        if item.name not in tables:
            tables[item.name] = run_dir.read(item, key)
        table = tables[item.name]
        if "person_id" not in table.columns:
            raise ValueError(f"{item.relpath(key)} has no person_id column")
        if columns == EACH_RATER:
            raters = raters_in(list(table.columns))
            if not raters:
                raise ValueError(f"crl.modalities: {reference!r} but {item.relpath(key)} has no rater with all five "
                                 f"trait_<rater>_<t> columns; add a rater (traits.raters)")
            groups = [(f"{item.name}:trait_{r}_?", [rater_column(r, t) for t in TRAITS]) for r in raters]
        else:
            matched = [c for c in table.columns if fnmatch.fnmatchcase(str(c), columns)]
            if not matched:
                raise ValueError(f"{item.relpath(key)}: no columns match {columns!r}; columns are "
                                 f"{list(table.columns)[:20]}")
            groups = [(reference, matched)]
        out = []
        for name, cols in groups:
            aligned = persons[["person_id"]].merge(table[["person_id", *cols]], on="person_id", how="left")
            out.append((name, aligned[cols].to_numpy(dtype=np.float64)))
        return out
    if columns is not None:
        raise ValueError(f"crl.modalities: {reference!r}: {item.name} is an array; it takes no column pattern")
    array = run_dir.read(item, key)
    if len(array) != len(persons):
        raise ValueError(f"{item.relpath(key)} has {len(array)} rows but the person table has {len(persons)}")
    return [(reference, np.asarray(array, dtype=np.float64).reshape(len(array), -1))]


def _without_matrices(orientation: dict[str, Any]) -> dict[str, Any]:
    """``FittedCRL.orientation`` for metrics.json: the turns' matrices stay in the saved model."""
    record = {k: v for k, v in orientation.items() if k != "matrix"}
    if "rounds" in record:
        record["rounds"] = [_without_matrices(entry) for entry in record["rounds"]]
    return record


def sparse_decoder_warnings(model: Any, measurement_names: dict[str, list[str]]) -> list[str]:
    """What a sparse decoder (``crl.fit.sparse_decoder``) may have got wrong, in plain words.

    * It is meant for score columns, each depending on few latents: on an embedding (an array
      artifact) that assumption is a modelling choice the user should have made on purpose.
    * With ``sparse_decoder_inputs: own_block`` a strong L1 can zero every weight of the block's
      latents, moving the block's content into the per-measurement noise.

    ``measurement_names`` are the names :func:`load_measurements` gives, artifact references.
    """
    config = model.config
    warnings = []
    for modality in config.sparse_decoder:
        names = measurement_names.get(modality, [])
        embedded = [name for name in names if A.parse_reference(name)[0].format != "parquet"]
        if embedded:
            warnings.append(f"crl.fit.sparse_decoder makes every column of {', '.join(embedded)} (modality "
                            f"{modality}) depend on few latents, an assumption made for score columns, not "
                            f"embeddings; remove it with ~crl.fit.sparse_decoder unless that is meant")
        weights = model.block_decoder_weights(modality)
        if all(not np.any(w) for w in weights):
            warnings.append(f"the sparse decoder's L1 (crl.fit.sparse_decoder.{modality}="
                            f"{config.sparse_decoder[modality]}) set every weight of the {modality} block's latents "
                            f"to zero: no {modality} measurement depends on its block, whose content may have moved "
                            f"into the measurement noise; lower crl.fit.sparse_decoder.{modality}")
    return warnings


# A proposal for s whose held-out R² of the other measurements' consensus is below this shows almost
# nothing of it (the demo's random-weight CLIP embedding: -0.03 on its validation rows, the raters and
# the thumbnail 0.24-0.55), yet draws s as often as any other in a mixture.
PROPOSAL_AGREEMENT_FLOOR = 0.05
# ... and only while the other proposals do agree (their median at least this): in an untrained or tiny
# fit no proposal predicts the others, and none stands out.
PROPOSAL_AGREEMENT_OTHERS = 0.2


def shared_proposal_agreement(model: Any, data: dict[str, list[np.ndarray]],
                              measurement_names: dict[str, list[str]]) -> tuple[dict[str, float | None], list[str]]:
    """Each measurement's agreement with the others' proposals for ``s`` on the validation rows
    (:func:`personax.crl.diagnostics.proposal_agreement`), by measurement name, and a warning for
    each proposal that shows almost nothing of what the others agree on (R² below
    ``PROPOSAL_AGREEMENT_FLOOR`` while the others' median is at least ``PROPOSAL_AGREEMENT_OTHERS``)
    and is not already left out (``crl.fit.shared_experts_excluded``)."""
    config = model.config
    excluded = tuple(config.shared_experts_excluded)
    agreement = D.proposal_agreement(model.shared_proposals(data), model.splits["train"], model.splits["val"],
                                     excluded=excluded)
    label = {key: name for name, key in _keys_by_name(measurement_names).items()}
    named = {label[key]: value for key, value in agreement.items()}
    weak = [key for key, value in agreement.items()
            if value is not None and value < PROPOSAL_AGREEMENT_FLOOR and key not in excluded]
    others = [value for key, value in agreement.items() if value is not None and key not in weak and key not in excluded]
    warnings = []
    if weak and others and float(np.median(others)) >= PROPOSAL_AGREEMENT_OTHERS:
        listed = ", ".join(f"{label[key]} ({agreement[key]:.2f})" for key in weak)
        spread = f"; the others {min(others):.2f} to {max(others):.2f}"
        warnings.append(f"the proposal for s of {listed} predicts almost none of what the other measurements propose "
                        f"(held-out R² on the validation rows{spread}), yet s's posterior combines it with the "
                        "others: if it cannot show what the modalities share (an embedding from random weights), "
                        "leave it out with crl.fit.shared_experts_excluded=["
                        f"{','.join(label[key] for key in weak)}] (docs/crl.md)")
    return named, warnings


def restart_agreement_record(model: Any, data: dict[str, list[np.ndarray]]) -> tuple[dict[str, Any], list[str]]:
    """metrics.json ``restart_agreement`` for a fit with several restarts: each block's agreement
    between the restarts as trained (:func:`personax.crl.diagnostics.restart_agreement`, test rows),
    and a warning for each block whose restarts do not share its content
    (:data:`~personax.crl.diagnostics.CONTENT_AGREEMENT_FLOOR`) or, sharing it, turn its axes
    differently (:data:`~personax.crl.diagnostics.AXES_AGREEMENT_FLOOR`)."""
    test = model.splits["test"]
    blocks = D.restart_agreement(model.encode_restarts(data), model.splits["train"], test)
    record = {"restarts": len(model.restart_params), "returned_restart": model.chosen_restart,
              "axes_floor": D.AXES_AGREEMENT_FLOOR, "content_floor": D.CONTENT_AGREEMENT_FLOOR, "test_rows": len(test),
              "blocks": {block: {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
                         for block, values in blocks.items()}}
    searched = (" (the search of the shared axes then turns the returned restart's s, so this says how far the fit "
                "alone fixes them)") if model.orientation else ""
    restarts = len(model.restart_params)
    warnings = []
    for block, values in record["blocks"].items():
        verdict = D.restart_agreement_verdict(values)
        if verdict == "content":  # not a turn of one content: the content itself differs
            warnings.append(f"the {restarts} restarts do not find the same content in the {block} block (content "
                            f"agreement {values['content']:.2f} below {D.CONTENT_AGREEMENT_FLOOR}, axes agreement "
                            f"{values['axes']:.2f}, on {len(test)} test rows): not even what the block holds is "
                            "reproducible, so neither are its latents")
        elif verdict == "axes":
            warnings.append(f"the {restarts} restarts turn the {block} block's axes differently (axes agreement "
                            f"{values['axes']:.2f} below {D.AXES_AGREEMENT_FLOOR}, content agreement "
                            f"{values['content']:.2f}): its latents are not reproducible one by one, as another "
                            "initialisation returns other axes" + (searched if block == "shared" else ""))
    return record, warnings


@dataclasses.dataclass(frozen=True)
class CRLInputs:
    """What the crl stage fits on, as it reads it from the run directory (:func:`crl_inputs`).

    Attributes:
        persons: The person table.
        kind: ``crl.model``: ``"personax"`` or ``"crl_reference"``.
        measurement_names: modality -> its measurements' names, in the order of ``data``.
        complete: Which persons (a boolean per row of ``persons``) have a usable entry in every modality.
        data: modality -> measurement arrays, rows of the complete persons only.
        kept: The complete persons, in the rows of ``data``.
        latent_dims: modality -> size of its latent block.
        auxiliary: The observed covariates (``crl.auxiliary``, iVAE) of the kept rows, or None.
    """

    persons: pd.DataFrame
    kind: str
    measurement_names: dict[str, list[str]]
    complete: np.ndarray
    data: dict[str, list[np.ndarray]]
    kept: pd.DataFrame
    latent_dims: dict[str, int]
    auxiliary: np.ndarray | None


def crl_inputs(options: DictConfig, run_dir: RunDir) -> CRLInputs:
    """Reads the crl stage's inputs (``options`` is the config's ``crl`` node) and keeps the rows it can fit on.

    Raises:
        ValueError: ``crl.model`` is unknown, or fewer than ``crl.min_people`` people are usable.
    """
    persons = run_dir.read(A.PERSONS)
    modalities: dict[str, list[np.ndarray]] = {}
    measurement_names: dict[str, list[str]] = {}
    tables: dict[str, pd.DataFrame] = {A.PERSONS.name: persons}  # already read above
    for modality, references in options.modalities.items():
        loaded = [m for ref in references for m in load_measurements(run_dir, str(ref), persons, tables)]
        measurement_names[modality] = [name for name, _ in loaded]
        modalities[modality] = [array for _, array in loaded]
    kind = str(options.get("model", "personax"))
    if kind not in ("personax", "crl_reference"):
        raise ValueError(f"crl.model must be 'personax' or 'crl_reference' (the study's design, for comparison), got {kind!r}")
    if kind == "personax":
        complete = usable_rows(modalities)  # NaN entries (a score 0, a missing image) are masked out of the likelihood
    else:  # the study's design cannot mask: only people with every entry of every measurement
        complete = np.ones(len(persons), dtype=bool)
        for arrays in modalities.values():
            for array in arrays:
                complete &= np.isfinite(array).all(axis=1)
    min_people = int(options.get("min_people", 50))
    if complete.sum() < min_people:
        raise ValueError(f"only {int(complete.sum())} of {len(persons)} people have a usable entry in every "
                         f"modality ({measurement_names}); the crl stage needs at least crl.min_people={min_people}")
    data = {m: [a[complete] for a in arrays] for m, arrays in modalities.items()}
    kept = persons.loc[complete].reset_index(drop=True)
    latent_dims = {m: int(options.latent_dims[m]) for m in options.modalities}
    auxiliary = None
    if kind == "personax" and list(options.get("auxiliary") or []):  # iVAE: person-table covariates
        coded = list(run_dir.read_optional(A.LABEL_MAPS) or {})  # ingest's category codes: one-hot, not numbers
        auxiliary = auxiliary_design(kept, list(options.auxiliary), source=A.PERSONS.relpath(), categorical=coded)[0]
    return CRLInputs(persons=persons, kind=kind, measurement_names=measurement_names, complete=complete, data=data,
                     kept=kept, latent_dims=latent_dims, auxiliary=auxiliary)


def _keys_by_name(measurement_names: dict[str, list[str]]) -> dict[str, str]:
    """Measurement name (as ``crl.modalities`` lists it) -> the model's key ``"{modality}_{k}"``."""
    return {name: f"{modality}_{k}" for modality, listed in measurement_names.items() for k, name in enumerate(listed)}


def measurement_keys_named(names: list[str], measurement_names: dict[str, list[str]]) -> list[str]:
    """The model's keys (``"{modality}_{k}"``) of measurements named as ``crl.modalities`` lists them
    (``image_embedding``; a rater's ``trait_scores:trait_sima_?``), for ``crl.fit.shared_experts_excluded``.

    Example:
        >>> measurement_keys_named(["image_embedding"], {"image": ["image_embedding", "image_pixels"]})
        ['image_0']
    """
    keys = _keys_by_name(measurement_names)
    unknown = [name for name in names if name not in keys]
    if unknown:
        raise ValueError(f"crl.fit.shared_experts_excluded names {unknown}, which this run does not measure; "
                         f"its measurements: {sorted(keys)}")
    return [keys[name] for name in names]


def run(config: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Fits the CRL model on the run's measurements and reports diagnostics."""
    options = config.crl
    inputs = crl_inputs(options, run_dir)
    persons, kind, measurement_names, complete = inputs.persons, inputs.kind, inputs.measurement_names, inputs.complete
    data, kept, latent_dims, auxiliary = inputs.data, inputs.kept, inputs.latent_dims, inputs.auxiliary
    fitter = fit if kind == "personax" else fit_reference
    # A killed fit resumes from its checkpoint on the next run (personax.crl._checkpoint)
    extra = {"progress": True, "checkpoint": run_dir.locate(A.CRL_FIT_CHECKPOINT)} if kind == "personax" else {}
    if auxiliary is not None:
        extra["auxiliary"] = auxiliary
    fit_options = OmegaConf.to_container(options.fit, resolve=True)
    if fit_options.get("shared_experts_excluded"):
        fit_options["shared_experts_excluded"] = measurement_keys_named(fit_options["shared_experts_excluded"],
                                                                        measurement_names)
    model = fitter(data, latent_dims=latent_dims, shared_dim=int(options.shared_dim), seed=int(options.seed),
                   **extra, **fit_options)
    test_data = {m: [a[model.splits["test"]] for a in arrays] for m, arrays in data.items()}
    test_auxiliary = {} if auxiliary is None else {"auxiliary": auxiliary[model.splits["test"]]}
    test_elbo = None
    if kind == "personax":  # its own compiled program: built on a second thread while encoding, PC and figures run
        background = ThreadPoolExecutor(max_workers=1)
        test_elbo = background.submit(model.elbo, test_data, **test_auxiliary)
        background.shutdown(wait=False)
    model.save_pretrained(run_dir.output_path(A.CRL_MODEL))
    latents = model.encode(data)
    split = np.empty(len(kept), dtype=object)
    for name, rows in model.splits.items():
        split[rows] = name
    table = pd.DataFrame({"person_id": kept.person_id, "split": split})
    order = ["shared", *latent_dims]
    names = model.config.latent_names
    stacked = np.concatenate([latents[b] for b in order], axis=1)
    for k, name in enumerate(names):
        table[name] = stacked[:, k]
    run_dir.write(A.CRL_LATENTS, table)

    graph = model.graph()
    graph_record = {"nodes": names, "adjacency": graph.to_numpy().tolist()}
    train_rows = model.splits["train"]
    # |A| is an edge's strength only for latents of unit scale, which the fit does not keep: each edge's
    # standardised effect on the training rows is what to compare (FittedCRL.edge_effects, without a second
    # encoding). The study's design (crl_reference) has no additive edges.
    if getattr(model.config, "additive_edges", False):
        effects = standardised_edge_effects(model.params, graph.to_numpy(), stacked[train_rows])
        # null: an edge into a collapsed (constant) child latent, whose effect is undefined
        graph_record["effects"] = [[None if np.isnan(e) else float(e) for e in row] for row in effects]
        # the edges a reader should take as strong (diagnostics.strong_edges), and by which threshold
        graph_record.update(strong_threshold=D.STRONG_EFFECT, strong_edges=int(D.strong_edges(effects).sum()))
    if kind == "personax" and options.get("edge_directions", True):
        # whether the data decide each within-block edge's direction: reversed orders are the main source of the
        # numeric benchmark's SHD, and the likelihood often barely prefers the learned one (docs/crl.md)
        started = time.perf_counter()
        log.info("crl: testing the direction of each learned edge inside a modality block (a prior fit per order) ...")
        directions = edge_direction_evidence(model, data, auxiliary=auxiliary, key=jax.random.key(int(options.seed)))
        graph_record.update(direction_level=DIRECTION_LEVEL, direction_min_margin=DIRECTION_MIN_MARGIN,
                            directions=directions)
        log.info("crl: the directions of %d within-block edge(s), in %.1f s: %s", len(directions),
                 time.perf_counter() - started, ", ".join(f"{d['parent']} -> {d['child']} {d['verdict']}"
                                                          for d in directions) or "none")
    run_dir.write(A.CRL_GRAPH, graph_record)
    pc_graph = pc_on_latents(stacked[train_rows], names, int(options.shared_dim),
                             alpha=float(options.pc.alpha), test=str(options.pc.test))
    run_dir.write(A.CRL_PC_GRAPH, {"nodes": names, "adjacency": pc_graph.to_numpy().tolist()})
    draw_graph(pc_graph, run_dir.output_path(A.CRL_PC_GRAPH_FIGURE), f"PC on learned latents ({options.pc.test})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in model.history]
    if kind == "personax":
        ax.plot(epochs, [-h["train_loss"] for h in model.history], label="train (-loss)")
        ax.plot(epochs, [h["val_elbo"] for h in model.history], label="validation ELBO")
        ax.set_ylabel("ELBO per person")
        cuts = learning_rate_cuts(model.history)  # lr_schedule: plateau
        for epoch in cuts:
            ax.axvline(epoch, color="grey", linestyle=":", linewidth=1)
        if cuts:
            ax.plot([], [], color="grey", linestyle=":", linewidth=1, label="learning rate cut")
    else:  # the reference has no ELBO: its own (gameable) objective
        ax.plot(epochs, [h["train_loss"] for h in model.history], label="train loss")
        ax.plot(epochs, [h["val_loss"] for h in model.history], label="validation loss")
        ax.set_ylabel("the study's loss")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    run_dir.write(A.CRL_CURVE, fig, dpi=110)
    plt.close(fig)

    metrics: dict[str, Any] = {
        "model": kind,
        "people": int(len(kept)),
        "left_out_missing_measurement": int((~complete).sum()),
        "measurements": measurement_names,
        "epochs": model.history[-1]["epoch"],
        **({"best_val_elbo": model.best_val_elbo, "test_elbo": test_elbo.result(),
            # how the fit itself ended, before the searches of the shared axes and block orders and their training on
            # (orientation "trained_on_stopped" says how that ended); "epochs" counts both
            "stopped": fit_stop(model)[0], "fit_epochs": fit_stop(model)[1],
            # the epochs an interrupted run's checkpoint had done when this run resumed from it (null: not resumed)
            "resumed_at_epoch": model.resumed_at_epoch,
            # crl.fit.lr_schedule: plateau: the first epoch at each lower learning rate
            **({"learning_rate_cuts": learning_rate_cuts(model.history)}
               if model.config.lr_schedule == "plateau" else {}),
            "missing_entries": missing_entries(data),
            # crl.fit.orient_shared: the search of the shared block's axes and its decision
            **({"orientation": _without_matrices(model.orientation)} if model.orientation else {}),
            # crl.fit.order_search: the search of the within-block orders and its decision
            **({"reordering": model.reordering} if model.reordering else {}),
            # crl.fit.shared_posterior: learned_mixture: each measurement's learned weight in the mixture for s
            **({"mixture_weights": dict(zip([name for m in model.config.latent_dims for name in measurement_names[m]],
                                            map(float, weights)))}
               if (weights := model.mixture_weights()) is not None else {})}
           if kind == "personax" else
           {"best_val_loss": min(h["val_loss"] for h in model.history), "test_loss": model.loss(test_data)["total"]}),
        "fit_seconds": round(model.fit_seconds, 2),
        "edges": int((graph.to_numpy() != 0).sum()),
        "pc_edges": int(np.triu(pc_graph.to_numpy() + pc_graph.to_numpy().T).astype(bool).sum()),
    }
    planted = planted_truth(run_dir)
    truth = planted.latent_blocks(persons, np.flatnonzero(complete)) if planted is not None else None
    true_graph = planted.graph if planted is not None else None
    if truth:
        train, test = model.splits["train"], model.splits["test"]
        recovery: dict[str, Any] = {}
        for block, true in truth.items():
            if block not in latents or latents[block].shape[1] == 0:
                continue
            learned = latents[block]
            recovery[block] = {
                "mcc": D.mcc(learned[train], true[train], learned[test], true[test])["mcc"],
                "mcc_spearman": D.mcc(learned[train], true[train], learned[test], true[test], method="spearman")["mcc"],
            }
        # Beside each block's MCC: the baselines on the same split, where the block's information
        # is (this block, all learned latents, the measurements) and a plain verdict.
        for block, verdict in recovery_with_baselines(latents, truth, data, model.splits, seed=int(options.seed)).items():
            recovery[block].update({k: v for k, v in verdict.items() if k != "mcc"})
        scored_blocks = [b for b in order if latents[b].shape[1]]
        if (true_graph is not None and [b for b in truth if truth[b].shape[1]] == scored_blocks  # same order
                and all(truth[b].shape[1] == latents[b].shape[1] for b in scored_blocks)  # the planted sizes
                and len(true_graph) == sum(truth[b].shape[1] for b in scored_blocks)):
            # Every block has a planted counterpart: match latents to true nodes and score the graph.
            learned_all = np.concatenate([latents[b] for b in order if latents[b].shape[1]], axis=1)
            true_all = np.concatenate([truth[b] for b in order if b in truth], axis=1)
            matching = D.mcc(learned_all[train], true_all[train], learned_all[test], true_all[test])
            assignment = matching["assignment"]
            recovery["all"] = {"mcc": matching["mcc"]}
            for label, adjacency in (("learned", graph), ("pc", pc_graph)):
                matched = D.permute_graph(adjacency.to_numpy(), assignment)
                recovery["all"][f"shd_{label}_graph"] = D.shd(matched, true_graph.to_numpy(), threshold=0.0)
            if "effects" in graph_record:  # the graph of its strong edges only, next to the model's own
                strong = D.strong_edges(D.permute_graph(np.asarray(graph_record["effects"], float), assignment))
                recovery["all"].update(shd_strong_graph=D.shd(strong, true_graph.to_numpy() != 0),
                                       strong_threshold=D.STRONG_EFFECT)
            # A graph is recovered only when it is the planted one (every nonzero entry is an edge the
            # model's likelihood uses); the report warns otherwise, whatever the blocks' MCC.
            recovery["all"].update(
                planted_edges=int((true_graph.to_numpy() != 0).sum()), learned_edges=int((graph.to_numpy() != 0).sum()),
                graph_verdict="recovered" if recovery["all"]["shd_learned_graph"] == 0 else "not recovered")
        run_dir.write(A.CRL_RECOVERY, recovery)
        corr = D.correlation_matrix(stacked[test], np.concatenate([truth[b] for b in truth], axis=1)[test])
        planted_columns = sum(truth[b].shape[1] for b in truth)
        true_labels = (list(true_graph.index) if true_graph is not None and len(true_graph) == planted_columns else
                       [f"{block}{i + 1}" for block in truth for i in range(truth[block].shape[1])])
        run_dir.output_path(A.CRL_MCC_FIGURE)
        D.save_diagnostics(run_dir.output_path(A.CRL_MCC).parent, "mcc", {"blocks": recovery}, matrix=corr,
                           row_labels=names, col_labels=true_labels,
                           title="|corr| learned (rows)\nvs planted (columns), test split",
                           caption=recovery_caption(recovery))
        metrics["recovery"] = recovery
    # Drawn once the recovery is known, so that the figure says it too (it is shared on its own).
    draw_graph(graph, run_dir.output_path(A.CRL_GRAPH_FIGURE),
               ("learned latent DAG (width: standardised effect)" if "effects" in graph_record
                else "learned latent DAG (weights)") + "\n" + graph_verdict_line(metrics.get("recovery")),
               strengths=graph_record.get("effects"), undecided=undecided_edges(graph_record),
               undecided_note=undecided_note(graph_record))
    if kind == "personax":
        metrics["warnings"] = sparse_decoder_warnings(model, measurement_names)
        if model.config.shared_dim and sum(model.config.measurements.values()) > 1:
            metrics["shared_proposal_agreement"], weak = shared_proposal_agreement(model, data, measurement_names)
            metrics["warnings"] += weak
        if model.restart_params:  # crl.fit.restarts >= 2: do the restarts find the same blocks? (no truth needed)
            metrics["restart_agreement"], disagreeing = restart_agreement_record(model, data)
            metrics["warnings"] += disagreeing
        for warning in metrics["warnings"]:
            log.warning("crl: %s", warning)
    run_dir.write(A.CRL_METRICS, metrics)
    A.remove_with_leftovers(run_dir.locate(A.CRL_FIT_CHECKPOINT))  # every output is written: nothing to resume
    return {**{k: v for k, v in metrics.items() if k != "recovery"},
            "recovery_verdicts": recovery_verdicts(metrics.get("recovery"))}
