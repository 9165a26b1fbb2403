"""The family-wise false-FAIL rate of verify's other-seed tier (artifact/verification/family.py) on real runs.

    .venv/bin/python bench/family_rate.py RUN1 RUN2 RUN3 [--pairs 200] [--seed 0]
    .venv/bin/python bench/family_rate.py RUN1 RUN2 --from-traces --arms t2t    # runs still tracing: their traces

Each RUN is a results folder (./run_all.sh --out RUN --seed k) traced with per-sample noise streams, RUN1 the
reference. Their noise-sample sets are pooled (3 runs x S = 5 gives 15; sample s of a run is one noise stream for
every fact, kind and group, and for its carry-over patching) and `--pairs` honest pseudo-pairs are drawn: two
disjoint sets of S sample sets (seeded), each standing for one run, judged by the whole family (bands, curve shapes,
peaks, per-fact maps, carry-over patching, claim statistics) as verify judges a run against its profile. Prints the
share of pseudo-pairs with any FAIL and its exact (Clopper-Pearson) 95% interval, which checks failed, then the
held-out real pairs (RUN2 vs RUN1, RUN3 vs RUN1, ...) with their verdicts and the family's critical value, and the
seconds one family judgement takes.

Pseudo-pairs drawn from the same pool share sample sets, so they are not independent of each other: the interval
is the binomial one, a guide, not exact. Every pseudo-pair is itself an exact test under exchangeability.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from artifact.core.names import ARMS, KINDS
from artifact.verification.carryover import carryover_results, stacked_arrays
from artifact.verification.family_inputs import family_checks, family_samples
from artifact.verification.load import ArmData, load_arm_from_traces, load_run_arm
from artifact.verification.records import CHECK_GROUPS, DEFAULT_METRICS, FAIL, SHAPE_GROUPS

PER_SAMPLE_CARRYOVER = ("patch_prob_per_sample", "low_prob_per_sample")


def common_facts(runs: list[dict[str, ArmData]], kinds: tuple[str, ...], notes: list[str]
                 ) -> dict[str, dict[str, list[str]]]:
    """{arm: {kind: facts traced in every run}} (reference order), over `kinds` that every run keeps per-sample
    effects of for every metric (the family judges per-sample data); `notes` is told of each kind left out."""
    out: dict[str, dict[str, list[str]]] = {}
    for arm in runs[0]:
        out[arm] = {}
        for kind in (k for k in runs[0][arm].kinds() if k in kinds):
            if any(f"{kind}_{metric}" not in run[arm].samples for run in runs for metric in DEFAULT_METRICS):
                notes.append(f"{arm}/{kind}: some run kept no per-sample effects (traces of an older format); left out")
                continue
            ids = [i for i in runs[0][arm].fact_ids[kind] if all(i in r[arm].fact_ids.get(kind, ()) for r in runs[1:])]
            if len(ids) >= 2:
                out[arm][kind] = ids
            else:
                notes.append(f"{arm}/{kind}: {len(ids)} fact(s) in every run; left out")
    return out


def pooled(runs: list[dict[str, ArmData]], facts: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, np.ndarray]]:
    """{arm: {"<kind>_<metric>": [fact, pooled sample, group, layer]}} over the common facts, runs in order."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for arm, kinds in facts.items():
        out[arm] = {}
        for kind, ids in kinds.items():
            for metric in DEFAULT_METRICS:
                name = f"{kind}_{metric}"
                parts = []
                for run in runs:
                    index = {i: n for n, i in enumerate(run[arm].fact_ids[kind])}
                    parts.append(run[arm].samples[name][[index[i] for i in ids]])
                out[arm][name] = np.concatenate(parts, axis=1)
    return out


def pseudo_run(arm: str, facts: dict[str, list[str]], pool: dict[str, np.ndarray], chosen: np.ndarray) -> ArmData:
    """One arm of a pseudo-run made of the pooled sample sets `chosen`."""
    samples = {name: x[:, chosen] for name, x in pool.items()}
    effects = {name: x.mean(axis=1) for name, x in samples.items()}
    known = facts[next(iter(facts))]
    return ArmData(arm, Path("."), {}, known, effects, dict(facts), samples=samples)


def carryover_pool(folders: list[Path]) -> tuple[list[dict[str, np.ndarray]], dict] | None:
    """Every run's stacked carry-over arrays with per-sample patching values and the plan, or None."""
    out = []
    for folder in folders:
        document = carryover_results(folder)
        if document is None:
            return None
        ids, arrays = stacked_arrays(folder)
        if not all(k in arrays for k in PER_SAMPLE_CARRYOVER):
            return None
        out.append((ids, arrays, document["settings"]["plan"]))
    if len({tuple(ids) for ids, _, _ in out}) != 1:
        return None
    return [arrays for _, arrays, _ in out], out[0][2]


