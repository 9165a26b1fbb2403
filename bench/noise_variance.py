"""Calibration of the within-run noise variance (issue 28): does the spread of a run's own noise samples predict how
much its AIE curves move under another seed?

    .venv/bin/python bench/noise_variance.py --facts 10 --samples 5 --seeds 1 2 3 --kind hidden

Traces the first `--facts` facts of our own set that the embedded SmolLM2 answers (T->T, the answer token is the
model's own prediction when the fact's is not), with per-sample noise streams at each seed (noise 3 sigma of the
subject embeddings). Per token group and layer, each run's AIE curve is the mean over facts and its S noise
samples; the within-run prediction of its variance under another seed is var_s(per-sample curve) / S (ddof 1,
pooled over the runs: k (S - 1) degrees of freedom), the observed one is the variance over the k seeds' curves
(k - 1 degrees of freedom). Prints, over every (group, layer) cell where the prediction is positive:
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
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kind", default="hidden")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    import torch
    from scipy.stats import f as f_dist

    from artifact.analysis.effects import group_effects, per_sample_ie
    from artifact.core.names import GROUPS
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
    k, F, S = data.shape[:3]

    def statistics(weights: np.ndarray) -> tuple[float, float, float]:
        w = weights / weights.sum()
        curves = np.einsum("f,kfsgl->ksgl", w, np.nan_to_num(data))  # per-sample curves per run
        predicted = curves.var(axis=1, ddof=1).mean(axis=0) / S  # [group, layer], pooled over runs
        observed = curves.mean(axis=1).var(axis=0, ddof=1)
        ok = np.isfinite(data).all(axis=(0, 1, 2)) & (predicted > 1e-14)
        ratio = observed[ok] / predicted[ok]
        threshold = f_dist.ppf(0.95, k - 1, k * (S - 1))
        return float(observed[ok].sum() / predicted[ok].sum()), float(ratio.mean()), float((ratio > threshold).mean())

    pooled, mean_ratio, above = statistics(np.ones(F))
    rng = np.random.default_rng(0)
    boot = np.array([statistics(rng.multinomial(F, np.full(F, 1 / F)).astype(float))[0]
                     for _ in range(args.resamples)])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    df2 = k * (S - 1)
    expected_mean = df2 / (df2 - 2) if df2 > 2 else float("nan")
    noise_lo, noise_hi = pooled / f_dist.ppf(0.975, k - 1, df2), pooled / f_dist.ppf(0.025, k - 1, df2)
    result = {"facts": F, "samples": S, "seeds": args.seeds, "kind": args.kind, "noise": noise,
              "pooled_ratio": pooled, "pooled_ratio_ci95": [float(lo), float(hi)],
              "pooled_ratio_noise_ci95": [float(noise_lo), float(noise_hi)], "mean_cell_ratio": mean_ratio,
              "mean_cell_ratio_if_calibrated": expected_mean, "share_above_F95": above,
              "seconds": time.perf_counter() - started, "groups": list(GROUPS)}
    print(f"observed between-run / predicted within-run variance of the AIE curves, {F} facts, S = {S}, "
          f"{k} seeds, kind {args.kind}:")
    print(f"  pooled ratio {pooled:.3f} (95% CI over facts {lo:.3f}-{hi:.3f}; from the {k} noise draws, "
          f"conservatively, {noise_lo:.3f}-{noise_hi:.3f}); mean per-cell ratio "
          f"{mean_ratio:.3f} (calibrated: {expected_mean:.3f}); cells above the F(0.95) quantile {above:.1%} "
          "(calibrated: 5%)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
