"""Pairs sharded over devices (``jax.shard_map`` over a one-axis mesh): the same p-values on
2 CPU devices as on one."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, pandas as pd
    from personax.independence import test_matrix
    from personax.independence._common import pair_devices
    rng = np.random.default_rng(8)
    n = 300
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 4, n).astype(float),
                       "c": rng.exponential(size=n), "z": rng.integers(0, 2, n).astype(float)})
    df["t1"] = np.round(df.a + rng.normal(size=n)).clip(-1, 1) + 2
    df["t2"] = rng.integers(1, 4, n).astype(float)
    df["t3"] = (df.b > 1) + rng.integers(1, 3, n).astype(float)
    kw = dict(seed=2, approx="exact", block_size=2)
    out = test_matrix(df, ["a", "b", "c"], ["t1", "t2", "t3"], tests=["kci", "hsic", "rcit"], **kw)
    cond = test_matrix(df, ["a", "b", "c"], ["t1", "t2", "t3"], tests=["kci", "rcit"], conditioning=["z"], **kw)
    print(json.dumps({"devices": pair_devices(), "p": out.p_value.tolist(), "pc": cond.p_value.tolist(),
                      "tests_c": cond.test.tolist()}))
    """
)


def _run(devices: int) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    else:
        env.pop("XLA_FLAGS", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_pairs_sharded_over_two_cpu_devices_give_the_single_device_p_values():
    one, two = _run(1), _run(2)
    assert (one["devices"], two["devices"]) == (1, 2)
    np.testing.assert_allclose(two["p"], one["p"], rtol=1e-9, atol=1e-12)
    rcit = np.array(one["tests_c"]) == "rcit"
    np.testing.assert_allclose(np.array(two["pc"])[~rcit], np.array(one["pc"])[~rcit], rtol=1e-9, atol=1e-12)
    # conditional RCIT inverts its z-feature covariance with the reference's 1e-10 ridge, which
    # amplifies round-off (a different but equivalent compiled program moves p by ~1e-5)
    np.testing.assert_allclose(np.array(two["pc"])[rcit], np.array(one["pc"])[rcit], atol=1e-3)
