"""Benchmark: personax.independence vs causal-learn 0.1.4.8, side by side in one run.

Targets (issue 3): an unconditional KCI matrix at n = 4,000 at least 30x faster than
causal-learn; conditional KCI at n = 4,000 at least 10x faster; all five tests on a
celebrity-size matrix (n = 9,444, 22 features x 15 trait columns) in under 5 minutes on
2 CPU cores. Each measurement runs in its own subprocess so that its peak resident memory
(``ru_maxrss``) is its own.

causal-learn is far too slow to run whole matrices (about 2 s per unconditional pair and
about a minute per conditional pair at n = 4,000), so its side times a subset of pairs of
the same matrix and is extrapolated per pair; the results file says so. personax's times
include JIT compilation (a cold process), and the warm time of a second identical call is
recorded as well.

Usage:
    python experiments/benchmarks/bench_independence.py            # everything, writes results/
    python experiments/benchmarks/bench_independence.py --quick    # smaller n, for a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

FACES = ["Arched_Eyebrows", "Big_Nose", "Pointy_Nose", "Bushy_Eyebrows", "Big_Lips", "Oval_Face",
         "Double_Chin", "Receding_Hairline", "Narrow_Eyes", "High_Cheekbones"]
FEATURES = ["height_cm", "weight_kg", "birth_year", "birth_month", "birth_day", "day_of_year", "day_sin",
            "day_cos", "latitude", "longitude", "group", "gender", *FACES]
DISCRETE = ["birth_year", "birth_month", "birth_day", "group", "gender", *FACES]
RATERS = ["gpt4o", "deepseek", "gemini"]
TRAITS = [f"trait_{r}_{t}" for r in RATERS for t in "ocean"]


def celebrity_table(n: int, seed: int = 0, missing: float = 0.03) -> pd.DataFrame:
    """A celebrity-shaped table: 22 features of the study's types, 15 rater trait columns
    scored 1..3 (a fraction ``missing`` scored 0 = insufficient information -> NaN)."""
    rng = np.random.default_rng(seed)
    gender = rng.integers(0, 2, n)
    group = rng.integers(0, 8, n)
    height = 165 + 12 * gender + rng.normal(0, 7, n)
    date = pd.Timestamp("1900-01-01") + pd.to_timedelta(rng.integers(0, 365 * 100, n), unit="D")
    doy = date.dayofyear.to_numpy()
    df = pd.DataFrame({
        "height_cm": np.round(height), "weight_kg": np.round(0.9 * height - 90 + rng.normal(0, 9, n)),
        "birth_year": date.year.to_numpy(), "birth_month": date.month.to_numpy(), "birth_day": date.day.to_numpy(),
        "day_of_year": doy, "day_sin": np.sin(2 * np.pi * doy / 365.25), "day_cos": np.cos(2 * np.pi * doy / 365.25),
        "latitude": rng.uniform(-40, 60, n), "longitude": rng.uniform(-120, 140, n),
        "group": group, "gender": gender,
    })
    for k, f in enumerate(FACES):
        df[f] = np.where(rng.random(n) < 0.3 + 0.3 * gender * (k % 2), 1, -1)
    latent = 0.6 * gender + 0.2 * (group % 3) + 0.02 * (df.height_cm - 170) + 0.3 * (df.Big_Nose > 0)
    for r in RATERS:
        for j, t in enumerate("ocean"):
            s = latent * (1 if j % 2 else -0.5) + rng.normal(0, 1, n)
            score = np.digitize(s, [-0.4, 0.4]) + 1.0
            score[rng.random(n) < missing] = np.nan
            df[f"trait_{r}_{t}"] = score
    return df


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _subset_pairs(k: int, features):
    """A spread of pairs: continuous and discrete features against different rater columns."""
    picks = []
    for i in range(k):
        picks.append((features[(i * 7) % len(features)], TRAITS[(i * 4) % len(TRAITS)]))
    return picks


def part_ours(args) -> dict:
    import jax

    from personax.independence import test_matrix

    df = celebrity_table(args.n, seed=args.seed)
    cond = args.conditioning.split(",") if args.conditioning else None
    feats = [f for f in FEATURES if not cond or f not in cond]
    tests = args.tests.split(",")
    t0 = time.perf_counter()
    out = test_matrix(df, feats, TRAITS, tests=tests, conditioning=cond, discrete=DISCRETE + TRAITS, seed=args.seed)
    cold = time.perf_counter() - t0
    warm = float("nan")
    if not args.no_warm:
        t0 = time.perf_counter()
        test_matrix(df, feats, TRAITS, tests=tests, conditioning=cond, discrete=DISCRETE + TRAITS, seed=args.seed)
        warm = time.perf_counter() - t0
    per_test = {t: int(((out.test == t) & (out.status == "ok")).sum()) for t in tests}
    sub = out[out.status == "ok"]
    pvals = {f"{r.feature}|{r.trait}|{r.test}": r.p_value for r in sub.itertuples()}
    return {"seconds_cold": cold, "seconds_warm": warm, "pairs": len(feats) * len(TRAITS), "ok_by_test": per_test,
            "peak_rss_mb": _peak_mb(), "jax": jax.__version__, "pvalues": pvals}


def part_causallearn(args) -> dict:
    import causallearn
    from causallearn.utils.cit import CIT

    df = celebrity_table(args.n, seed=args.seed)
    cond = args.conditioning.split(",") if args.conditioning else []
    feats = [f for f in FEATURES if f not in cond]
    pairs = _subset_pairs(args.pairs, feats)
    times, pvals = [], {}
    for f, t in pairs:
        data = df[[f, t, *cond]].dropna().to_numpy(dtype=float)
        t0 = time.perf_counter()
        cit = CIT(data, "kci")
        p = cit(0, 1, list(range(2, 2 + len(cond)))) if cond else cit(0, 1)
        times.append(time.perf_counter() - t0)
        pvals[f"{f}|{t}|kci"] = float(p)
    return {"seconds_per_pair": float(np.mean(times)), "pair_seconds": times, "pairs_timed": len(pairs),
            "peak_rss_mb": _peak_mb(), "causallearn": getattr(causallearn, "__version__", "0.1.4.8"), "pvalues": pvals}


def _spawn(**kw) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part"]
    for k, v in kw.items():
        if k == "part":
            cmd += [str(v)]
        elif v is True:
            cmd += [f"--{k.replace('_', '-')}"]
        else:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _agreement(ours: dict, ref: dict) -> float:
    diffs = [abs(ours["pvalues"][k] - v) for k, v in ref["pvalues"].items() if k in ours["pvalues"]]
    return float(max(diffs)) if diffs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["ours", "causallearn"])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tests", default="kci")
    ap.add_argument("--conditioning", default="")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-warm", action="store_true", help="skip the second (warm) personax run")
    ap.add_argument("--out", default=str(RESULTS / "independence.json"))
    args = ap.parse_args()
    if args.part:
        res = part_ours(args) if args.part == "ours" else part_causallearn(args)
        print(json.dumps(res))
        return

    n4 = 1000 if args.quick else 4000
    n_big = 2000 if args.quick else 9444
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "loadavg_at_start": os.getloadavg()},
              "notes": ("causal-learn times are measured on a subset of pairs of the same matrix and extrapolated "
                        "per pair (ratio = causal-learn seconds per pair / personax seconds per pair over the whole "
                        "matrix). personax 'cold' includes JIT compilation in a fresh process. Peak memory is the "
                        "subprocess's ru_maxrss. The celebrity-shaped data are synthetic (celebrity_table)."),
              "benchmarks": {}}
    # 1. unconditional KCI matrix, n = 4,000
    ours = _spawn(part="ours", n=n4, tests="kci")
    ref = _spawn(part="causallearn", n=n4, pairs=2 if args.quick else 6)
    per_pair = ours["seconds_cold"] / ours["pairs"]
    report["benchmarks"]["kci_unconditional_n4000"] = {
        "n": n4, "pairs": ours["pairs"], "personax_seconds_cold": ours["seconds_cold"],
        "personax_seconds_warm": ours["seconds_warm"], "personax_seconds_per_pair": per_pair,
        "causallearn_seconds_per_pair": ref["seconds_per_pair"], "causallearn_pairs_timed": ref["pairs_timed"],
        "causallearn_matrix_seconds_extrapolated": ref["seconds_per_pair"] * ours["pairs"],
        "speedup": ref["seconds_per_pair"] / per_pair, "target_speedup": 30,
        "max_abs_pvalue_diff_on_timed_pairs": _agreement(ours, ref),
        "personax_peak_rss_mb": ours["peak_rss_mb"], "causallearn_peak_rss_mb": ref["peak_rss_mb"]}
    print(json.dumps(report["benchmarks"]["kci_unconditional_n4000"], indent=1), flush=True)
    # 2. conditional KCI matrix given gender and occupation, n = 4,000
    ours = _spawn(part="ours", n=n4, tests="kci", conditioning="gender,group", no_warm=True)
    ref = _spawn(part="causallearn", n=n4, conditioning="gender,group", pairs=1 if args.quick else 2)
    per_pair = ours["seconds_cold"] / ours["pairs"]
    report["benchmarks"]["kci_conditional_n4000"] = {
        "n": n4, "conditioning": ["gender", "group"], "pairs": ours["pairs"],
        "personax_seconds_cold": ours["seconds_cold"], "personax_seconds_warm": ours["seconds_warm"],
        "personax_seconds_per_pair": per_pair, "causallearn_seconds_per_pair": ref["seconds_per_pair"],
        "causallearn_pairs_timed": ref["pairs_timed"],
        "causallearn_matrix_seconds_extrapolated": ref["seconds_per_pair"] * ours["pairs"],
        "speedup": ref["seconds_per_pair"] / per_pair, "target_speedup": 10,
        "max_abs_pvalue_diff_on_timed_pairs": _agreement(ours, ref),
        "personax_peak_rss_mb": ours["peak_rss_mb"], "causallearn_peak_rss_mb": ref["peak_rss_mb"]}
    print(json.dumps(report["benchmarks"]["kci_conditional_n4000"], indent=1), flush=True)
    # 3. all five tests on the celebrity-size matrix
    ours = _spawn(part="ours", n=n_big, tests="kci,hsic,rcit,chisq,gsq")
    ref = _spawn(part="causallearn", n=n_big, pairs=1 if args.quick else 2)
    report["benchmarks"]["all_tests_celebrity_n9444"] = {
        "n": n_big, "features": len(FEATURES), "trait_columns": len(TRAITS), "pairs": ours["pairs"],
        "tests": ["kci", "hsic", "rcit", "chisq", "gsq"], "ok_by_test": ours["ok_by_test"],
        "personax_seconds_cold": ours["seconds_cold"], "personax_seconds_warm": ours["seconds_warm"],
        "target_seconds": 300, "causallearn_kci_seconds_per_pair": ref["seconds_per_pair"],
        "causallearn_kci_matrix_seconds_extrapolated": ref["seconds_per_pair"] * ours["pairs"],
        "max_abs_kci_pvalue_diff_on_timed_pairs": _agreement(ours, ref),
        "personax_peak_rss_mb": ours["peak_rss_mb"], "causallearn_peak_rss_mb": ref["peak_rss_mb"]}
    print(json.dumps(report["benchmarks"]["all_tests_celebrity_n9444"], indent=1), flush=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(_markdown(report))


def _markdown(report: dict) -> str:
    b = report["benchmarks"]
    u, c, a = b["kci_unconditional_n4000"], b["kci_conditional_n4000"], b["all_tests_celebrity_n9444"]
    lines = [
        "# personax.independence vs causal-learn 0.1.4.8", "",
        f"Run {report['date']} on {report['machine']['cpus']} CPUs ({report['machine']['platform']}); "
        f"load average at start {tuple(round(x, 2) for x in report['machine']['loadavg_at_start'])}.", "",
        report["notes"], "",
        "| benchmark | personax | causal-learn | speed-up | target | peak RSS personax / causal-learn |",
        "|---|---|---|---|---|---|",
        f"| unconditional KCI, n={u['n']}, {u['pairs']} pairs | {u['personax_seconds_cold']:.1f} s "
        f"({u['personax_seconds_per_pair'] * 1000:.0f} ms/pair; warm {u['personax_seconds_warm']:.1f} s) | "
        f"{u['causallearn_seconds_per_pair']:.2f} s/pair ({u['causallearn_pairs_timed']} pairs timed; "
        f"matrix ~{u['causallearn_matrix_seconds_extrapolated'] / 60:.0f} min) | {u['speedup']:.0f}x | >= 30x | "
        f"{u['personax_peak_rss_mb']:.0f} / {u['causallearn_peak_rss_mb']:.0f} MB |",
        f"| conditional KCI given gender, occupation, n={c['n']}, {c['pairs']} pairs | "
        f"{c['personax_seconds_cold']:.1f} s ({c['personax_seconds_per_pair']:.2f} s/pair) | {c['causallearn_seconds_per_pair']:.1f} s/pair "
        f"({c['causallearn_pairs_timed']} pairs timed; matrix ~{c['causallearn_matrix_seconds_extrapolated'] / 3600:.1f} h) | "
        f"{c['speedup']:.0f}x | >= 10x | {c['personax_peak_rss_mb']:.0f} / {c['causallearn_peak_rss_mb']:.0f} MB |",
        f"| all five tests, n={a['n']}, {a['features']} x {a['trait_columns']} | {a['personax_seconds_cold']:.1f} s "
        f"(warm {a['personax_seconds_warm']:.1f} s) | KCI alone {a['causallearn_kci_seconds_per_pair']:.1f} s/pair "
        f"(matrix ~{a['causallearn_kci_matrix_seconds_extrapolated'] / 60:.0f} min) | – | < 300 s | "
        f"{a['personax_peak_rss_mb']:.0f} / {a['causallearn_peak_rss_mb']:.0f} MB |",
        "",
        f"Largest |p(personax) - p(causal-learn)| on the timed pairs: unconditional "
        f"{u['max_abs_pvalue_diff_on_timed_pairs']:.2e}, conditional {c['max_abs_pvalue_diff_on_timed_pairs']:.2e}, "
        f"n={a['n']} {a['max_abs_kci_pvalue_diff_on_timed_pairs']:.2e}.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
