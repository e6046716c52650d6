"""The original study's CRL design, reproduced for comparison only. Not for real use.

This is a JAX port of the *design* of the PersonaX study's causal representation
learning code, kept faithful **including its defects**, so that the benchmark can
measure what those defects cost next to :func:`personax.crl.fit`. Use
:func:`personax.crl.fit` for anything else.

The design:

* one deterministic MLP autoencoder per measurement x(m,k): the encoder outputs
  ``(z(m,k), eta(m,k))``, the decoder reconstructs x(m,k) from that pair only;
* with ``shared_dim > 0``, a separate autoencoder on the concatenation of every
  measurement outputs the "shared" latent s (and its own eta, which is left out of
  the likelihood); s is never given to the modality decoders;
* the latents ``u = [s, z(1), ..., z(M)]`` — where z(m) is the *first* measurement's
  z (``first_measurement_only=True``, as in the study) or the mean over measurements —
  are mapped to noises by one small ReLU MLP per latent that sees ``(u_j, mean of the
  parents of u_j)``, the parents read off a lower-triangular matrix A thresholded at
  ``alpha_threshold`` (entry ``A[child, parent]``; A starts at 0.5);
* a RealNVP flow (affine coupling, ``sigmoid(. + 2)`` scales) maps the noises to eps;
  the "NLL" is the standard-normal NLL of ``[eps, all eta(m,k)]`` plus the flow's
  log-determinant;
* an L1 penalty on one block of A (plus the study's connection-count penalty);
* full-batch Adam with the study's StepLR schedule; loss
  ``recon_weight * (sum of per-measurement MSEs + shared MSE + gap_weight * z gap)
  + nll_weight * NLL + l1_weight * L1``.

Defects kept on purpose (each pinned by ``tests/crl/test_reference.py``):

1. A enters the forward pass only through the hard comparison ``A > threshold``, so
   the likelihood and reconstruction give it **zero gradient**; only the L1 term moves
   it, by about ``learning_rate`` per Adam step. Entries outside the L1 block never
   move, and with the study's settings (lr 3e-4, 1000 epochs: at most 0.3 of 0.5) the
   block never reaches the threshold either: the "learned graph" is **the complete DAG
   in index order**, including edges among the shared latents.
2. The parents enter as an **unweighted mean**, so the mechanism cannot tell parents apart.
3. The **Jacobian of u -> noise is missing** from the NLL, so the NLL can be lowered
   by shrinking the noise (the per-latent MLPs' outputs, and the deterministic eta's),
   without any change to how well the data are explained.
4. The flow's coupling layers **never permute** the halves: the first half of the noise
   passes through all of them unchanged (with an odd number of latents the first half
   is the smaller one; the study's code only ran with an even number).
5. The L1 block is cut with the *first modality's* latent size as stride from index 0,
   ignoring the shared block, so with ``shared_dim > 0`` it does not line up with the
   cross-modal block (as in the study's real-data code).
6. With ``first_measurement_only=True`` (the default, as in the study) measurements 2..K
   are reconstructed but never reach the latents that are reported or enter the prior;
   they are tied to measurement 1 only by a ``gap_weight = 1e-5`` Frobenius penalty.
7. s is never given to the modality decoders; no input standardisation (the study
   divided image embeddings by 255: ``input_scale=1/255`` reproduces that).
8. Model selection: the study kept the checkpoint with the best MCC against the ground
   truth *on its evaluation split*. ``selection="in_sample"`` (with ``truth=``)
   reproduces that; the default ``selection="validation"`` follows personax's protocol
   instead (the best *validation* loss of the study's own objective; report numbers on
   the test split, whose rows equal those of :func:`personax.crl.fit` with the same seed).

Not reproduced: the study's scripts themselves, its data loading, the post-hoc PC run
(the ``crl`` stage runs PC on any model's latents), the optional rank-Gaussianisation.

Example:
    >>> from personax.data.synthetic import make_multimodal_numeric
    >>> bench = make_multimodal_numeric(200, seed=0)
    >>> ref = fit_reference(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2,
    ...                     max_epochs=5, hidden=(16,))
    >>> sorted(ref.encode(bench.modalities))
    ['image', 'shared', 'text']
    >>> int(ref.graph().to_numpy().sum())  # complete DAG over 6 latents
    15
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import serialization

from personax.crl._fit import _data_fields, _split
from personax.crl._model import CRLConfig, MLP

FORMAT = "personax-crl-reference-v1"
LOG_2PI = float(np.log(2 * np.pi))


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """Every option of the reference design (the study's values in brackets).

    Attributes:
        shared_dim, latent_dims, measurements, input_dims: As in :class:`personax.crl.CRLConfig`.
        eta_dim: Per-measurement noise size [1].
        hidden: Encoder widths, decoders reversed, ELU [512, 256, 128 on real data;
            128, 64 on MNIST]. The default is smaller, for the synthetic benchmark.
        mechanism_hidden: Hidden width of each latent's noise MLP [4].
        flow_layers, flow_hidden: RealNVP coupling layers and their width [5, 16].
        alpha_threshold: Edge threshold on A [0.01].
        adjacency_init: Initial value of A (plus 1e-5 noise) [0.5].
        learning_rate, lr_step, lr_gamma: Adam and StepLR [3e-4 real, 2e-6 MNIST; 1e4; 0.99].
        max_epochs: Full-batch steps [1000 real, 3000 MNIST].
        recon_weight, nll_weight, l1_weight: Loss weights [1 real, 2 MNIST; 0.01; 0.001].
        gap_weight: Weight of the Frobenius gap between measurement 1's z and the others' [1e-5 real, 0 MNIST].
        input_scale: Inputs are multiplied by this [1/255 for images and image embeddings].
        first_measurement_only: z(m) is measurement 1's z [True]; False averages the
            measurements' z.
        selection: ``"validation"`` (best validation loss; personax's protocol),
            ``"last"``, or ``"in_sample"`` (best MCC against ``truth`` on the test split:
            the study's convention, which leaks the test split into model selection).
        eval_every: Epochs between checkpoints considered for selection [100].
        val_fraction, test_fraction, seed: Splits identical to :func:`personax.crl.fit`'s.
    """

    shared_dim: int
    latent_dims: dict[str, int]
    measurements: dict[str, int]
    input_dims: dict[str, int]
    eta_dim: int = 1
    hidden: tuple[int, ...] = (128, 128)
    mechanism_hidden: int = 4
    flow_layers: int = 5
    flow_hidden: int = 16
    alpha_threshold: float = 1e-2
    adjacency_init: float = 0.5
    learning_rate: float = 3e-4
    lr_step: int = 10_000
    lr_gamma: float = 0.99
    max_epochs: int = 1000
    recon_weight: float = 1.0
    nll_weight: float = 1e-2
    l1_weight: float = 1e-3
    gap_weight: float = 1e-5
    input_scale: float = 1.0
    first_measurement_only: bool = True
    selection: str = "validation"
    eval_every: int = 10
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0

    latent_names = CRLConfig.latent_names  # the same names and order as personax's model
    total_latent = CRLConfig.total_latent

    @property
    def keys(self) -> list[str]:
        return [f"{m}_{k}" for m in self.latent_dims for k in range(self.measurements[m])]


class _CouplingNet(nn.Module):
    """ReLU MLP of one coupling layer (Xavier-normal weights, zero biases, as in the study)."""

    width: int
    out: int

    @nn.compact
    def __call__(self, x):
        dense = lambda n: nn.Dense(n, kernel_init=nn.initializers.xavier_normal())  # noqa: E731
        x = nn.relu(dense(self.width)(x))
        x = nn.relu(dense(self.width)(x))
        return dense(self.out)(x)


def _torch_uniform(fan_in: int):
    bound = 1.0 / np.sqrt(fan_in)
    return lambda key, shape: jax.random.uniform(key, shape, minval=-bound, maxval=bound)


class ReferenceModel(nn.Module):
    """The study's design; see the module docstring."""

    config: ReferenceConfig

    def setup(self):
        c = self.config
        self.encoders = {key: MLP((*c.hidden, c.latent_dims[key.rsplit("_", 1)[0]] + c.eta_dim)) for key in c.keys}
        self.decoders = {key: MLP((*reversed(c.hidden), c.input_dims[key.rsplit("_", 1)[0]])) for key in c.keys}
        if c.shared_dim:
            total_input = sum(c.input_dims[key.rsplit("_", 1)[0]] for key in c.keys)
            self.shared_encoder = MLP((*c.hidden, c.shared_dim + 1))
            self.shared_decoder = MLP((*reversed(c.hidden), total_input))
        d, h = c.total_latent, c.mechanism_hidden

        def adjacency_init(key, shape):
            a = c.adjacency_init + 1e-5 * jax.random.normal(key, shape)
            return a * (1.0 - jnp.eye(shape[0]))

        self.adjacency = self.param("adjacency", adjacency_init, (d, d))
        self.mech_w1 = self.param("mech_w1", _torch_uniform(2), (d, 2, h))
        self.mech_b1 = self.param("mech_b1", _torch_uniform(2), (d, h))
        self.mech_w2 = self.param("mech_w2", _torch_uniform(h), (d, h))
        self.mech_b2 = self.param("mech_b2", _torch_uniform(h), (d,))
        self.flow = [_CouplingNet(c.flow_hidden, 2 * (d - d // 2)) for _ in range(c.flow_layers)]

    # ------------------------------------------------------------------ pieces
    def encode_all(self, batch: Mapping[str, jnp.ndarray]):
        """Every encoder's output: s, eta_s, and (z, eta) per measurement."""
        c = self.config
        z, eta = {}, {}
        for key in c.keys:
            out = self.encoders[key](batch[key])
            dim = c.latent_dims[key.rsplit("_", 1)[0]]
            z[key], eta[key] = out[:, :dim], out[:, dim:]
        s = eta_s = None
        if c.shared_dim:
            out = self.shared_encoder(jnp.concatenate([batch[key] for key in c.keys], axis=-1))
            s, eta_s = out[:, : c.shared_dim], out[:, c.shared_dim :]
        return s, eta_s, z, eta

    def blocks(self, s, z) -> dict[str, jnp.ndarray]:
        """The reported latent blocks: measurement 1's z, or the mean over measurements."""
        c = self.config
        n = next(iter(z.values())).shape[0]
        out = {"shared": s if s is not None else jnp.zeros((n, 0))}
        for m in c.latent_dims:
            parts = [z[f"{m}_{k}"] for k in range(c.measurements[m])]
            out[m] = parts[0] if c.first_measurement_only else sum(parts) / len(parts)
        return out

    def parent_mask(self) -> jnp.ndarray:
        """``mask[child, parent]`` in {0, 1}: lower-triangular A above the threshold (no gradient)."""
        d = self.config.total_latent
        matrix = self.adjacency * jnp.tril(jnp.ones((d, d)), -1)
        thresholded = matrix * (matrix > self.config.alpha_threshold)
        return jax.lax.stop_gradient((thresholded > self.config.alpha_threshold).astype(matrix.dtype))

    def noise(self, u: jnp.ndarray) -> jnp.ndarray:
        """Per-latent MLP of (u_j, unweighted mean of u_j's parents); 0 stands in for no parents."""
        mask = self.parent_mask()
        count = mask.sum(axis=1)
        parent_mean = (u @ mask.T) / jnp.maximum(count, 1.0)
        inputs = jnp.stack([u, parent_mean], axis=-1)  # (batch, d, 2)
        hidden = nn.relu(jnp.einsum("bjk,jkh->bjh", inputs, self.mech_w1) + self.mech_b1)
        return jnp.einsum("bjh,jh->bj", hidden, self.mech_w2) + self.mech_b2

    def flow_forward(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """RealNVP without permutations: the first half conditions every layer and is never transformed."""
        half = x.shape[1] // 2
        log_det = jnp.zeros(x.shape[0])
        for net in self.flow:
            x1, x2 = x[:, :half], x[:, half:]
            shift, scale = jnp.split(net(x1), 2, axis=-1)
            scale = nn.sigmoid(scale + 2.0)
            x = jnp.concatenate([x1, x2 * scale + shift], axis=-1)
            log_det = log_det + jnp.sum(jnp.log(scale), axis=-1)
        return x, log_det

    def sparsity(self) -> jnp.ndarray:
        """L1 on the study's A block (stride = first modality's size, from index 0) + connection penalty."""
        c = self.config
        d = c.total_latent
        matrix = self.adjacency * jnp.tril(jnp.ones((d, d)), -1)
        stride, n_mod = next(iter(c.latent_dims.values())), len(c.latent_dims)
        pieces = [matrix[i * stride : (i + 1) * stride, j * stride : (j + 1) * stride]
                  for i in range(1, n_mod) for j in range(i)]
        pieces = [p for p in pieces if p.size]
        if not pieces:
            return jnp.zeros(())
        block = jnp.concatenate(pieces, axis=0)
        connections = jnp.sum(block * (block > c.alpha_threshold) != 0).astype(block.dtype)
        penalty = jnp.where(connections < stride, (connections - stride * (n_mod - 1)) ** 2, 0.0)
        return jnp.sum(jnp.abs(block)) + jax.lax.stop_gradient(penalty)

    # ------------------------------------------------------------------ losses
    def __call__(self, batch: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        """The study's loss terms (means over the batch) and their weighted total."""
        c = self.config
        s, eta_s, z, eta = self.encode_all(batch)
        recon = 0.0
        for key in c.keys:
            recon = recon + jnp.mean((self.decoders[key](jnp.concatenate([z[key], eta[key]], -1)) - batch[key]) ** 2)
        if c.shared_dim:
            everything = jnp.concatenate([batch[key] for key in c.keys], axis=-1)
            recon = recon + jnp.mean((self.shared_decoder(jnp.concatenate([s, eta_s], -1)) - everything) ** 2)
        gap = 0.0
        for m in c.latent_dims:
            if c.measurements[m] > 1:
                first = z[f"{m}_0"]
                gap = gap + sum(jnp.sqrt(jnp.sum((first - z[f"{m}_{k}"]) ** 2))
                                for k in range(1, c.measurements[m])) / (c.measurements[m] - 1)
        recon = recon + c.gap_weight * gap
        blocks = self.blocks(s, z)
        u = jnp.concatenate([blocks["shared"], *(blocks[m] for m in c.latent_dims)], axis=-1)
        eps, log_det = self.flow_forward(self.noise(u))
        joint = jnp.concatenate([eps, *(eta[key] for key in c.keys)], axis=-1)
        log_prob = -0.5 * jnp.sum(joint**2, axis=-1) - 0.5 * LOG_2PI * joint.shape[1] + log_det
        nll = -jnp.mean(log_prob)  # no log|d noise / d u|: the missing Jacobian
        sparsity = self.sparsity()
        total = c.recon_weight * recon + c.nll_weight * nll + c.l1_weight * sparsity
        return {"total": total, "recon": recon, "nll": nll, "sparsity": sparsity}

    def encode(self, batch: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        s, _, z, _ = self.encode_all(batch)
        return self.blocks(s, z)


# ---------------------------------------------------------------------- fitted model


def _flatten(modalities: Mapping[str, Sequence[np.ndarray]], config: ReferenceConfig) -> dict[str, np.ndarray]:
    out = {}
    for m in config.latent_dims:
        for k in range(config.measurements[m]):
            x = np.asarray(modalities[m][k], np.float32)
            out[f"{m}_{k}"] = x.reshape(len(x), -1) * np.float32(config.input_scale)
    return out


@dataclasses.dataclass
class FittedReference:
    """A fitted reference model (the study's design): encode, read its graph, save it.

    Attributes:
        config: The :class:`ReferenceConfig`.
        params: Flax parameters of the selected checkpoint.
        history: One row per checkpoint: epoch, train loss terms, ``val_loss``, and
            ``in_sample_mcc`` with ``selection="in_sample"``.
        splits: Row indices of train / val / test (equal to :func:`personax.crl.fit`'s
            for the same seed and fractions).
        fit_seconds: Wall time of training.
        selected_epoch: Epoch of the kept checkpoint.
    """

    config: ReferenceConfig
    params: Any
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    splits: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    fit_seconds: float = 0.0
    selected_epoch: int = 0
    _encode_fn: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def module(self) -> ReferenceModel:
        return ReferenceModel(self.config)

    def encode(self, modalities: Mapping[str, Sequence[np.ndarray]], *, chunk: int = 4096) -> dict[str, np.ndarray]:
        """``"shared"`` (the shared autoencoder's code; width 0 without one) and one block per modality.

        A modality's block is its *first* measurement's z when
        ``config.first_measurement_only`` (the study's choice), else the mean of its
        measurements' z.
        """
        data = _flatten(modalities, self.config)
        n = len(next(iter(data.values())))
        if self._encode_fn is None:
            module = self.module
            self._encode_fn = jax.jit(lambda p, b: module.apply({"params": p}, b, method=ReferenceModel.encode))
        pieces = [self._encode_fn(self.params, {k: v[i : i + chunk] for k, v in data.items()}) for i in range(0, n, chunk)]
        return {name: np.concatenate([np.asarray(p[name]) for p in pieces]) for name in pieces[0]}

    def loss(self, modalities: Mapping[str, Sequence[np.ndarray]]) -> dict[str, float]:
        """The study's loss terms on these rows (``total``, ``recon``, ``nll``, ``sparsity``)."""
        module = self.module
        terms = jax.jit(lambda p, b: module.apply({"params": p}, b))(self.params, _flatten(modalities, self.config))
        return {k: float(v) for k, v in terms.items()}

    def graph(self) -> pd.DataFrame:
        """The graph the design uses: 1 where ``A[child, parent]`` exceeds the threshold, as
        ``[parent, child]`` over the latent names. Expected: the complete DAG in index order."""
        matrix = np.tril(np.asarray(self.params["adjacency"]), -1)  # ReferenceModel.parent_mask, in NumPy
        mask = (matrix * (matrix > self.config.alpha_threshold) > self.config.alpha_threshold).astype(float)
        names = self.config.latent_names
        return pd.DataFrame(mask.T, index=names, columns=names)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Writes ``config.json`` and ``weights.msgpack`` (no pickle)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "config": dataclasses.asdict(self.config), "history": self.history,
                   "selected_epoch": self.selected_epoch}
        (directory / "config.json").write_text(json.dumps(payload, indent=2))
        (directory / "weights.msgpack").write_bytes(serialization.to_bytes(self.params))
        return directory


def _init_params(config: ReferenceConfig, key: jax.Array):
    batch = {key_: jnp.zeros((2, config.input_dims[key_.rsplit("_", 1)[0]])) for key_ in config.keys}
    return jax.jit(ReferenceModel(config).init)(key, batch)["params"]  # one compile, not one per op


def load_reference(directory: str | Path) -> FittedReference:
    """Reloads :meth:`FittedReference.save_pretrained` output (JSON + msgpack only)."""
    directory = Path(directory)
    payload = json.loads((directory / "config.json").read_text())
    if payload.get("format") != FORMAT:
        raise ValueError(f"{directory / 'config.json'} is not a reference CRL model (format {payload.get('format')!r})")
    values = dict(payload["config"])
    values["hidden"] = tuple(int(v) for v in values["hidden"])
    config = ReferenceConfig(**values)
    batch = {key: jnp.zeros((2, config.input_dims[key.rsplit("_", 1)[0]])) for key in config.keys}
    template = jax.eval_shape(ReferenceModel(config).init, jax.random.key(0), batch)["params"]  # structure only
    params = serialization.from_bytes(template, (directory / "weights.msgpack").read_bytes())
    return FittedReference(config=config, params=params, history=payload.get("history", []),
                           selected_epoch=int(payload.get("selected_epoch", 0)))


def fit_reference(
    modalities: Mapping[str, Sequence[np.ndarray]],
    *,
    latent_dims: Mapping[str, int],
    shared_dim: int,
    seed: int = 0,
    truth: np.ndarray | None = None,
    progress: bool = False,
    **overrides: Any,
) -> FittedReference:
    """Fits the original study's design (for comparison only; see the module docstring).

    Args:
        modalities: modality name -> list of measurement arrays (n x d each, same rows).
        latent_dims: modality name -> size of z(m), in the latents' index order.
        shared_dim: Size of the shared latent (0: no shared autoencoder, as in the study's MNIST run).
        seed: Seed of splits and initialisation (training is full-batch and deterministic).
        truth: n x total-latent true latents, only for ``selection="in_sample"``.
        progress: Print a line per checkpoint.
        **overrides: Any :class:`ReferenceConfig` field.

    Returns:
        The checkpoint chosen by ``selection``; trained on the training split only.
    """
    latent_dims = dict(latent_dims)
    n, fields = _data_fields(modalities, latent_dims, shared_dim, seed)
    for name, dims in fields["input_dims"].items():
        if not isinstance(dims, int):  # the study's architecture has one width per modality
            raise ValueError(f"measurements of {name!r} differ in dimension: {list(dims)}; the reference model "
                             "needs one width per modality")
    for name, arrays in modalities.items():  # personax masks missing entries; the study's design cannot
        for k, x in enumerate(arrays):
            if np.isnan(np.asarray(x, dtype=np.float64)).any():
                raise ValueError(f"modality {name!r} measurement {k} has missing values (NaN): the study's design "
                                 "has no missing-data handling; drop those rows or use personax.crl.fit")
    known = {f.name for f in dataclasses.fields(ReferenceConfig)} - {"shared_dim", "latent_dims", "measurements",
                                                                       "input_dims", "seed"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown reference option(s) {unknown}; valid: {sorted(known)}")
    if "hidden" in overrides:
        overrides["hidden"] = tuple(int(h) for h in overrides["hidden"])
    config = ReferenceConfig(**fields, **overrides)
    if config.selection not in ("validation", "last", "in_sample"):
        raise ValueError(f"selection must be 'validation', 'last' or 'in_sample', got {config.selection!r}")
    if config.selection == "in_sample":
        if truth is None:
            raise ValueError("selection='in_sample' (the study's convention) needs truth= (n x latent array)")
        truth = np.asarray(truth, float).reshape(n, -1)
    splits = _split(n, config)
    data = _flatten(modalities, config)
    train = {k: jnp.asarray(v[splits["train"]]) for k, v in data.items()}
    val = {k: jnp.asarray(v[splits["val"]]) for k, v in data.items()}
    test = {k: jnp.asarray(v[splits["test"]]) for k, v in data.items()}

    module = ReferenceModel(config)
    params = _init_params(config, jax.random.key(config.seed))
    schedule = optax.exponential_decay(config.learning_rate, config.lr_step, config.lr_gamma, staircase=True)
    optimizer = optax.adam(schedule)
    opt_state = optimizer.init(params)

    def loss_fn(p, batch):
        terms = module.apply({"params": p}, batch)
        return terms["total"], terms

    @jax.jit
    def run_epochs(p, state, batch, length_marker):
        def step(carry, _):  # one full-batch Adam step per epoch, as in the study
            p, state = carry
            (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, batch)
            updates, state = optimizer.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), terms

        (p, state), terms = jax.lax.scan(step, (p, state), length_marker)
        return p, state, jax.tree_util.tree_map(lambda t: t[-1], terms)

    validation = jax.jit(lambda p, batch: module.apply({"params": p}, batch)["total"])
    encode = jax.jit(lambda p, batch: module.apply({"params": p}, batch, method=ReferenceModel.encode))

    start = time.perf_counter()
    history: list[dict[str, float]] = []
    best, best_params, best_epoch = -np.inf, params, 0
    done = 0
    while done < config.max_epochs:
        length = min(config.eval_every, config.max_epochs - done)
        params, opt_state, terms = run_epochs(params, opt_state, train, jnp.zeros(length))
        done += length
        row = {"epoch": done, "train_loss": float(terms["total"]), "recon": float(terms["recon"]),
               "nll": float(terms["nll"]), "sparsity": float(terms["sparsity"]), "val_loss": float(validation(params, val))}
        if not np.isfinite(row["train_loss"]):
            raise FloatingPointError(f"training diverged at epoch {done} (loss {row['train_loss']})")
        if config.selection == "validation":
            score = -row["val_loss"]
        elif config.selection == "in_sample":
            from personax.crl import diagnostics

            blocks = encode(params, test)
            learned = np.concatenate([np.asarray(blocks["shared"]), *(np.asarray(blocks[m]) for m in config.latent_dims)], 1)
            score = row["in_sample_mcc"] = diagnostics.mcc(learned, truth[splits["test"]])["mcc"]
        else:
            score = float(done)
        history.append(row)
        if progress:
            print(", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
        if score > best:
            best, best_params, best_epoch = score, params, done
    return FittedReference(config=config, params=jax.device_get(best_params), history=history, splits=splits,
                           fit_seconds=time.perf_counter() - start, selected_epoch=best_epoch)
