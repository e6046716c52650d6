"""The multimodal, multi-measurement causal VAE.

Generative model: latents u = [s, z(1), ..., z(M)] follow a causal model with a
learned, weighted adjacency A: blocks in the given order (s first, nothing points
into s), and inside a modality block the order of a learned potential per node
(an edge i -> j exists only where potential_i < potential_j):

    u_j = f_j(A[:, j] * u) + sigma_j * h_j(n_j),   n_j ~ N(0, 1)

where f_j is built from the *weighted* parents (so A gets gradients from the
likelihood) and h_j a per-node sinh-arcsinh flow (non-Gaussian exogenous noise).
The effective graph is acyclic by construction (a strict order), so u -> n is
triangular in that order and its log-determinant is the sum of the per-node
terms: the prior density is exact at every training step, not only at the end. Each measurement
x(m,k) is decoded from [s, z(m), eta(m,k)] with eta(m,k) ~ N(0, I): a Gaussian
with one learned scale per measurement on the standardised values, or, for a
modality listed in ``ordinal``, an ordered-logistic model per column on its levels.

Inference: one encoder per measurement proposes Gaussians for s, z(m) and
eta(m,k); the posterior of z(m) is the product of experts over the modality's
measurements, and that of s the product (``shared_posterior="product"``) or the
uniform mixture (``"mixture"``, MMVAE) over all measurements, which ties the
measurements, or a mixture with learned weights (``"learned_mixture"``). The
loss is the negative ELBO; A is kept sparse by a proximal L1 step (exact zeros).
Missing entries of a measurement (NaN in the input) are masked out of the
likelihood and fed to the encoder as the training mean; a measurement with no
observed entry in a row drops out of that row's product or mixture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

LOG_2PI = float(np.log(2 * np.pi))
# orient_shared keeps the searched turn unless the turned model, trained on, scores a validation ELBO
# lower by more than this (nats per person): about three standard deviations (0.15-0.17) of that paired
# difference over random streams on spent numeric seeds (docs/crl.md, "The gate of the shared axes' turn")
ORIENT_TOLERANCE = 0.5
# ... and compares the two by their validation ELBO averaged over this many draws of the sampling noise
# (paired: the same draws for both): one draw moved the demo's paired difference by 0.4-0.6 nats per
# person (standard deviation), 32 draws by 0.07-0.29 (docs/crl.md, "On the demo, one draw of the
# validation noise decided the gate")
ORIENT_DRAWS = 32
# Standard-normal quantiles: where the additive edge functions are normalised.
NORMAL_GRID = scipy.stats.norm.ppf((np.arange(32) + 0.5) / 32).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CRLConfig:
    """Everything that defines a model (saved with it).

    Attributes:
        shared_dim: Size of the shared block s.
        latent_dims: modality -> size of its block z(m), in causal order.
        measurements: modality -> number of measurements K_m.
        input_dims: modality -> input dimension of its measurements: one number, or
            one per measurement when they differ (e.g. an embedding and a thumbnail).
        noise_dim: Size of each per-measurement noise eta(m,k).
        hidden: Encoder/decoder MLP widths.
        mechanism_hidden: Hidden width of each node's mechanism f_j.
        learning_rate, batch_size, max_epochs, patience: Training.
        min_delta: An epoch resets the patience counter only when its validation
            ELBO (nats per person) beats the best so far by more than this; the
            returned parameters are still those of the best ELBO. Without it, the
            tiny gains of a decaying learning rate keep training to the epoch cap.
        lr_schedule: "cosine" (the learning rate decays to a tenth over ``max_epochs``,
            so the schedule itself ends at the cap) or "plateau" (train to convergence:
            the rate stays at ``learning_rate`` until the validation ELBO has not
            progressed by ``min_delta`` for ``patience`` epochs, is then cut by
            ``plateau_factor``, at most ``plateau_cuts`` times, and training stops at the
            next such plateau; ``max_epochs`` is only a safety cap).
        plateau_factor, plateau_cuts: The cuts of the "plateau" schedule (0.3 twice: the
            last rate is 0.09 of the first, about where the cosine schedule ends).
        l1_graph: L1 strength on the adjacency (per example; the proximal step
            uses Adam's per-coordinate step size, so the fit is a stationary
            point of loss + l1_graph * |A|_1).
        l1_graph_on: What the L1 on the adjacency measures: "weight" (``|A_ij|``, as
            above) or "effect" (each ``|A_ij|`` times ``sd(g_ij(u_i)) / sd(u_j)`` on the
            batch's posterior means, held fixed in the step: the edge's standardised
            effect, :meth:`FittedCRL.edge_effects`, so the penalty does not weaken as the
            latents grow; needs ``mechanism: additive``). A reweighted L1: its weights
            follow the latents' scales from step to step.
        weight_decay: L2 on the mechanism MLPs (stops them absorbing the scale of A).
        graph_threshold: |A| at or below this is "no edge" in reports (0: the
            reported edges are exactly the nonzero entries).
        val_fraction, test_fraction: Split sizes.
        prior: "causal" (the model) or "gaussian" (standard normal latents: the
            multimodal beta-VAE baseline, with no graph).
        mechanism: "additive" (u_j = sum_i A_ij g_ij(u_i) + noise, one small
            function per edge: rotations of a block are not absorbed, which
            identifies the components) or "mlp" (one MLP of all weighted parents).
            Additive edge functions are normalised to zero mean and unit RMS on a
            standard-normal grid, so |A_ij| is the edge's strength only for latents of
            about unit scale, which the fit does not keep (InfoNCE gains as they grow):
            compare edges by ``FittedCRL.edge_effects``.
        within_block_order: "learned" (each node of a modality block has a learned
            potential and an edge i -> j is active only if potential_i < potential_j,
            so the graph is a DAG at every step; the potentials get gradients
            through a sigmoid straight-through estimator) or "fixed" (index order).
            Blocks are always in the given causal order and nothing points into s.
        order_temperature: Temperature of the sigmoid whose gradient stands in for
            the hard order mask's.
        image_shapes: modality -> (height, width, channels) for modalities whose
            measurements are images (flattened rows): those get a small conv-net
            encoder and decoder instead of MLPs.
        restarts: Independent initialisations trained side by side (vmapped); the
            one with the best validation ELBO is kept.
        beta: Weight of the prior and entropy terms in the training loss (1 = ELBO).
        contrastive: Weight of the multiview InfoNCE term (0 = off): each pair of
            measurements of the same person is a positive pair, on the latents the
            two share (s for measurements of different modalities, [s, z(m)] for two
            measurements of modality m); the other people in the batch are the
            negatives (multiview-crl's subset losses, Yao et al. 2024; cross-modal
            InfoNCE on s only, Daunhawer et al. 2023). See :mod:`personax.crl._contrastive`.
        contrastive_temperature: InfoNCE temperature (similarity: minus the squared
            Euclidean distance of the encoders' means).
        contrastive_pairs: Which pairs of measurements the InfoNCE term aligns: "all"
            (the subset losses above) or "cross_modal" (only measurements of different
            modalities, on s: Daunhawer et al.'s cross-modal InfoNCE; each z(m) is then left
            to the ELBO and the auxiliaries).
        sparse_decoder: modality -> L1 strength: that (tabular) modality's decoders
            become sparse additive maps, x_c = b_c + sum_l W_cl g_cl(v_l) over the
            decoder inputs v = [s, z(m), eta(m,k)], with one small normalised function
            per (input, column) and the same proximal L1 step on W as on A, so each
            score column depends on few latents (the structure rater means and ICA
            exploit). Not for image modalities.
        sparse_decoder_inputs: Which decoder inputs of a ``sparse_decoder`` modality enter
            sparsely and additively: "all" (every input, as above) or "own_block" (only the
            modality's own latents z(m): x_c = sum_l W_cl g_cl(z_l) + MLP([s, eta(m,k),
            auxiliaries])_c, so each column depends on few of the block's latents, while the
            shared latents, the noise and the covariates act through a dense network).
            The noise is in that dense part, so a strong L1 can move the block's content
            into the per-measurement noise (at λ = 1 every z(m) weight of a small test fit
            went to zero; the stage's 0.05 keeps it): after raising λ, check that the
            block's weights are not all zero (``FittedCRL.block_decoder_weights``; the crl
            stage warns when they are).
        ordinal: modality -> number of levels L: that (tabular) modality's measurements
            hold ordered levels 1..L (NaN = missing, e.g. a rater's 0, "insufficient
            information") and their likelihood is a cumulative-logit (ordered logistic)
            model per column, P(x <= l) = sigmoid(c_l - eta), with eta the decoder's output
            and L - 1 learned ordered cutpoints per column, instead of a Gaussian on
            the standardised levels. The encoders still read the standardised levels.
            Not for image modalities. The ELBO then holds log-probabilities of levels for
            that modality, not densities of standardised values: compare ELBOs only
            between fits with the same likelihoods.
        auxiliary_dim: Number of observed auxiliary covariates (0 = none). When set,
            they shift the location and log-scale of every latent's exogenous noise
            (iVAE, Khemakhem et al. 2020): the prior is conditionally factorised given them.
        shared_posterior: How the measurements' proposals for s combine: "product"
            (product of experts: the most confident measurement decides) or
            "mixture" (a uniform mixture over the measurements present, as in
            MMVAE, Shi et al. 2019): s drawn from one measurement's proposal must
            reconstruct every other measurement, so s can hold only what each
            measurement shows (the shared content), not what one modality alone
            reconstructs best. The ELBO stays exact: the entropy term is the
            mixture's log-density at the sample. Encoded s is the mixture's mean.
            Or "learned_mixture": the same mixture with one learned weight per
            measurement (a softmax over the measurements present in the row, starting
            uniform), so that a measurement whose proposal explains the others badly
            (e.g. an embedding from random weights) can weigh less. Its ELBO is exact
            and its gradient unbiased: the expert is still drawn uniformly and the
            draw's terms are weighted by weight / (1 / present), an importance weight
            (``CausalMultimodalVAE.__call__``); encoded s is the weighted mean. The
            learned weights: ``FittedCRL.mixture_weights()``. Tried on the demo and
            not adopted (``experiments/demo_level2/README.md``).
        shared_experts_excluded: Measurements (``"{modality}_{k}"``, k counted from 0 in the
            order of ``data[modality]``) whose proposal for s is left out of s's posterior,
            product or mixture: s is then inferred from the others alone, and an excluded
            measurement's decoders still read s. For a measurement known to show nothing of what
            the modalities share. Its proposal for s still enters the contrastive term. On the
            demo, leaving out the random-weight CLIP embedding raised s's MCC by 0.01-0.04 on
            every seed tried (``experiments/demo_level2/README.md``); not a default.
        auxiliary_in_decoders: Also give the auxiliary covariates to every decoder,
            x = f(s, z(m), eta, covariates): what a covariate changes directly in a
            measurement (gender's hair length in a face) is then explained by the
            covariate, not taken up by a latent.
        orient_shared: After the fit, search the axes of the shared block ``s`` that the
            causal prior fits best, turn the model's ``s`` to them, and train the turned
            model and the original on side by side for ``orient_epochs`` epochs with the
            same batches and sampling noise (a paired comparison), keeping the turned one
            unless its validation ELBO is lower by more than ``orient_tolerance``
            (``personax.crl._orient``; ``FittedCRL.orientation``
            records the search and the decision). Independent roots with near-Gaussian
            noise leave ``s`` free to turn during the fit; the children's additive
            mechanisms and the sparse graph tell the axes apart afterwards.
        order_search: After the fit (and after ``orient_shared``), search each modality
            block's within-block order (every order of a block of 2 to 5 latents, held fixed,
            each scored by the prior's validation log-likelihood of the block's latents), write
            the best into the order potentials, and train the reordered model and the given
            one on side by side as ``orient_shared`` does, keeping the better validation ELBO
            (``personax.crl._order``; ``FittedCRL.reordering``). The potentials move only
            through a straight-through gradient, so a fit can keep a wrong order; the
            likelihood picks the order directly. Needs ``within_block_order: learned``.
        orient_epochs: The epoch cap of that training on (early stopping applies).
        orient_steps: Optimiser steps of each of the search's prior fits (one per angle and
            pair of shared axes); both branches' priors are refitted with four times as many.
        orient_rounds: With ``orient_shared``: at most this many searches, each from the model
            the last one returned, stopping at the first whose turn is not kept.
        orient_rows: The search's prior fits, and the two branches' prior refits, use at most
            this many training rows (a fixed random subset, the same for every angle): their
            cost grows with the rows, full batch. Fits with fewer training rows use them all.
        orient_tolerance: Nats per person by which the turned model's validation ELBO after the
            training on may fall short of the given model's and still be kept. The turn is the
            search's finding, scored with the data fit held exactly; the training on guards
            against a turn that breaks the fit. Its paired difference moves with the random
            stream alone (standard deviation 0.15-0.17 nats per person on the numeric
            benchmark, docs/crl.md), so 0 would decide near ties by that noise.
        orient_draws: The training on's two branches (of ``orient_shared`` and ``order_search``) are
            compared by their best parameters' validation ELBO averaged over this many draws of the
            sampling noise, the same draws for both (1: the fixed validation key alone, as until
            2026-12-05). With one draw the paired difference moved by 0.4-0.6 nats per person
            (standard deviation over random streams) on the demo, with 32 by 0.07-0.29.
        orient_search_latents: What the search of the shared axes fits the prior to, at each
            angle: ``"means"``, the training rows' posterior means (fixed), scored by the prior's
            log-likelihood of the validation rows' means; or ``"draws"``, fresh posterior draws at
            every step, scored on ``orient_draws`` draws of the validation rows. With draws an
            angle is scored as the ELBO scores the prior (on draws; the entropy term does not
            change with a rotation of the whitened block), as the branches' prior refits are.
        orient_learning_rate: The learning rate the training on starts from (its cosine
            schedule decays to a tenth of it over ``orient_epochs``). None: the fit's
            ``learning_rate``, ten times the rate the fit's own schedule ended at.
        seed: Seed of initialisation, splits and sampling.
    """

    shared_dim: int
    latent_dims: dict[str, int]
    measurements: dict[str, int]
    input_dims: dict[str, int | tuple[int, ...]]
    noise_dim: int = 1
    hidden: tuple[int, ...] = (128, 128)
    mechanism_hidden: int = 16
    learning_rate: float = 2e-3
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 20
    min_delta: float = 0.01
    lr_schedule: str = "cosine"
    plateau_factor: float = 0.3
    plateau_cuts: int = 2
    l1_graph: float = 0.05
    l1_graph_on: str = "weight"
    weight_decay: float = 1e-3
    graph_threshold: float = 0.0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    prior: str = "causal"
    mechanism: str = "additive"
    within_block_order: str = "learned"
    order_temperature: float = 0.5
    restarts: int = 1
    image_shapes: dict[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)
    beta: float = 1.0
    contrastive: float = 0.0
    contrastive_temperature: float = 1.0
    contrastive_pairs: str = "all"
    auxiliary_in_decoders: bool = False
    shared_posterior: str = "product"
    shared_experts_excluded: tuple[str, ...] = ()
    sparse_decoder: dict[str, float] = dataclasses.field(default_factory=dict)
    sparse_decoder_inputs: str = "all"
    ordinal: dict[str, int] = dataclasses.field(default_factory=dict)
    auxiliary_dim: int = 0
    orient_shared: bool = False
    order_search: bool = False
    orient_epochs: int = 60
    orient_steps: int = 600
    orient_rounds: int = 1
    orient_rows: int = 4000
    orient_learning_rate: float | None = None
    orient_tolerance: float = ORIENT_TOLERANCE
    orient_draws: int = ORIENT_DRAWS
    orient_search_latents: str = "means"
    seed: int = 0

    def __post_init__(self):
        """Refuses a configuration that names an unknown option or would train something other
        than it says (checked here once, so a model built from a config directly is checked too)."""
        choices = {"prior": ("causal", "gaussian"), "mechanism": ("additive", "mlp"),
                   "within_block_order": ("learned", "fixed"), "shared_posterior": ("product", "mixture", "learned_mixture"),
                   "contrastive_pairs": ("all", "cross_modal"), "sparse_decoder_inputs": ("all", "own_block"),
                   "lr_schedule": ("cosine", "plateau"), "orient_search_latents": ("means", "draws"),
                   "l1_graph_on": ("weight", "effect")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be {' or '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        modalities = sorted(self.latent_dims)
        for name in ("sparse_decoder", "ordinal"):
            keys = set(getattr(self, name))
            if keys - set(modalities) or keys & set(self.image_shapes):
                raise ValueError(f"{name} names {sorted(keys)}: each must be a tabular modality "
                                 f"(modalities {modalities}, images {sorted(self.image_shapes)})")
        if self.shared_experts_excluded:
            keys = [f"{m}_{k}" for m, k in measurement_keys(self)]
            unknown = sorted(set(self.shared_experts_excluded) - set(keys))
            if unknown or not self.shared_dim or set(keys) <= set(self.shared_experts_excluded):
                raise ValueError(f"shared_experts_excluded = {list(self.shared_experts_excluded)}: each must be one of "
                                 f"the measurements {keys}, with shared_dim > 0 (got {self.shared_dim}) and at least "
                                 f"one measurement left to propose s" + (f"; unknown: {unknown}" if unknown else ""))
        for name in ("orient_epochs", "orient_steps", "orient_rounds", "orient_rows", "orient_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.plateau_factor < 1 or self.plateau_cuts < 0:
            raise ValueError(f"plateau_factor must be in (0, 1) and plateau_cuts at least 0, got "
                             f"{self.plateau_factor} and {self.plateau_cuts}")
        if not self.orient_tolerance >= 0:
            raise ValueError(f"orient_tolerance must be at least 0 (nats per person), got {self.orient_tolerance}")
        if self.orient_learning_rate is not None and not self.orient_learning_rate > 0:
            raise ValueError(f"orient_learning_rate must be positive (or None: the fit's learning_rate), "
                             f"got {self.orient_learning_rate}")
        if any(int(levels) < 2 for levels in self.ordinal.values()):
            raise ValueError(f"ordinal = {self.ordinal}: a modality needs at least 2 levels")
        if self.l1_graph_on == "effect" and not self.additive_edges:
            raise ValueError("l1_graph_on='effect' weighs each edge by its standardised effect, which needs the "
                             f"causal prior with additive mechanisms (got prior {self.prior!r}, mechanism "
                             f"{self.mechanism!r})")
        if self.contrastive and self.contrastive_pairs == "cross_modal" and (len(modalities) < 2 or not self.shared_dim):
            # no pair of different modalities shares a latent: the term would be zero, silently
            raise ValueError("contrastive_pairs='cross_modal' aligns s between modalities: it needs two or more "
                             f"modalities and shared_dim > 0 (got {len(modalities)} modalities, "
                             f"shared_dim {self.shared_dim})")

    @property
    def latent_names(self) -> list[str]:
        names = [f"s{i + 1}" for i in range(self.shared_dim)]
        for modality, dim in self.latent_dims.items():
            names += [f"{modality}{i + 1}" for i in range(dim)]
        return names

    @property
    def additive_edges(self) -> bool:
        """Whether the prior is made of additive edge terms ``A_ij g_ij(u_i)`` (``FittedCRL.edge_effects``)."""
        return self.prior == "causal" and self.mechanism == "additive"

    @property
    def total_latent(self) -> int:
        return self.shared_dim + sum(self.latent_dims.values())

    def block_slices(self) -> dict[str, slice]:
        slices = {"shared": slice(0, self.shared_dim)}
        start = self.shared_dim
        for modality, dim in self.latent_dims.items():
            slices[modality] = slice(start, start + dim)
            start += dim
        return slices

    def learned_order_pairs(self) -> np.ndarray:
        """Pairs (i, j), i != j, inside a modality block whose direction the potentials decide."""
        d = self.total_latent
        pairs = np.zeros((d, d))
        if self.within_block_order == "learned":
            for name, block in self.block_slices().items():
                if name != "shared":
                    pairs[block, block] = 1.0
            np.fill_diagonal(pairs, 0.0)
        return pairs

    def edge_mask(self) -> np.ndarray:
        """Allowed edges: from an earlier block to a later one, both ways inside a
        modality block when the order there is learned (the potentials then pick
        one direction), and nothing into s."""
        d = self.total_latent
        mask = np.triu(np.ones((d, d)), 1)
        if self.within_block_order == "learned":
            for name, block in self.block_slices().items():
                if name != "shared":
                    mask[block, block] = 1.0
        np.fill_diagonal(mask, 0.0)
        mask[:, : self.shared_dim] = 0.0
        return mask


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions and an MLP head, for flattened images."""

    shape: tuple[int, int, int]
    hidden: int
    out: int

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], *self.shape))
        for channels in (32, 64):
            x = nn.elu(nn.Conv(channels, (3, 3), strides=(2, 2))(x))
        x = nn.elu(nn.Dense(self.hidden)(x.reshape((x.shape[0], -1))))
        return nn.Dense(self.out)(x)