def carryover_pair(carry, chosen_a: np.ndarray, chosen_b: np.ndarray):
    """(run A's, run B's carry-over arrays, plan) made of pooled sample sets."""
    if carry is None:
        return None
    runs, plan = carry
    patch = np.concatenate([r["patch_prob_per_sample"] for r in runs], axis=-1)
    low = np.concatenate([r["low_prob_per_sample"] for r in runs], axis=-1)
    side = lambda c: {"patch_prob_per_sample": patch[..., c], "low_prob_per_sample": low[..., c]}
    return side(chosen_a), side(chosen_b), plan


def judge_pair(arms: dict[str, tuple[ArmData, ArmData]], carryover, claims: bool) -> list:
    samples, why = family_samples(arms)
    if samples is None:
        raise SystemExit(f"the family cannot judge these runs: {why}")
    return family_checks(arms, DEFAULT_METRICS, CHECK_GROUPS, SHAPE_GROUPS, samples, carryover, claims=claims)


def report_rate(failing: int, pairs: int, which: collections.Counter, checks: int, seconds: list[float]) -> None:
    """The honest pseudo-pairs' false-FAIL rate with its exact binomial interval, and which checks failed."""
    ci = binomtest(failing, pairs).proportion_ci(0.95, method="exact")
    print(f"honest pseudo-pairs: {failing} of {pairs} FAIL the family: rate {failing / pairs:.3f}, exact 95% "
          f"interval [{ci.low:.3f}, {ci.high:.3f}] (nominal at most 0.05); {checks} checks each, "
          f"median {np.median(seconds):.2f} s per judgement")
    for label, count in which.most_common(10):
        print(f"  {count:4d}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="results folders; the first is the reference")
    parser.add_argument("--pairs", type=int, default=200, help="honest pseudo-pairs drawn from the pooled samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-traces", action="store_true",
                        help="read the per-sample effects from the trace files (runs not yet aggregated)")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms (default: both)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds (default: all)")
    parser.add_argument("--no-claims", action="store_true", help="leave the claims' conditions out of the family")
    args = parser.parse_args()
    if len(args.runs) < 2:
        parser.error("give at least two run folders (the reference and one other seed)")
    arms_wanted = tuple(a for a in args.arms.split(",") if a)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    load = (lambda f, a: load_arm_from_traces(f, a, kinds=kinds)) if args.from_traces else load_run_arm
    runs = [{arm: load(folder, arm) for arm in arms_wanted} for folder in args.runs]
    notes: list[str] = []
    facts = common_facts(runs, kinds, notes)
    for note in notes:
        print(f"note: {note}")
    if not all(facts.values()):
        raise SystemExit("no kind with per-sample effects in every run for "
                         + ", ".join(arm for arm, k in facts.items() if not k))
    pool = pooled(runs, facts)
    carry = None if args.from_traces or set(arms_wanted) != set(ARMS) else carryover_pool(args.runs)
    S = next(iter(pool["t2t"].values())).shape[1] // len(runs)
    total = S * len(runs)
    print(f"{len(runs)} runs x {S} noise samples = {total} pooled sample sets; facts "
          + ", ".join(f"{arm} {len(k[next(iter(k))])}" for arm, k in facts.items())
          + f"; carry-over patching per sample: {'yes' if carry else 'no'}")
    rng = np.random.default_rng(args.seed)
    failing, which, seconds = 0, collections.Counter(), []
    for _ in range(args.pairs):
        order = rng.permutation(total)
        a, b = np.sort(order[:S]), np.sort(order[S:2 * S])
        arms = {arm: (pseudo_run(arm, facts[arm], pool[arm], a), pseudo_run(arm, facts[arm], pool[arm], b))
                for arm in pool}
        start = time.perf_counter()
        checks = judge_pair(arms, carryover_pair(carry, a, b), not args.no_claims)
        seconds.append(time.perf_counter() - start)
        failed = [c for c in checks if c.verdict == FAIL]
        failing += bool(failed)
        which.update(f"{c.check} {'/'.join(str(x) for x in (c.arm, c.kind, c.metric, c.group) if x)}" for c in failed)
    if args.pairs:
        report_rate(failing, args.pairs, which, len(checks), seconds)
    for n, folder in enumerate(args.runs[1:], start=1):
        own = np.arange(S * n, S * (n + 1))
        ref = np.arange(S)
        arms = {arm: (pseudo_run(arm, facts[arm], pool[arm], own), pseudo_run(arm, facts[arm], pool[arm], ref))
                for arm in pool}
        checks = judge_pair(arms, carryover_pair(carry, own, ref), not args.no_claims)
        failed = [c for c in checks if c.verdict == FAIL]
        skipped = sum(c.verdict == "SKIP" for c in checks)
        critical = next((c.detail.split("critical z ")[1].split(" ")[0] for c in checks if "critical z " in c.detail),
                        "n/a")
        print(f"held out: {folder} vs {args.runs[0]}: {'FAIL' if failed else 'PASS'} ({len(checks) - skipped} judged, "
              f"{skipped} SKIP, critical z {critical})"
              + "".join(f"\n  FAIL {c.check} {'/'.join(str(x) for x in (c.arm, c.kind, c.metric, c.group) if x)}: "
                        f"{c.detail[:160]}" for c in failed))


if __name__ == "__main__":
    main()
