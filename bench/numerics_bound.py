"""The float64 bound of the same-seed tier: the embedded smoke profile traced once in float64 by the pipeline's own
code, and each cell's |fp32 - float64| per arm, kind and metric (artifact/verification/numerics.py).

    .venv/bin/python bench/numerics_bound.py                       # run (or resume) the float64 smoke run, measure
    .venv/bin/python bench/numerics_bound.py --no-run --fp32 results/embedded-smoke-s1-b32-t1   # + conditioning

1. `run_pipeline(profile='smoke', dtype='float64', out=results/embedded-smoke-fp64, verify=False)`: the same facts,
   noise seed and settings as the reference, every forward and softmax in float64 (resumable fact by fact; about
   3-4x the fp32 run's time on a CPU).
2. The largest |fp32 - float64| over every paired cell (fact, token group, layer) of each arm, kind and metric,
   against the recorded profile's cells (`--expected`, default expected/embedded-smoke), and the per-metric
   tolerance it gives (NUMERICS_SAFETY x 2 x the bound). Works on a float64 run still in progress (finished facts).
3. With `--held-out RESULTS_DIR` (a same-seed fp32 rerun not used to set the bound, finished or still running): its
   largest |rerun - profile| cell per arm, kind and metric against the profile's recorded same-seed tolerance.
4. With `--fp32 RESULTS_DIR` (an fp32 run of the same profile and seed that kept its trace files): the conditioning
   of each metric, cell by cell on the raw traces, binned by the cell's probability: the largest and 99th
   percentile |fp32 - float64| of log P and of P per bin. It shows which form is stable to judge cells in.

Record the result in the profile with `./verify.py --update-same-seed expected/embedded-smoke --float64-from
results/embedded-smoke-fp64` (and `--update-same-seed expected/embedded-standard --same-seed-tier-from
expected/embedded-smoke`); expected/README.md has the numbers measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BINS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0 + 1e-9)


def conditioning(fp32: Path, float64: Path) -> list[dict]:
    """Per arm, kind and probability bin: cells, max and 99th percentile |fp32 - float64| of log P and of P, over
    the raw trace cells [token, layer] of every fact traced in both runs."""
    from artifact.verification.load import find_run_dir

    rows = []
    for arm in ("t2t", "s2t"):
        a, b = find_run_dir(fp32, arm), find_run_dir(float64, arm)
        for kind_dir in sorted((b / "traces").glob("*")):
            p, dlp, dp = [], [], []
            for path in sorted(kind_dir.glob("*.npz")):
                other = a / "traces" / kind_dir.name / path.name
                if not other.is_file():
                    continue
                with np.load(path) as exact, np.load(other) as rounded:
                    keep = np.isfinite(exact["scores"])
                    p.append(exact["scores"][keep])
                    dlp.append(np.abs(rounded["logprobs"] - exact["logprobs"])[keep])
                    dp.append(np.abs(rounded["scores"] - exact["scores"])[keep])
            if not p:
                continue
            p, dlp, dp = map(np.concatenate, (p, dlp, dp))
            for lo, hi in zip(BINS[:-1], BINS[1:]):
                sel = (p >= lo) & (p < hi)
                if sel.any():
                    rows.append({"arm": arm, "kind": kind_dir.name, "p_from": lo, "p_to": min(hi, 1.0),
                                 "cells": int(sel.sum()), "logprob_max": float(dlp[sel].max()),
                                 "logprob_p99": float(np.percentile(dlp[sel], 99)), "prob_max": float(dp[sel].max()),
                                 "prob_p99": float(np.percentile(dp[sel], 99))})
    return rows


def held_out(rerun: Path, profile: Path) -> None:
    """Print a same-seed rerun's largest cell per arm, kind and metric (facts it has traced so far) against the
    profile's same-seed tolerance of that metric."""
    from artifact.verification.load import load_expected_arm, load_tolerances
    from artifact.verification.numerics import arm_from_traces, same_seed_tolerance
    from artifact.verification.same_seed import max_cell_difference

    same_seed = load_tolerances(profile).get("same_seed")
    print(f"held-out same-seed rerun {rerun} against {profile}:")
    for arm in ("t2t", "s2t"):
        regen, expected = arm_from_traces(rerun, arm), load_expected_arm(profile, arm)
        for kind in regen.kinds():
            for metric in ("prob", "logprob"):
                worst, where, n = max_cell_difference(regen, expected, kind, metric)
                tolerance = same_seed_tolerance(same_seed, metric)
                print(f"  {arm}/{kind}/{metric:8} {worst:.3g} of {tolerance:.3g} ({worst / tolerance:.2f}) over {n} "
                      f"facts, at {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "embedded-smoke-fp64",
                        help="the float64 results folder (default results/embedded-smoke-fp64)")
    parser.add_argument("--expected", type=Path, default=ROOT / "expected" / "embedded-smoke",
                        help="the fp32 cells: the recorded profile (default expected/embedded-smoke)")
    parser.add_argument("--no-run", action="store_true", help="measure only (the float64 run exists or runs)")
    parser.add_argument("--fp32", type=Path, help="an fp32 results folder with traces: conditioning by P")
    parser.add_argument("--held-out", type=Path, help="a same-seed fp32 rerun to judge by the recorded tolerance")
    args = parser.parse_args(argv)
    from artifact.verification.numerics import NUMERICS_SAFETY, float64_differences, numerics_tolerances

    if not args.no_run:
        from artifact.experiments.pipeline import run_pipeline

        run_pipeline(profile="smoke", model="embedded", out=args.out, progress=False, verify=False, dtype="float64")
    differences = float64_differences(args.expected, args.out)
    print(f"|fp32 - float64| per arm/kind/metric ({args.expected} vs {args.out}):")
    for key, entry in differences.items():
        print(f"  {key:30} {entry['max']:.3g}  ({entry['facts']} facts, {entry['cells']} cells)")
    print(f"tolerance per metric ({NUMERICS_SAFETY} x 2 x bound): {json.dumps(numerics_tolerances(differences))}")
    if args.held_out:
        held_out(args.held_out, args.expected)
    if args.fp32:
        print(f"conditioning, raw trace cells of {args.fp32} vs {args.out}, by the cell's P:")
        for row in conditioning(args.fp32, args.out):
            print(f"  {row['arm']} {row['kind']:6} P in [{row['p_from']:g}, {row['p_to']:g}): {row['cells']:5} cells"
                  f"  log P max {row['logprob_max']:.2e} p99 {row['logprob_p99']:.2e}"
                  f"  P max {row['prob_max']:.2e} p99 {row['prob_p99']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
