"""Provenance for the report: the redacted config, package versions, seeds, git commit."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from omegaconf import DictConfig, OmegaConf

from personax import _secrets

REDACTED = _secrets.REDACTED
SECRET_KEY = re.compile(r"key|token|secret|password|passwd|credential", re.IGNORECASE)
# Values that look like a secret whatever their key: API keys, bearer tokens, passwords in URLs.
SECRET_VALUE = re.compile(r"^(sk|pk|rk)-[A-Za-z0-9_\-]{12,}$|^bearer\s+\S+$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/:@\s]*):[^/@\s]*@", re.IGNORECASE)

PACKAGES = ("personax", "jax", "jaxlib", "flax", "optax", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn",
            "torch", "torchvision", "open-clip-torch", "sentence-transformers", "causal-learn", "numpyro",
            "hydra-core", "omegaconf", "matplotlib", "jinja2")


def redact(value: Any, key: str = "", *, secrets: Sequence[str] | None = None) -> Any:
    """A copy of a nested config with secret-looking entries replaced by ``<redacted>``.

    A value is redacted when its key contains key, token, secret, password or
    credential (any case), or when it looks like an API key or bearer token; a
    password inside a URL and URL query parameters named like keys (``?key=``,
    ``&access_token=``) are cut out, and so is any string equal to a secret the
    config refers to (the value of an environment variable named by
    ``api_key_env``; see :func:`personax._secrets.redact`). ``None`` stays ``None``.

    Example:
        >>> redact({"api_key": "hunter2", "n": 3, "url": "https://me:pw@host/x?key=abc", "token": None})
        {'api_key': '<redacted>', 'n': 3, 'url': 'https://me:<redacted>@host/x?key=<redacted>', 'token': None}
    """
    if secrets is None:
        secrets = _secrets.secret_values(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k), secrets=secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key, secrets=secrets) for v in value]
    if value is None:
        return None
    if SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        if SECRET_VALUE.match(value.strip()):
            return REDACTED
        return _secrets.redact_text(value, secrets)
    return value


def config_container(config: DictConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """The config as plain data, resolved where it can be (an unresolvable entry stays as written)."""
    if config is None:
        return {}
    if not OmegaConf.is_config(config):
        return dict(config)
    try:
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - a missing environment variable must not stop the report
        return OmegaConf.to_container(config, resolve=False)  # type: ignore[return-value]


def seeds(container: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every ``seed`` / ``*_seed`` entry of a nested config, by dotted path.

    Example:
        >>> seeds({"seed": 0, "crl": {"seed": 0, "fit": {"init_seed": 3}}, "n": 1})
        {'seed': 0, 'crl.seed': 0, 'crl.fit.init_seed': 3}
    """
    found: dict[str, Any] = {}
    for key, value in container.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(seeds(value, f"{path}."))
        elif str(key) == "seed" or str(key).endswith("_seed"):
            found[path] = value
    return found


class _Dumper(yaml.SafeDumper):
    """Block style, with multi-line strings (prompts) as ``|`` literals."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def config_yaml(container: Mapping[str, Any]) -> str:
    """The config as YAML, as a person would write it."""
    return yaml.dump(dict(container), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions (from package metadata; nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def source_root() -> Path:
    import personax

    return Path(personax.__file__).resolve().parent.parent


def git_state(root: Path | None = None) -> dict[str, Any]:
    """The commit of the source tree personax runs from, or ``"unknown"``; never raises.

    Only a checkout whose top folder holds personax counts (an installed wheel in a
    virtual environment inside some other repository does not).
    """
    root = source_root() if root is None else root
    state: dict[str, Any] = {"commit": "unknown", "dirty": None, "source": str(root)}
    if not (root / ".git").exists():
        return state
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=False)
        if commit.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit.stdout.strip()):
            state["commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=20, check=False)
            if status.returncode == 0:
                state["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return state
