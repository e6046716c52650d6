"""Secret hygiene: API keys are replaced by value wherever they appear.

Redaction by key name (``api_key: ...``) misses a key pasted elsewhere: in a
``base_url`` query string, in a header, in an error message a server echoes, or
as the *value* of ``api_key_env``. :func:`redact` replaces

* every string equal to a configured secret's value: the environment variables
  named by ``*_key_env`` / ``*_token_env`` / ``*_secret_env`` / ``seed_env``
  entries of the config (values of 6 characters or more: shorter ones cannot be
  replaced in free text without mangling it), a pasted key given as the value of
  such an entry, and values of config entries named like secrets;
* the values of URL query parameters named like secrets (``key``, ``api_key``,
  ``token``, ``access_token``, ``secret``, ``password``, ``sig``, ...);
* passwords in URLs (``https://user:password@host``).

Example:
    >>> import os
    >>> os.environ["DOCTEST_API_KEY"] = "sk-doctest-0123456789"
    >>> config = {"traits": {"raters": {"r": {"api_key_env": "DOCTEST_API_KEY"}}}}
    >>> redact("401: bad key sk-doctest-0123456789 for https://h/v1?key=abc&n=2", config)
    '401: bad key <redacted> for https://h/v1?key=<redacted>&n=2'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import OmegaConf

REDACTED = "<redacted>"
MIN_SECRET_CHARS = 6
# Config entries whose value names an environment variable that holds a secret.
SECRET_ENV_KEY = re.compile(r"(key|token|secret|password|seed)_env$", re.IGNORECASE)
# Config entries, header names and URL query parameters whose value is itself a secret.
# The name must end in the secret word: ``max_tokens`` is not a secret, ``x-api-key`` is.
SECRET_NAME = re.compile(
    r"(^|[_\-.])(api_?key|key|token|access_?token|secret|password|passwd|pwd|credentials?|signature|sig|auth"
    r"|authorization)$", re.IGNORECASE)
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s?/]+)=(?P<value>[^&;#\s'\"<>]*)")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/:@\s]*):(?P<password>[^/@\s]+)@", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_like_key(text: str) -> bool:
    """True when ``text`` cannot be, or is unlikely to be, an environment variable's name.

    Names of environment variables are identifiers and rarely mix upper and lower
    case with digits at length; API keys (``sk-...``, ``hf_AbC1...``) do.

    Example:
        >>> looks_like_key("OPENAI_API_KEY"), looks_like_key("sk-proj-abc123"), looks_like_key("hf_aB3dE5gH7jK9mN1pQ3sT5")
        (False, True, True)
    """
    if not _ENV_NAME.match(text):
        return True
    mixed = any(c.islower() for c in text) and any(c.isupper() for c in text) and any(c.isdigit() for c in text)
    return len(text) >= 20 and mixed


def _plain(config: Any) -> Any:
    if OmegaConf.is_config(config):
        try:
            return OmegaConf.to_container(config, resolve=True)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation must not stop redaction
            return OmegaConf.to_container(config, resolve=False)
    return config


def secret_values(config: Any) -> list[str]:
    """The secret strings a config refers to (see the module docstring), longest first."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                key = str(key)
                if isinstance(value, str) and value:
                    if SECRET_ENV_KEY.search(key):
                        if looks_like_key(value):
                            found.add(value)  # a key pasted where a variable name belongs
                        else:
                            found.add(os.environ.get(value, ""))
                    elif SECRET_NAME.search(key) and not key.endswith("_env"):
                        found.add(value)
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            for match in _QUERY_PARAM.finditer(node):
                if SECRET_NAME.search(match["name"]):
                    found.add(match["value"])

    walk(_plain(config))
    return sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values, key-like URL parameters and URL passwords replaced."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    text = _QUERY_PARAM.sub(
        lambda m: f"{m['lead']}{m['name']}={REDACTED}" if SECRET_NAME.search(m["name"]) and m["value"] else m[0], text)
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def redact(value: Any, config: Any = None, *, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (text, or nested mappings and lists) with secrets replaced by ``<redacted>``.

    Args:
        value: Text, or a nested structure (a DictConfig is converted to plain data);
            mapping keys are kept, every string value is redacted.
        config: The run config whose secrets (see :func:`secret_values`) are looked
            for; None: only ``secrets`` and the URL patterns.
        secrets: More secret strings to replace.

    Returns:
        The same shape as ``value``; non-string leaves unchanged.
    """
    known = sorted({*secret_values(config), *(s for s in secrets if s)}, key=len, reverse=True) if config is not None \
        else sorted({s for s in secrets if s}, key=len, reverse=True)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return redact_text(node, known)
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        return node

    return walk(_plain(value))
