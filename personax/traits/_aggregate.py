"""Aggregating raters: the study's median rule and a Bayesian ordinal rater model.

:func:`median_rule` is the study's rule: per person and trait, drop the 0s
("insufficient information") and missing scores and take the median of the
rest (x.5 is possible); no valid score gives a missing value.

:func:`bayes_ordinal` fits, per trait, a graded (ordered-logistic) rater model
in NumPyro, an aggregate the study did not have::

    theta[i, t] ~ Normal(0, 1)                      person i's latent trait t
    bias[r, t]  ~ Normal(0, 1)                      rater r's leniency on trait t
    disc[r]     ~ LogNormal(0, 0.5)                 rater r's discrimination
    cut[r]      ordered, first ~ Normal(-1, 1.5), gaps ~ LogNormal(0, 0.5)
    y[i, r, t]  ~ OrderedLogistic(disc[r] * theta[i, t] + bias[r, t], cut[r])

over every valid (non-zero) score y in 1..K. Raters may use different numbers of
levels (cutpoints are padded to the largest K). The posterior mean and SD of
``theta`` are the person's aggregate and its uncertainty on the latent
(standardised) scale; people with no valid score get NaN. Inference is
stochastic variational (mean-field normal guide, default, seconds for thousands
of people) or NUTS.

Example:
    >>> import numpy as np
    >>> median_rule(np.array([[1, 3, 0], [0, 0, np.nan], [1, 2, 0]], dtype=float)).tolist()
    [2.0, nan, 1.5]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def median_rule(scores: np.ndarray) -> np.ndarray:
    """Median over raters (axis 1) after dropping 0s and NaN; NaN when nothing is left."""
    values = np.asarray(scores, dtype=float).copy()
    values[values == 0] = np.nan
    out = np.full(values.shape[0], np.nan)
    has = ~np.isnan(values).all(axis=1)
    out[has] = np.nanmedian(values[has], axis=1)
    return out


def _observations(scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Long format of valid scores: person, rater, trait, level (0-based), and the largest K."""
    persons, raters, traits, levels = [], [], [], []
    for r, matrix in enumerate(scores.values()):
        matrix = np.asarray(matrix, dtype=float)
        valid = np.isfinite(matrix) & (matrix > 0)
        i, t = np.nonzero(valid)
        persons.append(i)
        raters.append(np.full(len(i), r))
        traits.append(t)
        levels.append(np.rint(matrix[i, t]).astype(int))
    level = np.concatenate(levels) if levels else np.zeros(0, int)
    top = int(level.max()) if len(level) else 2
    return np.concatenate(persons), np.concatenate(raters), np.concatenate(traits), level - 1, max(top, 2)


