"""JAX's persistent compilation cache, switched on by a run's ``compilation_cache`` option.

A CRL fit spends 20-30 s compiling its training programs on a 2-core CPU before its first
epoch (the demo's: about 29 s), and every fit in a new process compiles them again. With the
cache on, JAX keeps each compiled program on disk, keyed by the program and the compiler; a
later fit of the same shapes (another seed, a sweep's next job, a rerun of the stage) loads
it instead. The data are arguments of those programs, not
constants in them (``personax.crl.fit``), so the key does not depend on the cohort's values.

It is off by default: on some machines and jaxlib builds JAX's CPU cache is known to reject
its own entries (it then recompiles, losing nothing but time) or, after jaxlib was changed in
place, to crash while loading one (docs/crl.md, "Compile time"). Delete the folder to start
afresh; nothing else is kept in it.

In your own code, call ``personax.enable_compilation_cache("~/.cache/personax/xla")`` before the
first fit (the setting is the whole process's, so this example leaves it alone).

Example:
    >>> from personax import enable_compilation_cache
    >>> enable_compilation_cache(None) is None  # None, the default: JAX is left as it is
    True
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Programs that compile faster than this are not worth a file (JAX's own default is 1 s).
MIN_COMPILE_SECONDS = 1.0


def enable_compilation_cache(directory: str | os.PathLike[str] | None) -> Path | None:
    """Keeps compiled XLA programs in ``directory`` for later processes (None: leaves JAX as it is).

    The setting is JAX's, for the whole process, so a process keeps the first folder it was
    given: a different one asked for later is ignored with a warning.

    Returns:
        The folder in use, or None when the cache stays off.
    """
    if directory is None or str(directory) == "":
        return None
    import jax

    path = Path(directory).expanduser().resolve()
    current = jax.config.jax_compilation_cache_dir
    if current and Path(current).expanduser().resolve() != path:
        log.warning("compilation cache: this process already uses %s; %s is ignored", current, path)
        return Path(current)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
