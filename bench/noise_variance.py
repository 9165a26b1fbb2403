"""Calibration of the within-run noise variance (issue 28): does the spread of a run's own noise samples predict how
much its AIE curves move under another seed?

    .venv/bin/python bench/noise_variance.py --facts 10 --samples 5 --seeds 1 2 3 --kind hidden
    .venv/bin/python bench/noise_variance.py --runs results/smoke-s1 results/smoke-s2 results/smoke-s3

Two sources of runs:
- tracing (the default): traces the first `--facts` facts of our own set that the embedded SmolLM2 answers (T->T,
  the answer token is the model's own prediction when the fact's is not), with per-sample noise streams at each seed
  (noise 3 sigma of the subject embeddings), kind `--kind`;
- `--runs DIR DIR ...`: pipeline results folders of one profile with per-sample streams and other seeds (no tracing):
  both arms, every kind, metric `--metrics` (each arm's aggregate/group_effects.npz "<kind>_<metric>_per_sample"
  [fact, sample, group, layer]), and the carry-over patching curves where the carry-over fact files kept per-sample
  values ("patch_<metric>_per_sample" [direction, kind, position, layer, sample] minus "low_<metric>_per_sample"),
  one family per arm/kind/metric and per carry-over direction/kind/metric (`--arms` chooses). Facts are paired by
  known_id (the Known filters draw no noise: every run traces the same facts; a run still tracing, not aggregated
  yet, enters with the facts its finished trace files hold, read by the aggregate's own code).

Per cell (token group or patched position, and layer) each run's curve is the mean over facts and its S noise
samples; the within-run prediction of its variance under another seed is var_s(per-sample curve) / S (ddof 1, pooled
over the runs: k (S - 1) degrees of freedom), the observed one is the variance over the k seeds' curves (k - 1
degrees of freedom). Cells where some fact has no value (an empty token group) are left out. Prints per family, over
every cell where the prediction is positive:
- the ratio of the summed observed to the summed predicted variance, with a 95% interval from resampling the
  facts (the same facts in every run);
- the mean per-cell ratio against its value under a correct prediction, E F(k-1, k(S-1)) = k(S-1) / (k(S-1) - 2);
- the share of cells whose ratio exceeds the 95% quantile of that F distribution (5% when calibrated);
- a conservative 95% interval of the true ratio from the noise: R / F quantiles of F(k - 1, k (S - 1)), as if every
  cell moved with one draw (they share the noise: sample s moves every cell of a run), so few seeds leave it wide.
The facts interval sees only which facts were traced, not the k noise draws; a calibrated prediction shows as a
ratio near 1 and a share near 5% on average, not per cell.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ARMS = ("t2t", "s2t")


def calibration(data: np.ndarray, resamples: int, seed: int = 0) -> dict[str, Any]:
    """The observed / predicted variance of the curves from per-sample effects `data` [run, fact, sample, cell] of k
    runs (other seeds) over the same facts: pooled ratio with its facts-bootstrap and noise intervals, mean per-cell
    ratio, share of cells above the F 95% quantile, and how many cells entered."""
    from scipy.stats import f as f_dist  # lazy: scipy, only for the statistics

    data = np.asarray(data, dtype=np.float64)
    data = data[..., np.isfinite(data).all(axis=(0, 1, 2))]  # cells every fact of every run has
    k, F, S, cells = data.shape
    if k < 2 or S < 2 or F < 1:
        raise ValueError(f"need at least 2 runs, 2 noise samples and 1 fact, got {k}, {S}, {F}")
    df2 = k * (S - 1)
    threshold = f_dist.ppf(0.95, k - 1, df2)

    def statistics(weights: np.ndarray) -> tuple[float, float, float, int]:
        w = weights / weights.sum()
        curves = np.einsum("f,kfsc->ksc", w, data)  # per-sample curves per run
        predicted = curves.var(axis=1, ddof=1).mean(axis=0) / S  # [cell], pooled over runs
        observed = curves.mean(axis=1).var(axis=0, ddof=1)
        ok = predicted > 1e-14
        ratio = observed[ok] / predicted[ok]
        return (float(observed[ok].sum() / predicted[ok].sum()), float(ratio.mean()),
                float((ratio > threshold).mean()), int(ok.sum()))

    pooled, mean_ratio, above, used = statistics(np.ones(F))
    rng = np.random.default_rng(seed)
    boot = np.array([statistics(rng.multinomial(F, np.full(F, 1 / F)).astype(float))[0] for _ in range(resamples)])
    lo, hi = np.nanquantile(boot, [0.025, 0.975])
    return {"runs": k, "facts": F, "samples": S, "cells": used, "pooled_ratio": pooled,
            "pooled_ratio_ci95": [float(lo), float(hi)],
            "pooled_ratio_noise_ci95": [pooled / float(f_dist.ppf(0.975, k - 1, df2)),
                                        pooled / float(f_dist.ppf(0.025, k - 1, df2))],
            "mean_cell_ratio": mean_ratio, "mean_cell_ratio_if_calibrated": df2 / (df2 - 2) if df2 > 2 else None,
            "share_above_F95": above}


def _paired(ids: Sequence[Sequence[str]]) -> list[str]:
    """The facts every run has, in the first run's order."""
    shared = set(ids[0]).intersection(*map(set, ids[1:]))
    return [i for i in ids[0] if i in shared]


