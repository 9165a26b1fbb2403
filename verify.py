#!/usr/bin/env python3
"""Compare regenerated results with a stored expected profile: exit 0 PASS, 1 FAIL, 2 no verdict (usage error, or
no expected profile applies).

    ./verify.py                                         results/embedded-smoke against expected/embedded-smoke
    ./verify.py --results results/full --expected expected/full --report /tmp/verify
    ./verify.py --record expected/embedded-smoke --results results/embedded-smoke \\
        --calibrate-from results/embedded-smoke-seed2 results/embedded-smoke-seed3 results/embedded-smoke-seed4
    ./verify.py --record expected/spiritlm-full --results results/spiritlm-full --claims-only
    ./verify.py --record expected/embedded-smoke --force --results results/embedded-smoke \\
        --other-seed-from-samples --same-seed-tier-from expected/embedded-smoke
    ./verify.py --update-same-seed expected/embedded-smoke --float64-from results/embedded-smoke-fp64

Writes report.md and report.json (every check: what, observed, expected, tolerance, verdict) into
<results>/verify/ (or --report). The checks and the calibration are described in expected/README.md and in
artifact/verification/ (verify.py: the checks; calibrate.py: the tolerances). Needs Python 3.11 with numpy and scipy
only (no torch, no matplotlib): everything it recomputes is read from the results folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from artifact.core.fileio import DiskFullError
from artifact.core.results import ResultsFolder

ROOT = Path(__file__).resolve().parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def _ensure_environment() -> None:
    """Import `artifact` from this folder; re-run under the project venv when started by another interpreter."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        import numpy  # noqa: F401  # lazy: numpy, a probe of this interpreter
        import scipy  # noqa: F401  # lazy: scipy, a probe of this interpreter
    except ImportError:
        if VENV_PYTHON.is_file() and not os.environ.get("ARTIFACT_VERIFY_REEXEC"):
            os.environ["ARTIFACT_VERIFY_REEXEC"] = "1"
            os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
        print(f"verify.py needs numpy and scipy: run it with the project venv ({VENV_PYTHON}; create it with "
              "scripts/bootstrap.sh).", file=sys.stderr)
        sys.exit(2)


