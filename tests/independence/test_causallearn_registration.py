"""personax tests registered with causal-learn run inside its PC algorithm."""

import numpy as np
import pytest
from causallearn.search.ConstraintBased.PC import pc
from causallearn.utils.cit import CIT

from personax.independence import register_with_causallearn, test_pair


def test_registered_tests_match_test_pair_and_run_pc():
    names = register_with_causallearn()
    assert {"personax_kci", "personax_rcit", "personax_fisherz"} <= set(names)
    rng = np.random.default_rng(0)
    n = 300
    a = rng.normal(size=n)
    b = np.tanh(a) + 0.5 * rng.normal(size=n)
    c = b**2 + 0.5 * rng.normal(size=n)
    data = np.column_stack([a, b, c])
    cit = CIT(data, "personax_kci")
    assert cit(0, 2, [1]) == pytest.approx(test_pair(a, c, b[:, None], test="kci").p_value, rel=1e-9)
    g = pc(data, 0.01, "personax_kci", show_progress=False)
    edges = {(e.get_node1().get_name(), e.get_node2().get_name()) for e in g.G.get_graph_edges()}
    assert edges == {("X1", "X2"), ("X2", "X3")}


def test_unusable_pair_raises_instead_of_p_value():
    register_with_causallearn(["kci"])
    data = np.column_stack([np.ones(50), np.arange(50.0)])
    with pytest.raises(ValueError, match="constant column"):
        CIT(data, "personax_kci")(0, 1)
    with pytest.raises(ValueError, match="cache_path"):
        CIT(data, "personax_kci", cache_path="/tmp/x.json")