def bayes_ordinal(
    scores: Mapping[str, np.ndarray],
    *,
    method: str = "svi",
    steps: int = 2000,
    learning_rate: float = 0.05,
    samples: int = 400,
    warmup: int = 400,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Posterior mean and SD of each person's latent traits under the ordinal rater model.

    Args:
        scores: Rater name -> ``n x T`` scores (levels 1..K, 0 / NaN = no valid score).
        method: ``svi`` (mean-field variational, default) or ``nuts``.
        steps: SVI optimisation steps.
        learning_rate: SVI step size (Adam).
        samples: NUTS draws after warm-up (SVI reads the normal guide's mean and SD directly).
        warmup: NUTS warm-up steps.
        seed: PRNG seed.

    Returns:
        ``mean`` and ``sd`` (``n x T``, NaN where a person has no valid score for
        the trait), and per-rater ``bias`` (``R x T``) and ``discrimination`` (``R``)
        posterior means.
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO

    matrices = list(scores.values())
    if not matrices:
        raise ValueError("bayes_ordinal needs at least one rater")
    n, n_traits = np.asarray(matrices[0]).shape
    n_raters = len(matrices)
    person, rater, trait, level, top = _observations(scores)
    if len(level) == 0:
        nan = np.full((n, n_traits), np.nan)
        return {"mean": nan, "sd": nan.copy(), "bias": np.full((n_raters, n_traits), np.nan),
                "discrimination": np.full(n_raters, np.nan)}

    def model(person, rater, trait, level=None):
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0).expand([n, n_traits]).to_event(2))
        bias = numpyro.sample("bias", dist.Normal(0.0, 1.0).expand([n_raters, n_traits]).to_event(2))
        disc = numpyro.sample("disc", dist.LogNormal(0.0, 0.5).expand([n_raters]).to_event(1))
        first = numpyro.sample("cut_first", dist.Normal(-1.0, 1.5).expand([n_raters, 1]).to_event(2))
        if top > 2:
            gaps = numpyro.sample("cut_gaps", dist.LogNormal(0.0, 0.5).expand([n_raters, top - 2]).to_event(2))
            cuts = jnp.concatenate([first, first + jnp.cumsum(gaps, axis=1)], axis=1)
        else:
            cuts = first
        eta = disc[rater] * theta[person, trait] + bias[rater, trait]
        with numpyro.plate("obs", len(person)):
            numpyro.sample("y", dist.OrderedLogistic(eta, cuts[rater]), obs=level)

    args = (jnp.asarray(person), jnp.asarray(rater), jnp.asarray(trait), jnp.asarray(level))
    key = jax.random.PRNGKey(seed)
    sites = [("theta", (n, n_traits), dist.Normal, 0.0), ("bias", (n_raters, n_traits), dist.Normal, 0.0),
             ("disc", (n_raters,), dist.LogNormal, 0.0), ("cut_first", (n_raters, 1), dist.Normal, -0.5)]
    if top > 2:
        sites.append(("cut_gaps", (n_raters, top - 2), dist.LogNormal, 0.0))

    def guide(person, rater, trait, level=None):
        # Mean-field normal guide, written out (an AutoNormal's search for initial values compiles slowly).
        for site, shape, family, init in sites:
            loc = numpyro.param(f"{site}_loc", jnp.full(shape, init))
            scale = numpyro.param(f"{site}_scale", jnp.full(shape, 0.1), constraint=dist.constraints.softplus_positive)
            numpyro.sample(site, family(loc, scale).to_event(len(shape)))

    if method == "svi":
        # A jitted update in a Python loop compiles much faster than SVI.run's fused loop.
        # The step size decays tenfold over the run, so the guide's means settle instead of
        # jittering with the single-sample ELBO gradient (jitter would break ties at random).
        schedule = lambda i: learning_rate * 0.1 ** (i / max(1, int(steps)))  # noqa: E731
        svi = SVI(model, guide, numpyro.optim.Adam(schedule), Trace_ELBO())
        state = jax.jit(svi.init)(key, *args)  # traced once, not op by op
        update = jax.jit(svi.update)
        for _ in range(int(steps)):
            state, _loss = update(state, *args)
        params = svi.get_params(state)
        mean = np.array(params["theta_loc"], dtype=float)
        sd = np.array(params["theta_scale"], dtype=float)
        bias = np.asarray(params["bias_loc"], dtype=float)
        disc = np.exp(np.asarray(params["disc_loc"]) + np.asarray(params["disc_scale"]) ** 2 / 2)
    elif method == "nuts":
        mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, progress_bar=False)
        mcmc.run(key, *args)
        draws = mcmc.get_samples()
        theta = np.asarray(draws["theta"])
        mean, sd = theta.mean(axis=0), theta.std(axis=0)
        bias = np.asarray(draws["bias"]).mean(axis=0)
        disc = np.asarray(draws["disc"]).mean(axis=0)
    else:
        raise ValueError(f"method must be 'svi' or 'nuts', got {method!r}")
    observed = np.zeros((n, n_traits), dtype=bool)
    observed[person, trait] = True
    mean[~observed] = np.nan
    sd[~observed] = np.nan
    return {"mean": mean, "sd": sd, "bias": bias, "discrimination": disc}
