"""The ``crl`` stage: fit the causal multimodal VAE on the run's embeddings.

Reads the arrays listed in ``config.crl.modalities`` (modality -> list of
measurement files, e.g. the image embedding, and one text embedding per rater or
per text source) and ``data/persons.parquet``; people missing any measurement are
left out (and counted). ``config.crl.model`` picks the model: ``personax`` (default) or
``crl_reference``, the original study's design kept for comparison
(:func:`personax.crl.fit_reference`; its ``model/`` reloads with
``personax.crl._reference.load_reference`` and its metrics report the study's loss,
not an ELBO). Writes into ``crl/``:

* ``model/`` — the fitted model (``personax.load_pretrained``);
* ``latents.parquet`` — person_id, split, and every learned latent;
* ``graph.json`` / ``graph.png`` — the learned weighted DAG;
* ``pc_graph.json`` / ``pc_graph.png`` — PC (causal-learn) on the learned latents with
  background knowledge that nothing points into the shared block, as the study did;
* ``training_curve.png`` and ``metrics.json``;
* on the synthetic cohort, ``recovery.json`` and ``mcc.png``: MCC and block R² of each
  learned block against the planted one (held-out split), and SHD where the blocks
  have the planted sizes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from personax.crl import diagnostics as D
from personax.crl._auxiliary import auxiliary_design
from personax.crl._baselines import recovery_with_baselines
from personax.crl._fit import fit, missing_entries, usable_rows
from personax.crl._reference import fit_reference
from personax.pipeline import RunDir, atomic_path, write_json

log = logging.getLogger(__name__)


def _figure_path(run_dir: RunDir, name: str) -> Path:
    return run_dir.output(f"crl/{name}")


def draw_graph(adjacency: pd.DataFrame, path: Path, title: str, *, directed_only: bool = True) -> None:
    """Draws a weighted DAG with nodes on a circle (edge width ~ |weight|)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(adjacency.index)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    xy = np.column_stack([np.cos(angles), np.sin(angles)])
    fig, ax = plt.subplots(figsize=(6, 6))
    weights = adjacency.to_numpy(dtype=float)
    top = np.abs(weights).max() or 1.0
    for i, j in zip(*np.nonzero(weights)):
        ax.annotate("", xy=xy[j] * 0.9, xytext=xy[i] * 0.9,
                    arrowprops=dict(arrowstyle="-|>" if directed_only else "-", lw=0.5 + 2.5 * abs(weights[i, j]) / top,
                                    color="tab:red" if weights[i, j] < 0 else "tab:blue", shrinkA=8, shrinkB=8))
    for (x, y), name in zip(xy, names):
        colour = "#f4d35e" if name.startswith("s") else "#cfe8fc"
        ax.text(x, y, name, ha="center", va="center", fontsize=9, bbox=dict(boxstyle="round", fc=colour))
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.axis("off")
    ax.set_title(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)


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


def _truth_blocks(run_dir: RunDir, persons: pd.DataFrame, complete: np.ndarray) -> tuple[dict[str, np.ndarray] | None, pd.DataFrame | None]:
    """The planted latent blocks (rows of the kept people) and, for a benchmark, the true graph."""
    benchmark_file = run_dir.path / "data/ground_truth/benchmark.json"
    if benchmark_file.exists():
        import json

        payload = json.loads(run_dir.input("data/ground_truth/benchmark.json", producer="ingest").read_text())
        nodes = payload["graph"]["nodes"]
        graph = pd.DataFrame(payload["graph"]["adjacency"], index=nodes, columns=nodes)
        return {b: np.asarray(v, dtype=float)[complete] for b, v in payload["blocks"].items()}, graph
    truth_file = run_dir.path / "data/ground_truth/ground_truth.json"
    if not truth_file.exists():
        return None, None
    persons = persons.loc[complete].reset_index(drop=True)
    from personax.data.synthetic import GroundTruth

    truth = GroundTruth.load(run_dir.input("data/ground_truth", producer="ingest"))
    values = persons.merge(truth.trait_values, on="person_id", how="left")
    blocks = {}
    for block, columns in truth.latent_blocks.items():
        present = [c for c in columns if c in values.columns and values[c].notna().all()]
        if present:
            blocks[block] = values[present].to_numpy(dtype=float)
    return blocks, None


