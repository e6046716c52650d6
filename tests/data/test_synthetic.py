"""The synthetic cohort: deterministic, and what was planted is what the data show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from personax.data._bios import TRAIT_PHRASES
from personax.data.schema import FACE_ATTRIBUTES, TRAITS
from personax.data.synthetic import GroundTruth, make_cohort, make_multimodal_numeric, marginally_dependent


def test_same_arguments_same_cohort():
    a = make_cohort(150, kind="celeb", seed=7)
    b = make_cohort(150, kind="celeb", seed=7)
    pd.testing.assert_frame_equal(a.table, b.table)
    np.testing.assert_array_equal(a.faces, b.faces)
    pd.testing.assert_frame_equal(a.truth.trait_values, b.truth.trait_values)
    c = make_cohort(150, kind="celeb", seed=8)
    assert not a.table.bio.equals(c.table.bio)


def test_ground_truth_round_trips(tmp_path):
    truth = make_cohort(40, kind="athlete", seed=1, images=False).truth
    truth.save(tmp_path)
    loaded = GroundTruth.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.marginal_dependence, truth.marginal_dependence)
    pd.testing.assert_frame_equal(loaded.direct_effects, truth.direct_effects)
    assert loaded.edges == truth.edges and loaded.nodes == truth.nodes
    assert loaded.adjacency().loc["group", "o"] == 1.0


def test_dependence_is_read_off_the_dag():
    edges = [("a", "b", 1.0), ("c", "b", 1.0), ("d", "a", 1.0)]
    assert marginally_dependent(edges, "d", "b")  # chain
    assert marginally_dependent(edges, "a", "d")
    assert not marginally_dependent(edges, "a", "c")  # collider b is not conditioned on
    truth = make_cohort(10, kind="celeb", seed=0, images=False).truth
    # Direct causes are always marginally dependent; fine birth-date structure never is.
    assert (truth.marginal_dependence >= truth.direct_effects).all().all()
    for feature in ("birth_month", "birth_day", "day_of_year", "day_sin", "day_cos", "Pointy_Nose", "Narrow_Eyes", "Oval_Face"):
        assert truth.marginal_dependence.loc[feature].sum() == 0
    assert truth.marginal_dependence.loc["gender"].all() and truth.marginal_dependence.loc["group"].all()


def _kruskal_p(feature: pd.Series, trait: np.ndarray) -> float:
    values = feature.astype("float64").to_numpy()
    if len(np.unique(values)) > 12:  # continuous: compare the trait across deciles
        values = pd.qcut(values, 10, labels=False, duplicates="drop")
    return stats.kruskal(*[trait[values == v] for v in np.unique(values)]).pvalue


@pytest.mark.parametrize("kind", ["celeb", "athlete"])
def test_planted_dependencies_and_independencies_hold(kind):
    """At n = 20,000 every planted dependence is detected (p < 1e-3, Kruskal-Wallis on
    categories or deciles) and independent pairs look like the null: of the ~40 (celeb) or
    10 (athlete) independent pairs at most 2 may fall below p = 0.01 (0.4 expected)."""
    cohort = make_cohort(20_000, kind=kind, seed=0, images=False)
    truth = cohort.truth
    p = pd.DataFrame(
        {t: [_kruskal_p(cohort.table[f], truth.trait_values[t].to_numpy()) for f in truth.features] for t in TRAITS},
        index=truth.features,
    )
    dependent = truth.marginal_dependence == 1
    assert (p[dependent].max().max()) < 1e-3, p.where(dependent).max()
    assert int((p[~dependent] < 0.01).sum().sum()) <= 2


def test_faces_show_the_face_attributes():
    """A linear probe on pixels recovers each attribute (held-out accuracy >= 0.9)."""
    from sklearn.linear_model import RidgeClassifier

    cohort = make_cohort(900, kind="celeb", seed=3)
    pixels = cohort.faces.reshape(len(cohort.faces), -1).astype(np.float32) / 255.0
    train, test = slice(0, 700), slice(700, None)
    for attribute in FACE_ATTRIBUTES:
        labels = cohort.table[attribute].to_numpy(dtype=int)
        probe = RidgeClassifier(alpha=1.0).fit(pixels[train], labels[train])
        assert probe.score(pixels[test], labels[test]) >= 0.9, attribute


def test_bios_let_a_lexicon_recover_the_traits():
    """Counting the high minus low phrases per trait correlates with the true trait (Spearman > 0.45)."""
    cohort = make_cohort(2000, kind="athlete", seed=4, images=False)
    for trait in TRAITS:
        score = np.zeros(len(cohort.table))
        for sign, level in ((1, "high"), (-1, "low")):
            for phrase in TRAIT_PHRASES[trait][level]:
                score += sign * cohort.table.bio.str.contains(phrase, regex=False).to_numpy()
        rho = stats.spearmanr(score, cohort.truth.trait_values[trait]).statistic
        assert rho > 0.45, (trait, rho)


def test_simulated_raters_follow_the_traits_on_the_study_scale():
    cohort = make_cohort(3000, kind="celeb", seed=5, images=False)
    for rater, params in cohort.truth.raters.items():
        for trait in TRAITS:
            scores = cohort.table[f"trait_{rater}_{trait}"]
            assert set(np.unique(scores)) <= {0.0, 1.0, 2.0, 3.0}
            assert abs((scores == 0).mean() - params["p_insufficient"]) < 0.03
            valid = scores > 0
            rho = stats.spearmanr(scores[valid], cohort.truth.trait_values[trait][valid]).statistic
            assert rho > 0.5, (rater, trait, rho)


def test_athletes_are_men_without_face_attributes():
    table = make_cohort(100, kind="athlete", seed=0, images=False).table
    assert (table.gender == 1).all() and table[list(FACE_ATTRIBUTES)].isna().all().all()
    assert table.group.between(0, 6).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        make_cohort(10, kind="dogs")
    with pytest.raises(ValueError, match="unknown simulated rater"):
        make_cohort(10, simulated_raters=["gpt"], images=False)


@pytest.mark.slow  # ~30 s CPU
def test_multimodal_benchmark_is_injective_and_structured():
    """Each measurement determines (s, z(m), eta): kernel ridge predicts them from x with held-out R² > 0.9."""
    from personax.crl.diagnostics import block_r2
    from personax.data.synthetic import make_multimodal_numeric

    bench = make_multimodal_numeric(800, seed=0)
    graph = bench.graph.to_numpy()
    assert np.allclose(np.tril(graph), 0)  # acyclic in the latent order
    assert np.abs(bench.graph.loc[:, ["s1", "s2"]]).sum().sum() == 0  # nothing points into s
    assert (np.abs(bench.graph.loc[["s1", "s2"], ["image1", "image2", "text1", "text2"]]).sum(axis=0) > 0).all()
    for modality in ("image", "text"):
        for k, x in enumerate(bench.modalities[modality]):
            assert np.linalg.matrix_rank(x) == x.shape[1]
            truth = np.concatenate([bench.latents["shared"], bench.latents[modality], bench.noise[modality][k]], axis=1)
            r2 = block_r2(x[:600], truth[:600], x[600:], truth[600:], model="kernel")
            assert min(r2["r2"]) > 0.9, (modality, k, r2["r2"])
    again = make_multimodal_numeric(800, seed=0)
    np.testing.assert_array_equal(again.modalities["text"][2], bench.modalities["text"][2])


def test_variant_digits_follow_their_factors(tmp_path):
    """Scale factors show in the ink mass (Spearman > 0.5); IDX files load without pickle."""
    import gzip

    from personax.data.synthetic import make_variant_digits

    bench = make_variant_digits(400, seed=0, image_size=20)
    assert list(bench.graph.index) == ["Z11", "Z12", "Z21", "Z22"] and bench.graph.to_numpy().sum() == 3
    for modality, scale_factor in (("digit", 1), ("fashion", 1)):
        images = bench.modalities[modality]
        assert len(images) == 3 and images[0].shape == (400, 20 * 20 * 3)
        assert 0 <= images[0].min() and images[0].max() <= 1
        ink = images[0].sum(axis=1)
        rho = stats.spearmanr(ink, bench.latents[modality][:, scale_factor]).statistic
        assert rho > 0.5, (modality, rho)
        assert not np.allclose(images[0], images[1])  # measurements differ (colour, noise)
    # Real MNIST-format files are read from a path.
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    header = b"".join(v.to_bytes(4, "big") for v in (2051, 7, 28, 28))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + pixels.tobytes()))
    real = make_variant_digits(10, seed=1, image_size=28, mnist_path=path, fashion_path=path)
    assert real.modalities["digit"][0].shape == (10, 28 * 28 * 3)
    (tmp_path / "bad").write_bytes(b"\0" * 32)
    with pytest.raises(ValueError, match="not an IDX image file"):
        make_variant_digits(5, mnist_path=tmp_path / "bad")


@pytest.mark.slow  # ~15 s CPU (2,000 faces and five ridge fits); runs under CI
def test_level_two_latents_enter_the_modalities_the_design_says():
    """Shared e, a reach both the face and the raters; the face geometry only the face; o, c, n only
    the raters (held-out ridge R², fixed seed; thresholds sit well clear of the measured values:
    pixels -> e 0.72, a 0.61, face_length 0.92, nose_length 0.77, o 0.03)."""
    from sklearn.linear_model import RidgeCV

    cohort = make_cohort(2000, kind="celeb", seed=3)
    truth = cohort.truth
    assert truth.latent_blocks == {"shared": ["e", "a"], "image": ["face_length", "nose_length"],
                                   "text": ["o", "c", "n"]}
    values = truth.trait_values
    pixels = cohort.faces.reshape(len(cohort.faces), -1).astype(np.float32) / 255.0
    scores = np.hstack([cohort.table[[f"trait_{r}_{t}" for t in "ocean"]].to_numpy(float) for r in ("sima", "simb")])
    train, test = slice(0, 1500), slice(1500, None)

    def r2(x, latent):
        y = values[latent].to_numpy()
        return RidgeCV(alphas=[0.1, 1, 10, 100]).fit(x[train], y[train]).score(x[test], y[test])

    for latent in ("e", "a"):
        assert r2(pixels, latent) > 0.4 and r2(scores, latent) > 0.4, latent
    for latent in ("face_length", "nose_length"):
        assert r2(pixels, latent) > 0.6 and r2(scores, latent) < 0.05, latent
    for latent in ("o", "c", "n"):
        assert r2(pixels, latent) < 0.15 and r2(scores, latent) > 0.4, latent
    graph = truth.latent_graph()
    assert list(graph.index) == ["e", "a", "face_length", "nose_length", "o", "c", "n"]
    assert graph.loc["face_length", "nose_length"] != 0 and graph.loc["c", "n"] != 0
    assert (graph.loc[:, ["e", "a"]] == 0).all().all()  # nothing points into the shared block
    assert int((graph != 0).sum().sum()) == 2


def test_numeric_benchmark_groups_shift_every_latent_and_change_nothing_else():
    plain = make_multimodal_numeric(3000, seed=5)
    grouped = make_multimodal_numeric(3000, seed=5, auxiliary_groups=13)
    assert plain.auxiliary is None and grouped.auxiliary.shape == (3000,)
    assert set(np.unique(grouped.auxiliary)) == set(range(13))
    # the groups draw from their own stream: the graph and the measurement maps are the same draw
    assert plain.graph.equals(grouped.graph)
    assert all(np.array_equal(a, b) for a, b in zip(plain.noise["image"], grouped.noise["image"]))
    latents = np.concatenate([grouped.latents[b] for b in ("shared", "image", "text")], axis=1)
    for j in range(latents.shape[1]):  # each latent's location differs between groups (one-way ANOVA)
        assert stats.f_oneway(*[latents[grouped.auxiliary == g, j] for g in range(13)]).pvalue < 1e-6
