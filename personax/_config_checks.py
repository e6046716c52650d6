"""Range and type checks of the run config, before any stage runs.

Hydra accepts any value an override gives (``independence.alpha=2``,
``stages=ingest``, ``seed=abc``); the stages would then compute nonsense or fail
deep inside with a bare ``KeyError``. :func:`check_config` checks every value
with a known valid range once, at load, and raises :class:`ConfigError` with one
line per run that names each bad value and what is allowed.

Example:
    >>> from omegaconf import OmegaConf
    >>> try:
    ...     check_config(OmegaConf.create({"seed": 0, "stages": "ingest", "independence": {"alpha": 2}}))
    ... except ConfigError as err:
    ...     print(err)
    stages must be a list, e.g. stages=[ingest] (got the string 'ingest'); independence.alpha must be a number in (0, 1), got 2
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

_ABSENT = object()


class ConfigError(ValueError):
    """A config value is of the wrong type or out of range (the message is one line)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, ListConfig))


def _shown(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(low: int) -> tuple[Callable[[Any], bool], str]:
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    return (lambda v: _is_int(v) and v >= low), what


def _open_unit() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_number(v) and 0 < v < 1), "a number in (0, 1)"


def _optional(rule: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    check, what = rule
    return (lambda v: v is None or check(v)), f"null or {what}"


def _boolean() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, bool)), "true or false"


def _string_list() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is None or (_is_list(v) and all(isinstance(x, str) for x in v))), "null or a list of names"


# Dotted path -> (check, what is allowed). Absent entries are not checked (each data source has its own keys).
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _integer(0),
    "debug": _boolean(),
    "data.n": _integer(1),
    "data.seed": _integer(0),
    "data.strict": _boolean(),
    "data.images": _boolean(),
    "data.image_size": _integer(1),
    "data.measurements": _integer(1),
    "data.max_image_bytes": _integer(1),
    "data.max_image_pixels": _integer(1),
    "embeddings.image.batch_size": _integer(1),
    "embeddings.image.num_workers": _integer(0),
    "embeddings.text.batch_size": _integer(1),
    "independence.alpha": _open_unit(),
    "independence.min_rows": _integer(1),
    "independence.max_categories": _integer(1),
    "independence.block_size": _integer(1),
    "independence.seed": _integer(0),
    "independence.features": _string_list(),
    "independence.conditioning": _string_list(),
    "independence.discrete_features": _string_list(),
    "traits.repeats": _integer(1),
    "traits.limit": _optional(_integer(1)),
    "traits.max_input_chars": _integer(1),
    "traits.reliability.alpha": _open_unit(),
    "traits.aggregate.bayes.steps": _integer(1),
    "traits.aggregate.bayes.samples": _integer(1),
    "crl.seed": _integer(0),
    "crl.shared_dim": _integer(0),
    "crl.pc.alpha": _open_unit(),
    "crl.fit.max_epochs": _integer(1),
    "crl.fit.batch_size": _integer(1),
    "crl.fit.restarts": _integer(1),
    "report.max_rejected_rows": _integer(0),
    "report.max_dependent_pairs": _integer(0),
}


def _select(config: Any, path: str) -> Any:
    if OmegaConf.is_config(config):
        try:
            return OmegaConf.select(config, path, default=_ABSENT, throw_on_missing=False)
        except Exception as err:  # noqa: BLE001 - an interpolation that cannot resolve
            raise ConfigError(f"{path} cannot be resolved: {err}".splitlines()[0]) from err
    node = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _interpolated(config: Any, path: str) -> bool:
    if not OmegaConf.is_config(config) or "." not in path:
        return False
    parent_path, key = path.rsplit(".", 1)
    parent = OmegaConf.select(config, parent_path, default=None, throw_on_resolution_failure=False)
    return OmegaConf.is_config(parent) and OmegaConf.is_interpolation(parent, key)