def load_measurement(run_dir: RunDir, spec: str, persons: pd.DataFrame,
                     tables: dict[str, pd.DataFrame] | None = None) -> np.ndarray:
    """One measurement, rows in the order of ``persons``.

    ``spec`` is an ``.npy`` file (one row per person) or ``table.parquet:pattern``:
    the columns of a parquet table (with ``person_id``) matching a shell-style
    pattern, e.g. ``traits/scores.parquet:trait_sima_?`` for one rater's five scores.
    ``tables`` caches parquet tables across calls (several raters share one file).
    """
    import fnmatch

    if ":" in spec and spec.split(":", 1)[0].endswith(".parquet"):
        file, pattern = spec.split(":", 1)
        tables = {} if tables is None else tables
        if file not in tables:
            tables[file] = pd.read_parquet(run_dir.input(file, producer="traits"))
        table = tables[file]
        columns = [c for c in table.columns if fnmatch.fnmatchcase(str(c), pattern)]
        if not columns or "person_id" not in table.columns:
            raise ValueError(f"{file}: no columns match {pattern!r} (or no person_id column); columns are {list(table.columns)[:20]}")
        aligned = persons[["person_id"]].merge(table[["person_id", *columns]], on="person_id", how="left")
        return aligned[columns].to_numpy(dtype=np.float64)
    array = np.load(run_dir.input(spec, producer="embeddings"), allow_pickle=False)
    if len(array) != len(persons):
        raise ValueError(f"{spec} has {len(array)} rows but data/persons.parquet has {len(persons)}")
    return array