def arm_data(folder: Path, arm: str, metrics: Sequence[str], notes: list[str]):
    """One arm of a results folder (verification.load.ArmData): from its aggregate, or, while the run has not
    aggregated yet, from its finished trace files (`load.load_arm_from_traces`, the aggregate's own code)."""
    from artifact.core.layout import EFFECTS_FILE  # lazy: the project's code
    from artifact.verification.load import find_run_dir, load_arm_from_traces, load_run_arm

    if (find_run_dir(folder, arm) / "aggregate" / EFFECTS_FILE).is_file():
        return load_run_arm(folder, arm)
    data = load_arm_from_traces(folder, arm, tuple(metrics))
    notes.append(f"{folder} {arm}: not aggregated yet, read from its finished trace files "
                 f"({', '.join(f'{k} {len(v)} facts' for k, v in data.fact_ids.items()) or 'none'})")
    return data


def run_families(folders: Sequence[Path], metrics: Sequence[str], arms: Sequence[str] = ARMS
                 ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per family ("t2t/mlp/prob", "carryover/text_to_speech/hidden/prob", ...) the per-sample effects [run, fact,
    sample, cell] of results folders `folders` (facts every run has; `arms`: which arms), and notes on what was left
    out and why. A ValueError names a folder that cannot enter (no per-sample streams, a seed used twice, other
    sample counts)."""
    from artifact.verification.carryover import carryover_results, stacked_arrays  # lazy: the project's code
    from artifact.verification.same_seed import noise_streams

    families: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for arm in (a for a in arms if a in ARMS):
        arms_data = [arm_data(folder, arm, metrics, notes) for folder in folders]
        seeds = [(a.settings or {}).get("seed") for a in arms_data]
        for folder, data in zip(folders, arms_data):
            if noise_streams(data.settings) != "per_sample":
                raise ValueError(f"{folder} ({arm}) drew its noise from {noise_streams(data.settings)!r} streams: "
                                 "its samples are not independent draws (run the profile with per-sample streams)")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"the runs must use different noise seeds ({arm}: seeds {seeds})")
        for kind in arms_data[0].kinds():
            for metric in metrics:
                name = f"{kind}_{metric}"
                if any(kind not in a.fact_ids for a in arms_data):
                    notes.append(f"{arm}/{kind}/{metric}: not traced (yet) in every run; left out")
                    continue
                if any(name not in a.samples for a in arms_data):
                    notes.append(f"{arm}/{kind}/{metric}: some run kept no per-sample effects; left out")
                    continue
                ids = _paired([a.fact_ids[kind] for a in arms_data])
                stacked = [a.samples[name][[a.fact_ids[kind].index(i) for i in ids]] for a in arms_data]
                if len({s.shape for s in stacked}) != 1:
                    raise ValueError(f"{arm}/{kind}/{metric}: the runs' per-sample arrays differ in shape "
                                     f"{[s.shape for s in stacked]} (other sample counts?)")
                families[f"{arm}/{kind}/{metric}"] = np.stack([s.reshape(*s.shape[:2], -1) for s in stacked])
    if "carryover" not in arms:
        return families, notes
    documents = [carryover_results(folder) for folder in folders]
    if any(d is None for d in documents):
        notes.append("carry-over: some run has no carry-over results; left out")
        return families, notes
    stacks = [stacked_arrays(folder) for folder in folders]
    plan = documents[0]["settings"]["plan"]
    ids = _paired([s[0] for s in stacks])
    for metric in metrics:
        names = (f"patch_{metric}_per_sample", f"low_{metric}_per_sample")
        if any(n not in arrays for _, arrays in stacks for n in names):
            notes.append(f"carry-over {metric}: the fact files keep no per-sample values (the hook path, or an "
                         "older version); left out")
            continue
        ies = []
        for run_ids, arrays in stacks:
            rows = [run_ids.index(i) for i in ids]
            patch, low = arrays[names[0]][rows], arrays[names[1]][rows]  # [f, d, k, p, L, S], [f, d, S]
            ies.append(np.moveaxis(patch - low[:, :, None, None, None, :], -1, 1))  # [f, S, d, k, p, L]
        for d, direction in enumerate(plan["directions"]):
            for k, kind in enumerate(plan["patch_kinds"]):
                families[f"carryover/{direction}/{kind}/{metric}"] = np.stack(
                    [ie[:, :, d, k].reshape(*ie.shape[:2], -1) for ie in ies])
    return families, notes


def traced_family(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tracing mode: {"t2t/<kind>/prob": [seed, fact, sample, cell]} traced here, and what was traced."""
    import torch

    from artifact.analysis.effects import group_effects, per_sample_ie
    from artifact.facts import load_facts
    from artifact.models import load_model
    from artifact.prompts.build import text_prompt
    from artifact.tracing import TraceConfig, calibrate_noise, trace_fact

    loaded = load_model("embedded", device="cpu")
    prompts = []
    for fact in load_facts("own"):
        try:
            prompt = text_prompt(loaded.tokenizer, fact.prompt, fact.subject, fact.attribute, spiritlm=False)
        except ValueError:
            continue
        ids = torch.tensor(prompt.input_ids)
        with torch.no_grad():
            if int(loaded.model(ids[None]).logits[0, -1].argmax()) != prompt.target_id:
                continue
        prompts.append(prompt)
        if len(prompts) == args.facts:
            break
    noise = calibrate_noise(loaded.model, loaded.tokenizer, [f.subject for f in load_facts("own")])
    started = time.perf_counter()
    runs = []  # [seed] -> [fact, sample, group, layer]
    for seed in args.seeds:
        per_fact = []
        for prompt in prompts:
            ids = torch.tensor(prompt.input_ids)
            config = TraceConfig(kind=args.kind, samples=args.samples, noise=noise, seed=seed,
                                 noise_streams="per_sample")
            arrays = trace_fact(loaded.model, ids, tuple(prompt.subject_range), prompt.target_id, config,
                                loaded.adapter).to_arrays()
            per_fact.append([group_effects(x, prompt.subject_range, len(ids) - 1)
                             for x in per_sample_ie(arrays, "prob")])
        runs.append(np.array(per_fact))
        print(f"seed {seed}: {len(prompts)} facts traced ({time.perf_counter() - started:.0f} s so far)", flush=True)
    data = np.stack(runs)  # [seed, fact, sample, group, layer]
    return ({f"t2t/{args.kind}/prob": data.reshape(*data.shape[:3], -1)},
            {"noise": noise, "seeds": args.seeds, "kind": args.kind, "trace_seconds": time.perf_counter() - started})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, nargs="+", metavar="RESULTS_DIR",
                        help="pipeline results folders (other seeds, per-sample streams) instead of tracing")
    parser.add_argument("--arms", nargs="+", default=[*ARMS, "carryover"], choices=[*ARMS, "carryover"],
                        help="with --runs: which arms (and the carry-over patching) enter (default all)")
    parser.add_argument("--metrics", nargs="+", default=["prob"], choices=["prob", "logprob"],
                        help="with --runs: the metrics (default prob)")
    parser.add_argument("--facts", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kind", default="hidden")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.runs:
        if len(args.runs) < 2:
            parser.error("--runs needs at least two results folders (other noise seeds)")
        try:
            families, notes = run_families(args.runs, args.metrics, args.arms)
        except (ValueError, OSError) as error:
            print(f"noise_variance.py: {error}", file=sys.stderr)
            return 2
        source: dict[str, Any] = {"runs": [str(r) for r in args.runs], "notes": notes}
    else:
        families, source = traced_family(args)
        notes = []
    rows = {name: calibration(data, args.resamples) for name, data in families.items()}
    result = {**source, "families": rows, "seconds": time.perf_counter() - started}
    first = next(iter(rows.values()))
    print(f"observed between-run / predicted within-run variance of the AIE curves ({first['runs']} runs, "
          f"S = {first['samples']}; calibrated: pooled ratio 1, mean per-cell ratio "
          f"{first['mean_cell_ratio_if_calibrated']:.3f}, 5% of cells above F(0.95)):")
    print(f"  {'family':36} {'facts':>5} {'cells':>5} {'ratio':>6} {'95% CI over facts':>18} "
          f"{'noise CI (conservative)':>24} {'mean cell':>9} {'>F95':>6}")
    for name, row in rows.items():
        lo, hi = row["pooled_ratio_ci95"]
        nlo, nhi = row["pooled_ratio_noise_ci95"]
        print(f"  {name:36} {row['facts']:5d} {row['cells']:5d} {row['pooled_ratio']:6.3f} {lo:8.3f} - {hi:<7.3f} "
              f"{nlo:11.3f} - {nhi:<10.3f} {row['mean_cell_ratio']:9.3f} {row['share_above_F95']:6.1%}")
    for note in notes:
        print(f"  note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