def _stage_problems(config: Any) -> list[str]:
    from personax.pipeline import STAGES  # registry only; no stage module is imported

    problems = []
    stages = _select(config, "stages")
    if stages is not _ABSENT:
        if isinstance(stages, str):
            problems.append(f"stages must be a list, e.g. stages=[{stages}] (got the string {stages!r})")
        elif not _is_list(stages) or not all(isinstance(s, str) for s in stages):
            problems.append(f"stages must be a list of stage names, e.g. stages=[ingest,traits], got {_shown(stages)}")
        else:
            unknown = [s for s in stages if s not in STAGES]
            if unknown:
                problems.append(f"stages names unknown stage(s) {unknown}; known: {sorted(STAGES)}")
    force = _select(config, "force")
    if force is not _ABSENT and not isinstance(force, bool):
        names = [force] if isinstance(force, str) else list(force) if _is_list(force) else None
        if names is None or not all(isinstance(n, str) and n in STAGES for n in names):
            problems.append(f"force must be true, false or a list of stage names (known: {sorted(STAGES)}), "
                            f"got {_shown(force)}")
    for path in ("independence.conditioning", "independence.features", "independence.tests", "traits.run_formats"):
        value = _select(config, path)
        if isinstance(value, str):
            problems.append(f"{path} must be a list, e.g. {path}=[{value}] (got the string {value!r})")
    return problems


def _crl_problems(config: Any) -> list[str]:
    """Per-modality fit options must name modalities the crl stage has (the default keys its sparse
    decoder by ``text``, the raters' scores; a config with other modality names must say so)."""
    dims = _select(config, "crl.latent_dims")
    if not isinstance(dims, Mapping):
        return []
    problems = []
    for option in ("sparse_decoder", "ordinal"):
        value = _select(config, f"crl.fit.{option}")
        if isinstance(value, Mapping) and set(value) - set(dims):
            problems.append(f"crl.fit.{option} names modalities {sorted(set(value) - set(dims))} that crl.latent_dims "
                            f"does not have ({sorted(dims)}): remove the option with ~crl.fit.{option}, or key it "
                            f"by one of your tabular modalities")
    return problems


def check_config(config: DictConfig | Mapping[str, Any]) -> None:
    """Checks the types and ranges of the run config's values.

    Every bad value is listed in one line: ``path must be <allowed>, got <value>``.

    Args:
        config: The composed run config.

    Raises:
        ConfigError: At least one value is of the wrong type or out of range.
    """
    problems = _stage_problems(config) + _crl_problems(config)
    for path, (check, allowed) in RULES.items():
        if any(problem.startswith(f"{path} ") for problem in problems):
            continue
        value = _select(config, path)
        if value is _ABSENT:
            continue
        if not check(value):
            if _interpolated(config, path) and any(p.endswith(f"got {_shown(value)}") for p in problems):
                continue  # data.seed: ${seed} repeats the error already reported for seed
            problems.append(f"{path} must be {allowed}, got {_shown(value)}")
    if problems:
        raise ConfigError("; ".join(problems))


def check_person_columns(config: DictConfig | Mapping[str, Any], columns: Sequence[str], source: str) -> None:
    """Checks that the columns the independence stage is told to use exist in the person table.

    Called where the person table is known: by the ingest stage once it has built
    the table, and by ``personax.run`` before a run that reuses an existing
    ``data/persons.parquet``.

    Args:
        config: The run config (``independence.conditioning`` and ``independence.features``).
        columns: The person table's columns.
        source: The table's file, for the message.

    Raises:
        ConfigError: A named column is not in the table; the message lists the available ones.

    Example:
        >>> check_person_columns({"independence": {"conditioning": ["gender"]}}, ["person_id", "gender"], "t")
    """
    problems = []
    available = [str(c) for c in columns]
    for path in ("independence.conditioning", "independence.features"):
        names = _select(config, path)
        if names is _ABSENT or names is None or isinstance(names, str):
            continue
        missing = [str(n) for n in names if str(n) not in available]
        if missing:
            problems.append(f"{path} names column(s) {missing} that are not in the person table {source}; "
                            f"available: {available}")
    if problems:
        raise ConfigError("; ".join(problems))