def _default_expected(results: Path) -> Path:
    """expected/<model>-<profile> as named by the results' manifest.json (model_name, profile), else
    expected/<name of the results folder> (the pipeline names both folders by the same label)."""
    label = results.resolve().name
    manifest = results / "manifest.json"
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text())
            if isinstance(doc.get("model_name"), str) and isinstance(doc.get("profile"), str):
                label = f"{doc['model_name']}-{doc['profile']}"
        except (ValueError, AttributeError):
            pass
    return ROOT / "expected" / label


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "embedded-smoke",
                        help="regenerated results folder (default: results/embedded-smoke, run_all.sh's)")
    parser.add_argument("--expected", type=Path, default=None,
                        help="expected profile folder (default: expected/<model>-<profile> from the results' "
                             "manifest.json, else expected/<results folder name>)")
    parser.add_argument("--report", type=Path, default=None, help="report folder (default: <results>/verify)")
    parser.add_argument("--record", type=Path, metavar="PROFILE_DIR", default=None,
                        help="store --results as a new expected profile instead of verifying")
    parser.add_argument("--calibrate-from", type=Path, nargs="+", metavar="RESULTS_DIR", default=None,
                        help="with --record: replicate results folders (other noise seeds / batch sizes) to "
                             "calibrate the tolerances from")
    parser.add_argument("--same-seed-from", type=Path, nargs="+", metavar="RESULTS_DIR", default=None,
                        help="with --calibrate-from: reruns with the reference's seed and batch size (other thread "
                             "counts or devices) to calibrate the same-seed tier from")
    parser.add_argument("--tolerances", type=Path, metavar="FILE", default=None,
                        help="with --record: an existing tolerances.json to store instead of calibrating")
    parser.add_argument("--claims-only", action="store_true",
                        help="with --record: store only the run's claims (no replicates to calibrate curves from)")
    parser.add_argument("--same-seed-tier-from", type=Path, metavar="PROFILE",
                        help="with --record, instead of --calibrate-from: record the curves with the same-seed tier "
                             "only, its tolerance and Known-set allowance taken from PROFILE (same model, code and "
                             "numerics); other-seed reruns cannot be judged against the result")
    parser.add_argument("--other-seed-from-samples", action="store_true",
                        help="with --record and --same-seed-tier-from, instead of --calibrate-from: no replicates; a "
                             "run with another seed is judged by the noise_band checks from the reference's own "
                             "per-sample noise streams (refused when the reference kept none). The same-seed tier and "
                             "Known allowance are carried over from --same-seed-tier-from PROFILE (the float64 bound "
                             "is a property of the model and code, not of the noise draw; it may be the profile being "
                             "re-recorded)")
    parser.add_argument("--float64-from", type=Path, metavar="RESULTS_DIR", default=None,
                        help="with --calibrate-from or --update-same-seed: the reference's profile run in float64 "
                             "(bench/numerics_bound.py); the same-seed tolerance per metric is set from its cell "
                             "differences to the fp32 cells (expected/README.md, 'same-seed')")
    parser.add_argument("--update-same-seed", type=Path, metavar="PROFILE_DIR", default=None,
                        help="re-set a recorded profile's same-seed tier from --float64-from (or, for a profile that "
                             "borrows it, from --same-seed-tier-from PROFILE) without re-recording the profile; "
                             "rewrites its tolerances.json and that file's sha256 in manifest.json")
    parser.add_argument("--force", action="store_true", help="with --record: overwrite an existing profile")
    parser.add_argument("--no-recompute", action="store_true",
                        help="trust the derived files (aggregates, comparison) instead of checking the traces "
                             "against their sha256 lists and recomputing; for folders without traces (the report "
                             "says the recomputation was skipped)")
    args = parser.parse_args(argv)
    recording_only = [name for name, value in (("--calibrate-from", args.calibrate_from),
                                               ("--tolerances", args.tolerances),
                                               ("--claims-only", args.claims_only), ("--force", args.force),
                                               ("--same-seed-from", args.same_seed_from),
                                               ("--same-seed-tier-from", args.same_seed_tier_from),
                                               ("--other-seed-from-samples", args.other_seed_from_samples))
                      if value]
    if args.update_same_seed is not None:
        if args.record is not None or (args.float64_from is None) == (args.same_seed_tier_from is None):
            parser.error("--update-same-seed takes one of --float64-from RESULTS_DIR and --same-seed-tier-from "
                         "PROFILE, and no --record")
        return args
    if args.float64_from is not None and not args.calibrate_from:
        parser.error("--float64-from goes with --record ... --calibrate-from, or with --update-same-seed")
    if args.record is None and recording_only:
        parser.error(f"{', '.join(recording_only)} only go with --record PROFILE_DIR")
    if args.record is not None and sum(map(bool, (args.calibrate_from, args.tolerances,
                                                   args.same_seed_tier_from))) > 1:
        parser.error("give one of --calibrate-from, --tolerances and --same-seed-tier-from")
    if args.other_seed_from_samples and not args.same_seed_tier_from:
        parser.error("--other-seed-from-samples needs --same-seed-tier-from PROFILE: the recorded profile (of the same "
                     "model and code) whose same-seed tier and Known allowance are carried over")
    return args