def run(config: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Fits the CRL model on the run's embeddings and reports diagnostics."""
    options = config.crl
    persons = pd.read_parquet(run_dir.input("data/persons.parquet", producer="ingest"))
    modalities: dict[str, list[np.ndarray]] = {}
    tables: dict[str, pd.DataFrame] = {"data/persons.parquet": persons}  # already read above
    for modality, files in options.modalities.items():
        modalities[modality] = [load_measurement(run_dir, str(file), persons, tables) for file in files]
    if str(options.get("model", "personax")) == "personax":
        complete = usable_rows(modalities)  # NaN entries are missing and masked out of the likelihood
    else:  # the study's design has no missing-data handling: complete rows only
        complete = np.logical_and.reduce([np.isfinite(a).all(axis=1) for arrays in modalities.values() for a in arrays])
    if complete.sum() < 50:
        raise ValueError(f"only {int(complete.sum())} people have every measurement; the crl stage needs at least 50")
    data = {m: [a[complete] for a in arrays] for m, arrays in modalities.items()}
    kept = persons.loc[complete].reset_index(drop=True)
    latent_dims = {m: int(options.latent_dims[m]) for m in options.modalities}
    kind = str(options.get("model", "personax"))
    if kind not in ("personax", "crl_reference"):
        raise ValueError(f"crl.model must be 'personax' or 'crl_reference' (the study's design, for comparison), got {kind!r}")
    fitter = fit if kind == "personax" else fit_reference
    extra = {"progress": True} if kind == "personax" else {}
    auxiliary = None
    if kind == "personax" and list(options.get("auxiliary") or []):  # iVAE: person-table covariates
        auxiliary = auxiliary_design(kept, list(options.auxiliary), source="data/persons.parquet")[0]
        extra["auxiliary"] = auxiliary
    model = fitter(data, latent_dims=latent_dims, shared_dim=int(options.shared_dim), seed=int(options.seed),
                   **extra, **OmegaConf.to_container(options.fit, resolve=True))
    model.save_pretrained(run_dir.output("crl/model", directory=True))
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
    with atomic_path(run_dir.output("crl/latents.parquet")) as tmp:
        table.to_parquet(tmp, index=False)

    graph = model.graph()
    write_json(run_dir.output("crl/graph.json"), {"nodes": names, "adjacency": graph.to_numpy().tolist()})
    draw_graph(graph, _figure_path(run_dir, "graph.png"), "learned latent DAG (weights)")
    pc_graph = pc_on_latents(stacked[model.splits["train"]], names, int(options.shared_dim),
                             alpha=float(options.pc.alpha), test=str(options.pc.test))
    write_json(run_dir.output("crl/pc_graph.json"), {"nodes": names, "adjacency": pc_graph.to_numpy().tolist()})
    draw_graph(pc_graph, _figure_path(run_dir, "pc_graph.png"), f"PC on learned latents ({options.pc.test})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in model.history]
    if kind == "personax":
        ax.plot(epochs, [-h["train_loss"] for h in model.history], label="train (-loss)")
        ax.plot(epochs, [h["val_elbo"] for h in model.history], label="validation ELBO")
        ax.set_ylabel("ELBO per person")
    else:  # the reference has no ELBO: its own (gameable) objective
        ax.plot(epochs, [h["train_loss"] for h in model.history], label="train loss")
        ax.plot(epochs, [h["val_loss"] for h in model.history], label="validation loss")
        ax.set_ylabel("the study's loss")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    with atomic_path(_figure_path(run_dir, "training_curve.png")) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

    test_data = {m: [a[model.splits["test"]] for a in arrays] for m, arrays in data.items()}
    test_auxiliary = {} if auxiliary is None else {"auxiliary": auxiliary[model.splits["test"]]}
    metrics: dict[str, Any] = {
        "model": kind,
        "people": int(len(kept)),
        "left_out_missing_measurement": int((~complete).sum()),
        "epochs": model.history[-1]["epoch"],
        **({"best_val_elbo": model.best_val_elbo, "test_elbo": model.elbo(test_data, **test_auxiliary),
            "stopped": model.stopped,
            "missing_entries": missing_entries(data)}
           if kind == "personax" else
           {"best_val_loss": min(h["val_loss"] for h in model.history), "test_loss": model.loss(test_data)["total"]}),
        "fit_seconds": round(model.fit_seconds, 2),
        "edges": int((graph.to_numpy() != 0).sum()),
        "pc_edges": int(np.triu(pc_graph.to_numpy() + pc_graph.to_numpy().T).astype(bool).sum()),
    }
    truth, true_graph = _truth_blocks(run_dir, persons, complete)
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
                "block_r2_linear": D.block_r2(learned[train], true[train], learned[test], true[test])["mean"],
            }
        # Beside each block's MCC: the baselines on the same split and a plain verdict.
        for block, verdict in recovery_with_baselines(latents, truth, data, model.splits, seed=int(options.seed)).items():
            recovery[block].update({k: v for k, v in verdict.items() if k != "mcc"})
        if true_graph is not None and [b for b in order if b in truth] == [b for b in order if latents[b].shape[1]]:
            # Every block has a planted counterpart: match latents to true nodes and score the graph.
            learned_all = np.concatenate([latents[b] for b in order if latents[b].shape[1]], axis=1)
            true_all = np.concatenate([truth[b] for b in order if b in truth], axis=1)
            matching = D.mcc(learned_all[train], true_all[train], learned_all[test], true_all[test])
            assignment = matching["assignment"]
            recovery["all"] = {"mcc": matching["mcc"]}
            for label, adjacency in (("learned", graph), ("pc", pc_graph)):
                matched = D.permute_graph(adjacency.to_numpy(), assignment)
                recovery["all"][f"shd_{label}_graph"] = D.shd(matched, true_graph.to_numpy(), threshold=0.0)
        write_json(run_dir.output("crl/recovery.json"), recovery)
        corr = D.correlation_matrix(stacked[test], np.concatenate([truth[b] for b in truth], axis=1)[test])
        true_labels = (list(true_graph.index) if true_graph is not None else
                       [f"{block}{i + 1}" for block in truth for i in range(truth[block].shape[1])])
        D.save_diagnostics(run_dir.path / "crl", "mcc", {"blocks": recovery}, matrix=corr, row_labels=names,
                           col_labels=true_labels, title="|corr| learned (rows)\nvs planted (columns), test split")
        run_dir.output("crl/mcc.json")
        run_dir.output("crl/mcc.png")
        metrics["recovery"] = recovery
    write_json(run_dir.output("crl/metrics.json"), metrics)
    return {k: v for k, v in metrics.items() if k != "recovery"}