class ConvDecoder(nn.Module):
    """An MLP and two stride-2 transposed convolutions back to the flattened image."""

    shape: tuple[int, int, int]
    hidden: int

    @nn.compact
    def __call__(self, x):
        height, width, channels = self.shape
        h4, w4 = -(-height // 4), -(-width // 4)
        x = nn.elu(nn.Dense(self.hidden)(x))
        x = nn.elu(nn.Dense(h4 * w4 * 64)(x)).reshape((x.shape[0], h4, w4, 64))
        x = nn.elu(nn.ConvTranspose(32, (3, 3), strides=(2, 2))(x))
        x = nn.ConvTranspose(channels, (3, 3), strides=(2, 2))(x)
        return x[:, :height, :width, :].reshape((x.shape[0], -1))


# A child latent whose standard deviation is at or below this fraction of the latents' median is
# constant: an edge into it has no effect that can be divided by the child's spread.
COLLAPSED_FRACTION = 1e-3


def normalised_edge_functions(x, w1, b1, w2):
    """One small ELU function per (input i, output j) pair, g_ij(x_i), normalised to zero mean and unit
    RMS on a standard-normal grid so that the weight multiplying it carries the strength.
    x: (batch, inputs); w1, b1, w2: (inputs, outputs, hidden) -> (batch, inputs, outputs)."""
    def raw(values):
        hidden = nn.elu(values[:, :, None, None] * w1 + b1)
        return jnp.einsum("bijh,ijh->bij", hidden, w2)

    grid = raw(jnp.broadcast_to(NORMAL_GRID[:, None], (NORMAL_GRID.size, x.shape[1])))
    centre, scale = grid.mean(0), jnp.sqrt(grid.var(0) + 1e-4)
    return (raw(x) - centre) / scale


class SparseAdditiveDecoder(nn.Module):
    """x_c = b_c + sum_l weight[l, c] * g_lc(v_l): each output column an additive function of few inputs.

    With ``additive`` = (start, stop), only the inputs v[start:stop] enter that way, and the
    others through a dense ELU network of widths ``dense_features`` added to it (which holds
    the bias): x_c = sum_l weight[l, c] * g_lc(v_l) + MLP(v_rest)_c.
    """

    out: int
    hidden: int = 8
    additive: tuple[int, int] | None = None
    dense_features: Sequence[int] = ()

    @nn.compact
    def __call__(self, v):
        if self.additive is None:
            sparse, rest = v, None
        else:
            start, stop = self.additive
            sparse, rest = v[:, start:stop], jnp.concatenate([v[:, :start], v[:, stop:]], axis=-1)
        d = sparse.shape[-1]
        w1 = self.param("w1", nn.initializers.normal(1.0), (d, self.out, self.hidden))
        b1 = self.param("b1", nn.initializers.normal(1.0), (d, self.out, self.hidden))
        w2 = self.param("w2", nn.initializers.normal(0.3), (d, self.out, self.hidden))
        weight = self.param("weight", nn.initializers.uniform(0.5), (d, self.out))
        additive = jnp.einsum("bij,ij->bj", normalised_edge_functions(sparse, w1, b1, w2), weight)
        if rest is None:
            return additive + self.param("bias", nn.initializers.zeros, (self.out,))
        return additive + MLP((*self.dense_features, self.out))(rest)


class MLP(nn.Module):
    """ELU multilayer perceptron."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for width in self.features[:-1]:
            x = nn.elu(nn.Dense(width)(x))
        return nn.Dense(self.features[-1])(x)


def block_inputs(config: CRLConfig, modality: str) -> tuple[int, int]:
    """(start, stop) of z(modality) among its decoders' inputs [s, z(m), eta(m,k), auxiliaries]."""
    return config.shared_dim, config.shared_dim + config.latent_dims[modality]


def sparse_block_rows(config: CRLConfig, modality: str) -> slice:
    """The rows of z(modality) in a sparse decoder's ``weight``: its additive inputs are z(m) alone
    (``own_block``) or every decoder input (``all``)."""
    start, stop = block_inputs(config, modality)
    return slice(0, stop - start) if config.sparse_decoder_inputs == "own_block" else slice(start, stop)


def input_dim(config: CRLConfig, modality: str, k: int) -> int:
    """Width of measurement ``k`` of ``modality``."""
    dims = config.input_dims[modality]
    return int(dims) if isinstance(dims, int) else int(dims[k])


def measurement_keys(config: CRLConfig) -> list[tuple[str, int]]:
    return [(m, k) for m in config.latent_dims for k in range(config.measurements[m])]


def _poe(mus: Sequence[jnp.ndarray], logvars: Sequence[jnp.ndarray],
         present: Sequence[jnp.ndarray] | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Product of Gaussian experts; ``present`` (batch, 1) drops an expert from a row."""
    precisions = [jnp.exp(-lv) for lv in logvars]
    if present is not None:
        precisions = [p * w for p, w in zip(precisions, present)]
    total = sum(precisions)
    mean = sum(m * p for m, p in zip(mus, precisions)) / total
    return mean, -jnp.log(total)


def _mixture_proposal(shared: "SharedPosterior") -> jnp.ndarray:
    """The probabilities (batch, experts) with which a learned mixture's ELBO draws the expert: uniform
    over the present measurements, so that they get no gradient from the weights."""
    return shared.present / jnp.maximum(jnp.sum(shared.present, axis=-1, keepdims=True), 1.0)


class SharedPosterior(NamedTuple):
    """The posterior of s. Product of experts: a Gaussian (``mean``, ``logvar``). Mixture: ``mean``
    is the mixture's mean and the experts are kept (``logvar`` is None)."""

    mean: jnp.ndarray  # (batch, shared_dim)
    logvar: jnp.ndarray | None = None
    expert_means: jnp.ndarray | None = None  # (batch, experts, shared_dim)
    expert_logvars: jnp.ndarray | None = None
    weights: jnp.ndarray | None = None  # (batch, experts): the mixture's, over the present measurements
    present: jnp.ndarray | None = None  # (batch, experts): 1 where the measurement is present


AUXILIARY = "auxiliary"  # batch key of the observed auxiliary covariates (iVAE conditioning)


def level_key(name: str) -> str:
    """Batch key of an ordinal measurement's levels as category indices 0..L-1 (missing: 0, masked)."""
    return f"{name}:level"


def ordered_logistic_logpmf(level: jnp.ndarray, predictor: jnp.ndarray, cutpoints: jnp.ndarray) -> jnp.ndarray:
    """log P(level | predictor) of the ordered-logistic (cumulative-logit) model.

    P(level <= l) = sigmoid(cutpoints[l] - predictor) for l = 0..L-2, with ``level`` in 0..L-1
    and ``cutpoints`` (..., L-1) increasing along the last axis; numpyro's
    ``OrderedLogistic`` convention (tests check it against that). Written out because
    numpyro forms each probability as a difference of sigmoids and clips it, which loses the
    tails and their gradients; here sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - e^(a-b))
    is taken in logs, exact for any predictor.
    """
    shape = cutpoints.shape[:-1] + (1,)
    lower = jnp.concatenate([jnp.full(shape, -jnp.inf, cutpoints.dtype), cutpoints], axis=-1)
    upper = jnp.concatenate([cutpoints, jnp.full(shape, jnp.inf, cutpoints.dtype)], axis=-1)
    lower = jnp.broadcast_to(lower, predictor.shape + lower.shape[-1:])
    upper = jnp.broadcast_to(upper, predictor.shape + upper.shape[-1:])
    pick = level[..., None].astype(jnp.int32)
    a = jnp.take_along_axis(lower, pick, axis=-1)[..., 0] - predictor
    b = jnp.take_along_axis(upper, pick, axis=-1)[..., 0] - predictor
    # the infinite ends contribute exactly 0: log sigmoid(+inf) = 0 and log(-expm1(-inf)) = 0
    return jax.nn.log_sigmoid(b) + jax.nn.log_sigmoid(-a) + jnp.log(-jnp.expm1(jnp.minimum(a - b, -1e-6)))


def mask_key(name: str) -> str:
    """Batch key of a measurement's observed-entry mask (1 observed, 0 missing)."""
    return f"{name}:observed"


def observed(batch: dict[str, jnp.ndarray], name: str) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A measurement with missing entries set to 0 (the training mean after
    standardisation) and its mask; without a mask in the batch, every finite entry
    counts as observed."""
    x = batch[name]
    mask = batch.get(mask_key(name))
    if mask is None:
        mask = jnp.isfinite(x).astype(x.dtype)
    return jnp.where(mask > 0, jnp.nan_to_num(x), 0.0), mask


def _gaussian_logpdf(x, mean, logvar):
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * jnp.exp(-logvar))


def _reparameterised(key: jax.Array, mean, logvar):
    """A draw from N(mean, exp(logvar)) written as mean + sigma * noise, so gradients reach both."""
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)


class CausalMultimodalVAE(nn.Module):
    """The model; see the module docstring."""

    config: CRLConfig

    def setup(self):
        c = self.config
        self.keys = measurement_keys(c)
        def encoder(m):
            out = 2 * (c.shared_dim + c.latent_dims[m] + c.noise_dim)
            if m in c.image_shapes:
                return ConvEncoder(tuple(c.image_shapes[m]), c.hidden[-1], out)
            return MLP((*c.hidden, out))

        def decoder(m, k):
            if m in c.image_shapes:
                return ConvDecoder(tuple(c.image_shapes[m]), c.hidden[-1])
            if m in c.sparse_decoder and c.sparse_decoder_inputs == "own_block":
                return SparseAdditiveDecoder(input_dim(c, m, k), additive=block_inputs(c, m),
                                             dense_features=tuple(reversed(c.hidden)))
            if m in c.sparse_decoder:
                return SparseAdditiveDecoder(input_dim(c, m, k))
            return MLP((*reversed(c.hidden), input_dim(c, m, k)))

        self.encoders = {f"{m}_{k}": encoder(m) for m, k in self.keys}
        self.decoders = {f"{m}_{k}": decoder(m, k) for m, k in self.keys}
        self.log_sigma_x = self.param("log_sigma_x", nn.initializers.zeros, (len(self.keys),))
        # ordinal measurements: per column, the first cutpoint and the log-gaps to the next ones
        # (ordered by construction), starting evenly spaced over [-1, 1]
        def first_cut(levels):
            return lambda key, shape: jnp.full(shape, -1.0 if levels > 2 else 0.0)
        def log_gaps(levels):
            return lambda key, shape: jnp.full(shape, float(np.log(2.0 / max(levels - 2, 1))))
        self.cut_first = {f"{m}_{k}": self.param(f"cut_first_{m}_{k}", first_cut(c.ordinal[m]), (input_dim(c, m, k),))
                          for m, k in self.keys if m in c.ordinal}
        self.cut_log_gaps = {f"{m}_{k}": self.param(f"cut_log_gaps_{m}_{k}", log_gaps(c.ordinal[m]),
                                                    (input_dim(c, m, k), c.ordinal[m] - 2))
                             for m, k in self.keys if m in c.ordinal}
        d, h = c.total_latent, c.mechanism_hidden
        self.adjacency = self.param("adjacency", nn.initializers.uniform(0.2), (d, d))
        if c.mechanism == "additive":  # one 1 -> h -> 1 function per (parent, child) pair
            self.mech_w1 = self.param("mech_w1", nn.initializers.normal(1.0), (d, d, h))
            self.mech_b1 = self.param("mech_b1", nn.initializers.normal(1.0), (d, d, h))
            self.mech_w2 = self.param("mech_w2", nn.initializers.normal(0.3), (d, d, h))
        else:  # "mlp" (CRLConfig allows no other)
            self.mech_w1 = self.param("mech_w1", nn.initializers.normal(0.5), (d, d, h))
            self.mech_b1 = self.param("mech_b1", nn.initializers.zeros, (d, h))
            self.mech_w2 = self.param("mech_w2", nn.initializers.normal(0.5), (d, h))
        self.mech_b2 = self.param("mech_b2", nn.initializers.zeros, (d,))
        self.log_sigma_u = self.param("log_sigma_u", nn.initializers.zeros, (d,))
        self.flow_skew = self.param("flow_skew", nn.initializers.zeros, (d,))
        self.flow_log_tail = self.param("flow_log_tail", nn.initializers.zeros, (d,))
        self.order_potential = self.param("order_potential", nn.initializers.normal(1.0), (d,))
        if c.shared_dim and c.shared_posterior == "learned_mixture":
            self.mixture_logits = self.param("mixture_logits", nn.initializers.zeros, (len(self.keys),))
        if c.auxiliary_dim:
            self.auxiliary_location = self.param("auxiliary_location", nn.initializers.zeros, (c.auxiliary_dim, d))
            self.auxiliary_log_scale = self.param("auxiliary_log_scale", nn.initializers.zeros, (c.auxiliary_dim, d))

    def weighted_adjacency(self):
        """The effective adjacency: a DAG for every parameter value.

        Edges between blocks follow the block order; inside a modality block an edge
        i -> j is active only when potential_i < potential_j (a strict order, so no
        cycle, ties give no edge). Forward: exactly ``A * hard_mask``. Backward: ``A``
        gets the exact gradient of the active entries; the potentials get the
        gradient of a sigmoid relaxation (straight-through), so the order can move.
        """
        c = self.config
        fixed = jnp.asarray(c.edge_mask() - c.learned_order_pairs())
        pairs = jnp.asarray(c.learned_order_pairs())
        gap = self.order_potential[None, :] - self.order_potential[:, None]  # [i, j] = p_j - p_i
        hard = (gap > 0).astype(self.adjacency.dtype)
        soft = jax.nn.sigmoid(gap / c.order_temperature)
        active = self.adjacency * (fixed + pairs * hard)
        relaxed = jax.lax.stop_gradient(self.adjacency) * pairs * (soft - jax.lax.stop_gradient(soft))
        return active + relaxed

    def measurement_posteriors(self, batch: dict[str, jnp.ndarray]):
        """Each measurement's own encoder output, run once per batch:
        ``{name: (mean, logvar, present (batch, 1))}``, the latents in the order s, z(m), eta(m,k)."""
        out = {}
        for m, k in self.keys:
            x, mask = observed(batch, f"{m}_{k}")
            present = (jnp.sum(mask, axis=-1, keepdims=True) > 0).astype(x.dtype)
            mean, logvar = jnp.split(self.encoders[f"{m}_{k}"](x), 2, axis=-1)
            out[f"{m}_{k}"] = (mean, jnp.clip(logvar, -12.0, 8.0), present)
        return out

    def posteriors(self, batch: dict[str, jnp.ndarray], measured=None):
        """Gaussian posteriors: (mean, logvar) of s, of each z(m), and of each eta(m,k).

        ``measured``: :meth:`measurement_posteriors` of the batch, when the caller has it already."""
        c = self.config
        measured = self.measurement_posteriors(batch) if measured is None else measured
        s_parts, z_parts, eta = [], {m: [] for m in c.latent_dims}, {}
        present_s, present_z = [], {m: [] for m in c.latent_dims}
        for m, k in self.keys:
            mean, logvar, present = measured[f"{m}_{k}"]
            present_s.append(present * (f"{m}_{k}" not in c.shared_experts_excluded))
            present_z[m].append(present)
            ds, dm = c.shared_dim, c.latent_dims[m]
            s_parts.append((mean[:, :ds], logvar[:, :ds]))
            z_parts[m].append((mean[:, ds : ds + dm], logvar[:, ds : ds + dm]))
            eta[f"{m}_{k}"] = (mean[:, ds + dm :], logvar[:, ds + dm :])
        shared = None
        if c.shared_dim and c.shared_posterior in ("mixture", "learned_mixture"):
            present = jnp.concatenate(present_s, axis=-1)  # (batch, experts)
            weights = present
            if c.shared_posterior == "learned_mixture":
                weights = present * jnp.exp(self.mixture_logits - jnp.max(self.mixture_logits))[None, :]
            weights = weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-30)
            means = jnp.stack([m for m, _ in s_parts], axis=1)  # (batch, experts, shared_dim)
            shared = SharedPosterior(jnp.einsum("be,bed->bd", weights, means), None, means,
                                     jnp.stack([lv for _, lv in s_parts], axis=1), weights, present)
        elif c.shared_dim:
            shared = SharedPosterior(*_poe(*zip(*s_parts), present_s))
        blocks = {m: _poe(*zip(*parts), present_z[m]) for m, parts in z_parts.items()}
        return shared, blocks, eta

    def prior_logpdf(self, u, auxiliary=None):
        """log p(u | auxiliary) under the causal prior, change-of-variables term included."""
        return jnp.sum(self.prior_node_logpdf(u, auxiliary), axis=-1)

    def prior_node_logpdf(self, u, auxiliary=None):
        """Each latent's term log p(u_j | its parents, auxiliary), (batch, latents): the graph is a
        DAG, so they sum to :meth:`prior_logpdf`."""
        inner, residual, log_sigma = self._inverse_flow(u, auxiliary)
        base = jnp.sinh(inner)
        tau = jnp.exp(self.flow_log_tail)
        log_det = jnp.log(jnp.cosh(inner)) + jnp.log(tau) - 0.5 * jnp.log1p(residual**2) - log_sigma
        return -0.5 * (LOG_2PI + base**2) + log_det

    def exogenous_noise(self, u, auxiliary=None):
        """Each latent's exogenous noise n_j ~ N(0, 1) under the prior, (batch, latents): what is left
        of u_j once its parents' mechanism is taken out, through the inverse of its flow. The
        prior says these are independent."""
        return jnp.sinh(self._inverse_flow(u, auxiliary)[0])

    def _inverse_flow(self, u, auxiliary):
        """The prior's change of variables u -> n but its last step, (batch, latents) each: ``inner``
        (n = sinh(inner)), the residual r = (u - f(parents)) / sigma that the inverse sinh-arcsinh flow
        takes (inner = tau * asinh(r) - skew, tau > 0), and log sigma."""
        weights = self.weighted_adjacency()
        if self.config.mechanism == "additive":
            # Each g_ij normalised on a fixed standard-normal grid: A carries the strength for unit-scale latents.
            edge = normalised_edge_functions(u, self.mech_w1, self.mech_b1, self.mech_w2)
            mechanism = jnp.einsum("bij,ij->bj", edge, weights) + self.mech_b2
        else:
            inputs = u[:, :, None] * weights[None]  # (batch, parent, node)
            hidden = nn.elu(jnp.einsum("bij,jih->bjh", inputs, self.mech_w1) + self.mech_b1)
            mechanism = jnp.einsum("bjh,jh->bj", hidden, self.mech_w2) + self.mech_b2
        log_sigma = self.log_sigma_u
        if self.config.auxiliary_dim:
            if auxiliary is None:
                raise ValueError("this model's prior is conditioned on auxiliary covariates: pass them")
            mechanism = mechanism + auxiliary @ self.auxiliary_location
            log_sigma = log_sigma + auxiliary @ self.auxiliary_log_scale
        residual = (u - mechanism) * jnp.exp(-log_sigma)
        return jnp.exp(self.flow_log_tail) * jnp.arcsinh(residual) - self.flow_skew, residual, log_sigma

    def __call__(self, batch: dict[str, jnp.ndarray], rng: jax.Array, *, with_views: bool = False):
        """Per-example ELBO terms: (elbo, reconstruction log-likelihood, KL-like rest), and with
        ``with_views`` also :meth:`view_means` from the same encoder pass (for the contrastive term)."""
        c = self.config
        measured = self.measurement_posteriors(batch)
        shared, blocks, eta = self.posteriors(batch, measured)
        keys = jax.random.split(rng, 2 + len(self.keys))

        entropy = sum(0.5 * jnp.sum(LOG_2PI + 1.0 + lv, axis=-1) for _, lv in blocks.values())
        if shared is not None and c.shared_posterior == "learned_mixture":
            # The expert is drawn uniformly over the present ones (a proposal that does not move with the
            # weights), and the terms that depend on the draw get the importance weight w_e / (1 / present):
            # an unbiased estimate of the weighted mixture's ELBO whose gradient reaches the weights.
            proposal = _mixture_proposal(shared)
            u, z, shared_entropy, chosen = self._draw(shared, blocks, keys[0], keys[1], proposal)
            importance = jnp.sum(chosen * shared.weights, axis=-1) / jnp.maximum(jnp.sum(chosen * proposal, axis=-1), 1e-30)
        else:
            u, z, shared_entropy = self.draw_latents(shared, blocks, keys[0], keys[1])
            entropy, importance = entropy + shared_entropy, None
        log_lik = 0.0
        log_prior_eta = 0.0
        for i, (m, k) in enumerate(self.keys):
            name = f"{m}_{k}"
            eta_mean, eta_logvar = eta[name]
            e = _reparameterised(keys[2 + i], eta_mean, eta_logvar)
            entropy = entropy + 0.5 * jnp.sum(LOG_2PI + 1.0 + eta_logvar, axis=-1)
            log_prior_eta = log_prior_eta + jnp.sum(-0.5 * (LOG_2PI + e**2), axis=-1)
            pieces = ([u[:, : c.shared_dim]] if c.shared_dim else []) + [z[m], e]
            if c.auxiliary_in_decoders and c.auxiliary_dim:
                pieces.append(batch[AUXILIARY])
            recon = self.decoders[name](jnp.concatenate(pieces, axis=-1))
            x, mask = observed(batch, name)
            if m in c.ordinal:
                log_lik = log_lik + jnp.sum(mask * ordered_logistic_logpmf(batch[level_key(name)], recon,
                                                                           self.cutpoints(name)), axis=-1)
            else:
                log_lik = log_lik + jnp.sum(mask * _gaussian_logpdf(x, recon, 2 * self.log_sigma_x[i]), axis=-1)
        if c.prior == "causal":
            log_prior_u = self.prior_logpdf(u, batch.get(AUXILIARY))
        else:
            log_prior_u = jnp.sum(-0.5 * (LOG_2PI + u**2), axis=-1)
        if importance is None:
            rest = log_prior_u + log_prior_eta + entropy
        else:  # the closed-form entropies and eta's prior do not depend on the expert drawn: left unweighted
            log_lik = importance * log_lik
            rest = importance * (log_prior_u + shared_entropy) + log_prior_eta + entropy
        if with_views:
            return log_lik + rest, log_lik, rest, self.view_means(batch, measured)
        return log_lik + rest, log_lik, rest

    def draw_latents(self, shared, blocks, shared_key: jax.Array, block_key: jax.Array):
        """A reparameterised draw ``u = [s, z(1), ..., z(M)]`` from the posteriors of :meth:`posteriors`,
        as :meth:`__call__` draws it: ``(u, {modality: z(m)}, the shared block's entropy term)`` (for a
        mixture, ``-log q(s)`` at the draw; else the Gaussian's closed form; 0 without shared latents).
        A learned mixture's draw is an exact draw from it (its expert picked by the learned weights);
        the ELBO draws the expert uniformly and weights the draw instead."""
        u, z, shared_entropy, _ = self._draw(shared, blocks, shared_key, block_key, None if shared is None else shared.weights)
        return u, z, shared_entropy

    def _draw(self, shared, blocks, shared_key: jax.Array, block_key: jax.Array, pick_weights):
        """:meth:`draw_latents` with a mixture's expert picked by ``pick_weights`` (batch, experts),
        and which expert each row picked (one-hot; None for a Gaussian posterior of s)."""
        c = self.config

        parts, shared_entropy, chosen = [], 0.0, None
        if shared is not None and c.shared_posterior in ("mixture", "learned_mixture"):
            # One expert per row: an unbiased draw from the mixture when picked by its weights (the choice
            # has probabilities that get no gradient, so the reparameterised draw inside carries it).
            means, logvars, weights = shared.expert_means, shared.expert_logvars, shared.weights
            pick = jax.random.categorical(jax.random.fold_in(shared_key, 1), jnp.log(jnp.maximum(pick_weights, 1e-30)),
                                          axis=-1)
            chosen = jax.nn.one_hot(pick, weights.shape[-1], dtype=means.dtype)
            s_sample = _reparameterised(shared_key, jnp.einsum("be,bed->bd", chosen, means), jnp.einsum("be,bed->bd", chosen, logvars))
            # -log q_mix(s): log of the weighted sum of the experts' densities at the draw.
            per_expert = jnp.sum(_gaussian_logpdf(s_sample[:, None, :], means, logvars), axis=-1)
            shared_entropy = -jax.nn.logsumexp(per_expert, b=weights, axis=-1)
            parts.append(s_sample)
        elif shared is not None:
            parts.append(_reparameterised(shared_key, shared.mean, shared.logvar))
            shared_entropy = 0.5 * jnp.sum(LOG_2PI + 1.0 + shared.logvar, axis=-1)
        z = {}
        for i, m in enumerate(c.latent_dims):
            z[m] = _reparameterised(jax.random.fold_in(block_key, i), *blocks[m])
            parts.append(z[m])
        return jnp.concatenate(parts, axis=-1), z, shared_entropy, chosen

    def cutpoints(self, name: str) -> jnp.ndarray:
        """An ordinal measurement's cutpoints, (columns, L-1), increasing along the last axis."""
        gaps = jnp.exp(self.cut_log_gaps[name])
        return jnp.concatenate([self.cut_first[name][:, None], self.cut_first[name][:, None]
                                + jnp.cumsum(gaps, axis=-1)], axis=-1)

    def view_means(self, batch: dict[str, jnp.ndarray], measured=None):
        """Each measurement's own encoder means, before they are combined into the posteriors:
        ``{name: (s mean, z(m) mean, present (batch,))}``, for the contrastive term."""
        c = self.config
        measured = self.measurement_posteriors(batch) if measured is None else measured
        out = {}
        for m, k in self.keys:
            mean, _, present = measured[f"{m}_{k}"]
            ds = c.shared_dim
            out[f"{m}_{k}"] = (mean[:, :ds], mean[:, ds : ds + c.latent_dims[m]], present[:, 0])
        return out

    def effect_scales(self, batch: dict[str, jnp.ndarray]):
        """(parent, child): ``sd(g_ij(u_i)) / sd(u_j)`` over this batch's posterior means, the factor
        that turns ``|A_ij|`` into the edge's standardised effect (``l1_graph_on: effect``); no
        gradient. A child whose sd is below ``COLLAPSED_FRACTION`` of the latents' median counts as
        collapsed: its factor is capped, so edges into it cost the most, not an overflow."""
        c = self.config
        means = self.encode(batch)
        u = jnp.concatenate([means[block] for block in c.block_slices()], axis=-1)
        terms = normalised_edge_functions(u, self.mech_w1, self.mech_b1, self.mech_w2)
        child_sd = jnp.std(u, axis=0)
        floor = COLLAPSED_FRACTION * jnp.median(child_sd) + 1e-12
        scales = jnp.std(terms, axis=0) / jnp.maximum(child_sd, floor)[None, :]
        return jax.lax.stop_gradient(jnp.minimum(scales, 1e3))

    def encode(self, batch: dict[str, jnp.ndarray]):
        """Posterior means of s and each z(m)."""
        shared, blocks, _ = self.posteriors(batch)
        out = {m: mean for m, (mean, _) in blocks.items()}
        out["shared"] = shared.mean if shared is not None else jnp.zeros((next(iter(batch.values())).shape[0], 0))
        return out