def record(args: argparse.Namespace) -> int:
    from artifact import verification as v  # lazy: scipy

    if not args.results.is_dir():
        print(f"verify.py --record: no results folder {args.results}", file=sys.stderr)
        return 2
    tolerances = None
    try:
        if args.calibrate_from:
            print(f"calibrating tolerances: {len(args.calibrate_from)} replicate(s) against {args.results} ...")
            tolerances = v.calibrate_tolerances(args.calibrate_from, args.results,
                                                same_seed_from=args.same_seed_from or (),
                                                float64_from=args.float64_from)
            for name, power in tolerances["power"].items():
                print(f"  power {name:22} {'detected' if power['detected'] else 'NOT detected'}"
                      f" ({power['replicates_detected']}/{power['replicates']} replicates)")
            print(f"  calibration verdict: {tolerances['verdict']}")
            if "leave_one_out" in tolerances:
                loo = tolerances["leave_one_out"]
                print(f"  leave-one-out: {loo['replicates_failing']} of {loo['replicates']} replicates FAIL when "
                      "held out of the calibration")
            if "same_seed" in tolerances:
                print(f"  same-seed tier: {tolerances['same_seed'].get('metrics') or tolerances['same_seed']['value']} "
                      f"({tolerances['same_seed']['how_chosen']})")
        elif args.tolerances:
            tolerances = json.loads(args.tolerances.read_text())
        elif args.other_seed_from_samples:
            tolerances = v.per_sample_tolerances(args.results, args.same_seed_tier_from)
            print(f"  other-seed tier: {tolerances['other_seed']['how_chosen']}")
            print(f"  same-seed tier: {tolerances['same_seed']['metrics']} ({tolerances['same_seed']['how_chosen']})")
        elif args.same_seed_tier_from:
            tolerances = v.borrow_same_seed_tier(args.same_seed_tier_from)
            print(f"  same-seed tier only: {tolerances['same_seed']['how_chosen']}")
        elif not args.claims_only:
            print("verify.py --record: the tolerances must be calibrated from replicate runs. Rerun the same profile "
                  "with other noise seeds (and batch sizes) into other results folders, then pass them:\n"
                  f"  ./verify.py --record {args.record} --results {args.results} --calibrate-from RESULTS_DIR ...\n"
                  "or pass --tolerances FILE, or --claims-only to store only the claims.", file=sys.stderr)
            return 2
        notes = v.record_profile(args.results, args.record, tolerances, claims_only=args.claims_only,
                                 force=args.force)
    except (v.VerifyError, OSError, ValueError) as error:
        print(f"verify.py --record: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"  {note}")
    print(f"recorded expected profile {args.record}")
    return 0


def update_same_seed(args: argparse.Namespace) -> int:
    from artifact import verification as v  # lazy: scipy

    try:
        same_seed = v.update_same_seed(args.update_same_seed, float64_from=args.float64_from,
                                       borrow_from=args.same_seed_tier_from)
    except (v.VerifyError, OSError, ValueError, KeyError) as error:
        print(f"verify.py --update-same-seed: {error}", file=sys.stderr)
        return 2
    print(f"same-seed tier of {args.update_same_seed}: {same_seed['metrics']} ({same_seed['how_chosen']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _ensure_environment()
    if args.update_same_seed is not None:
        return update_same_seed(args)
    if args.record is not None:
        return record(args)
    from artifact import verification as v  # lazy: scipy

    expected = args.expected if args.expected is not None else _default_expected(args.results)
    if not expected.is_dir():
        profiles = sorted(p.name for p in (ROOT / "expected").iterdir() if p.is_dir()) \
            if (ROOT / "expected").is_dir() else []
        print(f"verify.py: NO VERDICT: no expected profile applies to {args.results}: {expected} does not exist. "
              f"Stored profiles: {', '.join(profiles) or 'none'}. Pass one with --expected DIR (it must describe "
              "the same model, facts and profile), or record this run as a profile with --record.")
        return 2
    from artifact.verification.load import profile_format_problem  # lazy: scipy

    problem = profile_format_problem(expected)
    if problem is not None:
        print(f"verify.py: NO VERDICT: the expected profile {expected} cannot be used: {problem}.")
        return 2
    report = v.verify(args.results, expected, recompute=not args.no_recompute)
    print(v.render_table(report))
    if args.report is None and not args.results.is_dir():
        print(f"no report written: {args.results} does not exist (pass --report DIR to write one elsewhere)")
        return 1
    folder = args.report if args.report is not None else ResultsFolder(args.results).verify_dir
    try:
        json_path, md_path = v.write_report(report, folder)
        print(f"report: {md_path} and {json_path.name}")
    except (OSError, DiskFullError) as error:  # the verdict stands; a full disk says where and what to do
        print(f"verify.py: could not write the report to {folder}: {error}", file=sys.stderr)
    return 0 if report.verdict == v.PASS else 1


if __name__ == "__main__":
    sys.exit(main())
