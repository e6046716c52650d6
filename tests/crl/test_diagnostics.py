"""Diagnostics against references: brute-force matching, sklearn's R², causal-learn's SHD."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from personax.crl import diagnostics as D


def test_mcc_recovers_a_permuted_rescaled_copy_and_matches_brute_force():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 4))
    learned = np.column_stack([-3 * z[:, 2], z[:, 0] ** 3, 0.5 * z[:, 3], z[:, 1] + 0.5 * rng.normal(size=600)])
    result = D.mcc(learned[:400], z[:400], learned[400:], z[400:])
    assert result["assignment"] == [1, 3, 0, 2]
    corr = D.correlation_matrix(learned[400:], z[400:])
    best = max(np.mean([corr[p[j], j] for j in range(4)]) for p in itertools.permutations(range(4)))
    assert result["mcc"] == pytest.approx(best)
    # Spearman sees the monotone cube as perfect.
    assert D.mcc(learned, z, method="spearman")["per_latent"][0] == pytest.approx(1.0)
    assert D.mcc(learned, z)["per_latent"][0] < 0.95


def test_mcc_of_independent_noise_is_low():
    rng = np.random.default_rng(1)
    result = D.mcc(rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3)),
                   rng.normal(size=(2000, 3)))
    assert result["mcc"] < 0.1


def test_correlations_match_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 3))
    from scipy import stats

    for method, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        expected = [[abs(fn(a[:, i], b[:, j]).statistic) for j in range(3)] for i in range(2)]
        np.testing.assert_allclose(D.correlation_matrix(a, b, method), expected, atol=1e-12)


def test_block_r2_linear_matches_sklearn_and_kernel_sees_nonlinearity():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 2))
    y = np.column_stack([x[:, 0] + 0.1 * rng.normal(size=500), np.sin(2 * x[:, 1]) + 0.1 * rng.normal(size=500)])
    linear = D.block_r2(x[:400], y[:400], x[400:], y[400:], model="linear")
    ols = LinearRegression().fit(x[:400], y[:400]).predict(x[400:])
    assert linear["r2"][0] == pytest.approx(r2_score(y[400:, 0], ols[:, 0]), abs=0.01)
    kernel = D.block_r2(x[:400], y[:400], x[400:], y[400:], model="kernel")
    assert kernel["r2"][1] > 0.8 > linear["r2"][1] + 0.3


def test_shd_matches_causal_learn():
    from causallearn.graph.Dag import Dag
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.graph.SHD import SHD

    def to_dag(adjacency):
        nodes = [GraphNode(f"X{i}") for i in range(len(adjacency))]
        dag = Dag(nodes)
        for i, j in zip(*np.nonzero(adjacency)):
            dag.add_directed_edge(nodes[i], nodes[j])
        return dag

    rng = np.random.default_rng(4)
    for _ in range(25):
        a, b = (np.triu(rng.random((5, 5)) < 0.4, 1).astype(float) for _ in range(2))
        perm = rng.permutation(5)
        b = b[perm][:, perm]  # another topological order, so reversals occur
        assert D.shd(a, b) == SHD(to_dag(b), to_dag(a)).get_shd()


def test_stability_and_edge_frequency():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(300, 3))
    runs = [z[:, perm] * rng.choice([-1, 1], 3) for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0])]
    assert D.seed_stability(runs)["min"] == pytest.approx(1.0)
    freq = D.edge_frequency([np.array([[0, 1], [0, 0]]), np.array([[0, 0.5], [0, 0]]), np.zeros((2, 2))])
    np.testing.assert_allclose(freq, [[0, 2 / 3], [0, 0]])
    with pytest.raises(ValueError, match="at least two"):
        D.seed_stability(runs[:1])


def test_restart_agreement_tells_a_turned_block_from_an_agreed_one_and_from_other_content():
    """Restarts that return the block up to order and sign agree on axes and content; a turned copy
    agrees on content only; unrelated latents on neither. Content is sklearn's held-out R²."""
    rng = np.random.default_rng(6)
    z, other = rng.normal(size=(800, 2)), rng.normal(size=(800, 2))
    turn = np.array([[np.cos(0.6), np.sin(0.6)], [-np.sin(0.6), np.cos(0.6)]])
    train, test = np.arange(500), np.arange(500, 800)
    same = D.restart_agreement([{"b": z}, {"b": -2 * z[:, ::-1]}], train, test)["b"]
    assert same["axes"] == pytest.approx(1.0) and same["content"] == pytest.approx(1.0) and same["pairs"] == 1
    turned = D.restart_agreement([{"b": z}, {"b": z @ turn}, {"b": z}], train, test)["b"]
    assert turned["content"] == pytest.approx(1.0) and turned["axes_min"] < D.AXES_AGREEMENT_FLOOR
    # 3 pairs, two of them with the turned copy: their median is a turned pair's
    assert turned["pairs"] == 3 and turned["axes"] == pytest.approx(turned["axes_min"])
    noisy = z + 0.5 * rng.normal(size=z.shape)
    apart = D.restart_agreement([{"b": z, "s": z[:, :0]}, {"b": other, "s": z[:, :0]}], train, test)
    assert set(apart) == {"b"} and apart["b"]["content"] < 0.02  # an empty block has nothing to agree on
    reference = np.mean([r2_score(y[test], LinearRegression().fit(x[train], y[train]).predict(x[test]),
                                  multioutput="uniform_average") for x, y in ((z, noisy), (noisy, z))])
    got = D.restart_agreement([{"b": z}, {"b": noisy}], train, test)["b"]["content"]
    assert got == pytest.approx(reference, abs=1e-9)
    with pytest.raises(ValueError, match="at least two"):
        D.restart_agreement([{"b": z}], train, test)


def test_save_writes_json_and_a_figure(tmp_path):
    paths = D.save_diagnostics(tmp_path, "mcc", {"mcc": np.float64(0.9)}, matrix=np.eye(2), row_labels=["a", "b"])
    assert json.loads(paths["json"].read_text()) == {"mcc": 0.9}
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
