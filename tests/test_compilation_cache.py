"""The persistent compilation cache: off by default, and a fit of the same shapes reuses its programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from personax._compilation_cache import enable_compilation_cache


def test_the_cache_is_off_unless_asked_for(compose_cfg, monkeypatch):
    monkeypatch.delenv("PERSONAX_COMPILATION_CACHE", raising=False)
    assert compose_cfg().compilation_cache is None
    assert enable_compilation_cache(None) is None
    monkeypatch.setenv("PERSONAX_COMPILATION_CACHE", "/somewhere/xla")
    assert compose_cfg().compilation_cache == "/somewhere/xla"
    assert compose_cfg(["compilation_cache=/elsewhere"]).compilation_cache == "/elsewhere"


def test_a_process_keeps_its_first_folder_and_warns_about_a_second(tmp_path):
    """JAX's setting is the whole process's: a second folder is ignored (and not created), with a warning."""
    first, second = tmp_path / "first", tmp_path / "second"
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.WARNING)
        import jax
        from personax._compilation_cache import enable_compilation_cache
        used = [enable_compilation_cache(folder) for folder in (sys.argv[1], sys.argv[1], sys.argv[2])]
        print(len(set(used)), used[-1] == used[0], jax.config.jax_compilation_cache_dir == str(used[0]))
        """)
    result = subprocess.run([sys.executable, "-c", script, str(first), str(second)], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.split() == ["1", "True", "True"]
    assert f"already uses {first}; {second} is ignored" in result.stderr
    assert first.is_dir() and not second.exists()


@pytest.mark.slow  # ~35 s: two fresh processes (JAX's cache setting is per process), two small fits each
def test_a_fit_of_the_same_shapes_loads_its_programs_from_the_cache(tmp_path):
    """Another seed and other values, same shapes: the training epoch and the validation ELBO come
    from the cache (no new file for them), and the fits are those of a process without the cache."""
    folder = tmp_path / "xla"
    script = textwrap.dedent(
        f"""
        import json, os, sys, jax
        from personax._compilation_cache import enable_compilation_cache
        from personax.crl import fit
        from personax.data.synthetic import make_multimodal_numeric

        def run(seed):
            bench = make_multimodal_numeric(300, seed=seed)
            model = fit(bench.modalities, latent_dims={{"image": 1, "text": 1}}, shared_dim=1, seed=seed,
                        max_epochs=2, hidden=(16,), batch_size=64)
            return model.best_val_elbo

        def files():
            return set(os.listdir({str(folder)!r})) if os.path.isdir({str(folder)!r}) else set()

        if sys.argv[1] == "cached":
            enable_compilation_cache({str(folder)!r})
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # toy programs compile fast
        first = run(0)
        after_first = files()
        second = run(1)
        print(json.dumps({{"elbos": [first, second], "first": sorted(after_first),
                          "new_in_second": sorted(files() - after_first)}}))
        """
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("PERSONAX_COMPILATION_CACHE", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_COMPILATION_CACHE_MAX_SIZE", None)  # the test session's (conftest.py)
    outcomes = {}
    for mode in ("plain", "cached"):  # plain first: it must write nothing
        result = subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        outcomes[mode] = json.loads(result.stdout.strip().splitlines()[-1])
        assert mode == "cached" or not folder.exists(), "the cache was used without being asked for"
    cached, plain = outcomes["cached"], outcomes["plain"]
    programs = ("jit_one_epoch", "jit__lambda")  # the training epoch; the validation ELBO (and other lambdas)
    assert any(name.startswith("jit_one_epoch") for name in cached["first"]), cached["first"]
    # the data are arguments, not constants: seed 1's training programs are seed 0's
    assert not [name for name in cached["new_in_second"] if name.startswith(programs)], cached["new_in_second"]
    assert plain["first"] == plain["new_in_second"] == [], plain
    assert cached["elbos"] == pytest.approx(plain["elbos"], rel=1e-6)
