"""The float64 bound of the same-seed tier: the embedded smoke profile traced once in float64 by the pipeline's own
code, and each cell's |fp32 - float64| per arm, kind and metric (artifact/verification/numerics.py).

    .venv/bin/python bench/numerics_bound.py                       # run (or resume) the float64 smoke run, measure
    .venv/bin/python bench/numerics_bound.py --no-run --fp32 results/embedded-smoke-s1-b32-t1   # + conditioning
    .venv/bin/python bench/numerics_bound.py --arms s2t --kinds mlp,attn --carryover   # only these parts
    .venv/bin/python bench/numerics_bound.py --arms s2t --kinds mlp,attn --carryover --rounds-of 2  # breadth first

1. `run_pipeline(profile='smoke', dtype='float64', out=results/embedded-smoke-fp64, verify=False)`: the same facts,
   noise seed and settings as the reference, every forward and softmax in float64 (resumable fact by fact; about
   3-4x the fp32 run's time on a CPU).
   With `--arms`/`--kinds`/`--carryover`, only those parts run, for exactly the facts the recorded profile
   (`--expected`) traced: its selection and Known sets are taken from it (`partial_run`), so its Known filters and
   the other parts are not redone; the traces and the carry-over step are the pipeline's own (its trace and
   carry-over steps on a `PipelineRun` in float64), resumable fact by fact.
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
# RunSettings fields a float64 rerun of a part must share with the recorded profile (dtype and noise differ: the
# noise level is calibrated on the float64 model's embeddings, as in the full float64 run)
SAME_SETTINGS = ("model", "facts_fingerprint", "noise_spec", "samples", "window", "seed", "batch_size", "positions",
                 "front_end", "candidates")


def recorded_selection(expected: Path) -> tuple[str, list[str], dict[str, list[str]]]:
    """(profile name, the facts it traced in both arms, arm -> its Known filter's known ids) of a recorded profile:
    what `partial_run` traces instead of rerunning the Known filters."""
    from artifact.core.fileio import read_json
    from artifact.verification.load import load_expected_arm
    from artifact.verification.records import VerifyError

    manifest = read_json(Path(expected) / "manifest.json")
    name = manifest["identity"]["profile"]["name"]
    arms = {arm: load_expected_arm(expected, arm) for arm in ("t2t", "s2t")}
    traced = [str(i) for i in arms["t2t"].fact_ids["hidden"]]
    for arm in arms.values():
        for kind, ids in arm.fact_ids.items():
            if sorted(map(str, ids)) != sorted(traced):
                raise VerifyError(f"{expected}: {arm.arm} {kind} traced other facts than t2t hidden; a partial "
                                  "float64 run needs one selection")
    return name, traced, {arm: list(data.known or []) for arm, data in arms.items()}


def partial_run(expected: Path, out: Path, arms: list[str], kinds: list[str], carryover: bool,
                front_end: str = "auto", rounds_of: int | None = None, progress: bool = False) -> None:
    """Run in float64 only the trace steps of `arms` for `kinds`, and the carry-over step when `carryover`, over the
    facts `expected` traced (its selection and Known sets, `recorded_selection`): the pipeline's own `trace_step` and
    `carryover_step` on a `PipelineRun` of the recorded profile, so every number comes from the pipeline's code.
    `front_end` as the pipeline's --front-end (the recorded profile's front end must come out: checked with its
    other settings). `rounds_of` N: breadth first, every asked part on the first N facts, then on the first 2N, ...
    (a run stopped for time has measured every part on some facts). Resumable fact by fact (finished trace and
    carry-over files are reused)."""
    from dataclasses import replace

    from artifact.core.fileio import write_json_atomic
    from artifact.core.layout import SELECTION_FILE
    from artifact.core.results import SUBSETS_KEY
    from artifact.experiments.choice import select_model
    from artifact.experiments.pipeline import (PipelineRun, carryover_step, results_lock, speech_model_subsets,
                                               trace_step)
    from artifact.experiments.profiles import PROFILES
    from artifact.verification.load import load_expected_arm
    from artifact.verification.records import VerifyError

    name, traced, known = recorded_selection(expected)
    profile = replace(PROFILES[name], kinds=tuple(kinds))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with results_lock(out):
        choice = select_model("embedded", None, front_end)
        run = PipelineRun(profile, choice, out, progress, dtype="float64", known=known)
        for arm in ("t2t", "s2t"):
            ours, theirs = run.prepared(arm).settings.to_dict(), load_expected_arm(expected, arm).settings or {}
            differ = [k for k in SAME_SETTINGS if ours.get(k) != theirs.get(k)]
            if differ:
                raise VerifyError(f"the float64 {arm} arm differs from {expected} in {', '.join(differ)}: "
                                  "rerun it with the recorded profile's settings")
        step = rounds_of or len(traced)
        for size in [*range(step, len(traced), step), len(traced)]:
            chosen = traced[:size]
            selection = {"t2t_run": run.prepared("t2t").run_dir.name, "s2t_run": run.prepared("s2t").run_dir.name,
                         "known_t2t": known["t2t"], "known_s2t": known["s2t"], "known_both": traced,
                         "paired_only": profile.paired_only, "count": profile.count, "traced": chosen,
                         SUBSETS_KEY: speech_model_subsets(run),
                         "source": f"the first {size} of the {len(traced)} facts {expected} traced, its Known filters "
                                   "not rerun (bench/numerics_bound.py)"}
            write_json_atomic(out / SELECTION_FILE, selection)
            for arm in arms:
                print(f"float64 {arm} traces ({', '.join(kinds)}) of {size} facts -> {out}", flush=True)
                trace_step(arm)(run)
            if carryover:
                print(f"float64 carry-over of {size} facts -> {out}", flush=True)
                carryover_step(run)


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
    from artifact.verification.load import load_arm_from_traces, load_expected_arm, load_tolerances
    from artifact.verification.numerics import same_seed_tolerance
    from artifact.verification.same_seed import max_cell_difference

    same_seed = load_tolerances(profile).get("same_seed")
    print(f"held-out same-seed rerun {rerun} against {profile}:")
    for arm in ("t2t", "s2t"):
        regen, expected = load_arm_from_traces(rerun, arm), load_expected_arm(profile, arm)
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
    parser.add_argument("--arms", help="run only these arms' trace steps (comma-separated: t2t,s2t), for the facts "
                        "--expected traced; with --kinds and --carryover")
    parser.add_argument("--kinds", default="hidden,mlp,attn", help="with --arms: the trace kinds (default all)")
    parser.add_argument("--carryover", action="store_true", help="run only the carry-over step (with --arms: also)")
    parser.add_argument("--rounds-of", type=int, help="with --arms/--carryover: breadth first, every part on the "
                        "first N facts, then 2N, ... (default: all facts part by part)")
    parser.add_argument("--front-end", default="auto", help="with --arms/--carryover: the pipeline's --front-end "
                        "(default auto; it must give the recorded profile's)")
    parser.add_argument("--fp32", type=Path, help="an fp32 results folder with traces: conditioning by P")
    parser.add_argument("--held-out", type=Path, help="a same-seed fp32 rerun to judge by the recorded tolerance")
    args = parser.parse_args(argv)
    arms = [a for a in (args.arms or "").split(",") if a]
    kinds = [k for k in args.kinds.split(",") if k]
    if not set(arms) <= {"t2t", "s2t"} or not kinds or not set(kinds) <= {"hidden", "mlp", "attn"}:
        parser.error(f"--arms takes t2t and/or s2t, --kinds hidden, mlp and/or attn; got {args.arms!r}, "
                     f"{args.kinds!r}")
    if args.rounds_of is not None and args.rounds_of < 1:
        parser.error(f"--rounds-of must be >= 1; got {args.rounds_of}")
    from artifact.verification.numerics import NUMERICS_SAFETY, float64_differences, numerics_tolerances

    partial = args.arms is not None or args.carryover
    if partial and not args.no_run:
        partial_run(args.expected, args.out, arms, kinds, args.carryover, args.front_end, args.rounds_of)
    elif not args.no_run:
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
