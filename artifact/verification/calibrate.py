"""Calibration of the tolerances from replicate runs (other noise seeds and batch sizes) against the reference
run, each tolerance stored with how it was chosen, and the detection power of perturbations.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED
from artifact.core.jsonable import jsonable
from artifact.core.names import ARMS, GROUPS
from artifact.verification.carryover import calibrate_bands
from artifact.verification.claim_statistics import calibrate_claim_statistics
from artifact.verification.checks import check_known_set, claims_from_comparison, compare_arm_kind
from artifact.verification.load import ArmData, load_run_arms
from artifact.verification.records import (
    ALPHA,
    BAND_FLOOR,
    CHECK_GROUPS,
    DEFAULT_METRICS,
    FAIL,
    FORMAT_VERSION,
    NULL_PERMUTATIONS,
    SAFETY,
    SIMULATED_RERUNS,
    ClaimsFn,
    VerifyError,
)
from artifact.verification.same_seed import calibrate_same_seed, same_noise
from artifact.verification.statistics import (
    aie_curve,
    band_multiplier,
    band_scale,
    band_statistic,
    centred,
    curve_difference,
    fact_correlations,
    fact_map_correlations,
    known_changes,
    pair,
    peak_layer,
    pearson,
    pearson_rows,
)


def _run_labels(arms: dict[str, ArmData]) -> dict[str, Any]:
    return {arm: {k: (d.settings or {}).get(k) for k in ("seed", "batch_size", "model", "device")}
            for arm, d in arms.items()}


def _derangements(n: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` random permutations of range(n) without fixed points (fixed seed)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count and n > 1:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            out.append(p)
    return out


def _fact_threshold(same: list[np.ndarray], null: list[np.ndarray]) -> tuple[float, float, float, float, float]:
    """Pick the per-fact correlation bound r0 that best separates same-fact from wrong-fact correlations, and the
    required fraction q halfway between them. Returns (r0, q, min same fraction, 95th pct wrong fraction, gap)."""
    grid = np.round(np.arange(-1.0, 1.0001, 0.01), 2)
    best = None  # (r0, s, n, gap) of the widest gap so far
    for r0 in grid:
        s = min(float(np.mean(np.nan_to_num(x, nan=-np.inf) >= r0)) for x in same)
        n = float(np.quantile([np.mean(np.nan_to_num(x, nan=-np.inf) >= r0) for x in null], 0.95)) if null else 0.0
        if best is None or s - n > best[3] + 1e-12:
            best = (float(r0), s, n, s - n)
    r0, s, n, gap = best
    q = math.floor(1000 * (s + n) / 2) / 1000 if gap > 0 else max(0.0, s - 0.05)
    return r0, q, s, n, gap


def simulated_reruns(rep: np.ndarray, ref: np.ndarray, n: int | None = None, seed: int = BOOTSTRAP_SEED
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Curve correlation and |peak shift| of simulated reruns against the reference, from one replicate.

    A rerun's AIE curve differs from the reference's by the mean over facts of the per-fact run-to-run differences
    d = rep - ref [fact, layer]. Resampling facts of d (centred on its mean) draws such differences, so
    ref_curve + mean(d*) - mean(d) is a plausible rerun's curve. Three replicates alone under-sample the argmax of a
    flat-topped curve; these draws measure its spread. Returns ([n] Pearson r, [n] |argmax shift|)."""
    n = SIMULATED_RERUNS if n is None else n
    d = np.asarray(rep, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    keep = np.all(np.isfinite(d), axis=1)
    d, ref = d[keep], np.asarray(ref, dtype=np.float64)[keep]
    if d.shape[0] < 2:
        return np.empty(0), np.empty(0)
    ref_curve = ref.mean(axis=0)
    rng = np.random.default_rng(seed)
    draws = d[rng.integers(0, d.shape[0], (n, d.shape[0]))].mean(axis=1) - d.mean(axis=0)  # [n, layer]
    sims = ref_curve + draws
    shifts = np.abs(np.argmax(sims, axis=1) - int(np.argmax(ref_curve)))
    corrs = pearson_rows(sims, ref_curve[None, :])
    return corrs, shifts


def _band_tolerance(per_run: list[np.ndarray], between: dict[tuple[int, int], np.ndarray], alpha: float,
                    runs_text: str) -> dict[str, Any]:
    """The band of one curve from its curve differences: `per_run[j]` replicate j minus the reference, `between`
    (i, j) replicate j minus replicate i. Every pair of independent runs measures the run-to-run spread; the
    multiplier is a Student t prediction bound (statistics.band_multiplier). Leave-one-out: each replicate judged
    by the band of the reference and the other replicates (observed ratio of its statistic to that multiplier)."""
    L = per_run[0].shape[0]
    k = len(per_run)

    def band_without(skip: int | None) -> tuple[float, np.ndarray]:
        pairs = [d for j, d in enumerate(per_run) if j != skip]
        pairs += [d for (i, j), d in between.items() if skip not in (i, j)]
        runs = k + 1 - (skip is not None)
        return band_multiplier(runs, L, alpha), band_scale(pairs)

    multiplier, scale = band_without(None)
    observed = [band_statistic(d, scale)[0] for d in per_run]
    loo = []
    for j, d in enumerate(per_run):
        m_j, s_j = band_without(j) if k > 1 else (math.nan, scale)
        loo.append(band_statistic(d, s_j)[0] / m_j if math.isfinite(m_j) else math.nan)
    return {"value": multiplier, "scale": scale.tolist(), "runs": k + 1, "observed": observed,
            "leave_one_out_ratio": loo,
            "how_chosen": f"per layer, |curve difference| <= value x scale[layer]; scale = root mean square of the "
                          f"curve differences over all {len(per_run) + len(between)} pairs of the {k + 1} runs "
                          f"(reference and replicates: sqrt(2) x the per-layer SD over runs), its square "
                          f"averaged with the median square over layers (empirical-Bayes moderation) and floored at "
                          f"{BAND_FLOOR}; value = Student t quantile 1 - {alpha}/(2 x {L} layers) with {k} degrees of "
                          f"freedom (a prediction bound for one more run, Bonferroni over layers); "
                          f"leave_one_out_ratio = each replicate's statistic over the multiplier of a band "
                          f"calibrated without it (> 1 would FAIL); {runs_text}"}


def _group_tolerances(per_run: list[tuple[list[str], np.ndarray, np.ndarray]], group: str, runs_text: str,
                      safety: float, alpha: float, seed: int,
                      between_replicates: dict[tuple[int, int], tuple[list[str], np.ndarray, np.ndarray]]
                      ) -> dict[str, Any]:
    """band, curve_correlation and peak_shift of one group from the paired (ids, replicate, reference) arrays of
    every replicate, and for the band also the (ids, replicate j, replicate i) pairs (see calibrate_tolerances)."""
    band = _band_tolerance([curve_difference(rr, ee, group) for _, rr, ee in per_run],
                           {ij: curve_difference(a, b, group) for ij, (_, a, b) in between_replicates.items()},
                           alpha, runs_text)
    g = GROUPS.index(group)
    corrs, shifts, sim_corrs, sim_shifts = [], [], [], []
    for n_run, (_, rr, ee) in enumerate(per_run):
        rc, ec = aie_curve(rr, group), aie_curve(ee, group)
        corrs.append(pearson(rc, ec))
        pr, pe = peak_layer(rc), peak_layer(ec)
        shifts.append(abs(pr - pe) if pr is not None and pe is not None else math.nan)
        c_sim, s_sim = simulated_reruns(rr[:, g, :], ee[:, g, :], seed=seed + n_run)
        sim_corrs.append(c_sim)
        sim_shifts.append(s_sim)
    sim_c, sim_s = np.concatenate(sim_corrs), np.concatenate(sim_shifts)
    sim_c = sim_c[np.isfinite(sim_c)]
    q_corr = float(np.quantile(sim_c, 0.01)) if sim_c.size else math.nan
    candidates = [c for c in corrs if math.isfinite(c)] + ([q_corr] if sim_c.size else [])
    r_min = min(candidates) if candidates else math.nan
    c_bound = float(np.clip(1 - safety * (1 - r_min), -1, 1)) if candidates else math.nan
    q_shift = int(np.quantile(sim_s, 0.99)) if sim_s.size else 0
    m_obs = int(max((x for x in shifts if math.isfinite(x)), default=0))
    return {
        "band": band,
        "curve_correlation": {"value": c_bound, "observed": corrs, "simulated_q01": q_corr,
                              "how_chosen": f"1 - {safety} x (1 - r_min), clipped to [-1, 1]; r_min = the smaller of "
                                            f"the min Pearson r of the AIE curves over replicates and the 1st "
                                            f"percentile over {SIMULATED_RERUNS} simulated reruns per replicate "
                                            f"(simulated_reruns); {runs_text}"},
        "peak_shift": {"value": max(m_obs, q_shift) + 1, "observed": shifts, "simulated_q99": q_shift,
                       "how_chosen": f"1 + max(max observed |peak shift| over replicates = {m_obs}, 99th percentile "
                                     f"over {SIMULATED_RERUNS} simulated reruns per replicate = {q_shift}); "
                                     f"{runs_text}"},
    }


def _check_replicates(ref: dict[str, ArmData], runs: list[dict[str, ArmData]], result_dirs: Sequence[Path],
                      reference: Path) -> None:
    """Every replicate measures seed variation (another folder and noise seed) and has the reference's arms."""
    for d, arms in zip(result_dirs, runs):
        same = [arm for arm in ref if arm in arms and arms[arm].source.resolve() == ref[arm].source.resolve()]
        same += [arm for arm in ref if arm in arms and arm not in same and same_noise(arms[arm], ref[arm])]
        if same:
            raise VerifyError(f"replicate {d} repeats the reference's {', '.join(same)} noise (same folder or noise "
                              "seed: only float reductions differ): it measures no seed variation. Rerun with another "
                              "--seed into another results folder (or pass it with --same-seed-from).")
    for d, arms in zip(result_dirs, runs):
        missing = set(ref) - set(arms)
        if missing:
            raise VerifyError(f"replicate {d} lacks arm(s) {sorted(missing)} that the reference {reference} has")


def _known_set_tolerance(replicates: list[ArmData], ref_arm: ArmData, safety: float, which: str,
                         reruns: Sequence[ArmData] = ()) -> dict[str, Any]:
    """How many facts may enter or leave the Known set: max(1, ceil(safety x the most any replicate or same-seed
    rerun changed)). The Known filter does not depend on the noise seed, only on float numerics (batch size,
    threads, device); the floor of 1 stands for a fact within float noise of a tie on other hardware."""
    observed = [known_changes(r.known or [], ref_arm.known or []) for r in replicates]
    observed_reruns = [known_changes(r.known or [], ref_arm.known or []) for r in reruns]
    most = max(observed + observed_reruns)
    return {"changed": {"value": max(1, math.ceil(safety * most)), "observed": observed,
                        "observed_same_seed": observed_reruns,
                        "how_chosen": f"max(1, ceil({safety} x the most facts that entered or left the Known set in "
                                      f"a replicate or same-seed rerun = {most})); the floor of 1: one fact within "
                                      f"float noise of a tie on other hardware (GPU numerics, not measured here); "
                                      f"{which}"}}


def _kind_tolerances(arm: str, kind: str, metric: str, ref_arm: ArmData, runs: list[dict[str, ArmData]],
                     groups: Sequence[str], which: str, safety: float, boot: dict[str, Any]) -> dict[str, Any]:
    """The curve tolerances of each group and the per-fact correlation tolerances of one arm, kind and metric."""
    per_run = []
    for r in runs:
        if kind not in r[arm].fact_ids:
            raise VerifyError(f"replicate {r[arm].source} has no {kind} effects")
        per_run.append(pair(r[arm], ref_arm, kind, metric))
    between = {(i, j): pair(runs[j][arm], runs[i][arm], kind, metric)
               for i in range(len(runs)) for j in range(i + 1, len(runs))}
    entries = {f"{arm}/{kind}/{metric}/{group}": _group_tolerances(
        per_run, group, which, safety, boot["alpha"], boot["seed"], between) for group in groups}
    same = [fact_map_correlations(rr, ee) for _, rr, ee in per_run]
    null = []
    for n_run, (_, rr, ee) in enumerate(per_run):
        cr, ce = centred(rr), centred(ee)  # the centring mean does not depend on the fact order
        for perm in _derangements(rr.shape[0], NULL_PERMUTATIONS, boot["seed"] + n_run):
            null.append(fact_correlations(cr[perm], ce))
    r0, q, s, nq, gap = _fact_threshold(same, null)
    how = (f"r0 maximises (min over replicates of the fraction of facts with r >= r0 = "
           f"{s:.3f}) - (95th percentile over {len(null)} derangements of facts of that fraction = "
           f"{nq:.3f}); q halfway between; {which}")
    entries[f"{arm}/{kind}/{metric}"] = {
        "fact_correlation": {"value": r0, "observed_median": [float(np.nanmedian(x)) for x in same],
                             "how_chosen": how},
        "fact_fraction": {"value": q, "observed_same": s, "observed_wrong_facts": nq,
                          "how_chosen": how + ("" if gap > 0 else "; NO separation: per-fact maps of "
                                               "different facts correlate as well as a fact's own")},
    }
    return entries


def _unstable_claims(claims_fn: ClaimsFn | None, reference: Path, result_dirs: Sequence[Path],
                     which: str) -> dict[str, Any]:
    """Claims whose verdict differs between the reference and a replicate (reported, not judged)."""
    claims: dict[str, Any] = {"unstable": [], "how_chosen": "not calibrated (no claims_fn)"}
    if claims_fn is None:
        return claims
    try:
        ref_claims = claims_fn(Path(reference))
        unstable = set()
        for d in result_dirs:
            other = claims_fn(Path(d))
            unstable |= {c for c in ref_claims if other.get(c) != ref_claims[c]}
        return {"unstable": sorted(unstable),
                "how_chosen": f"claims whose verdict differs between the reference and a replicate; {which}"}
    except VerifyError as error:
        claims["how_chosen"] = f"not calibrated: {error}"
        return claims


def _claim_statistics(reference: Path, result_dirs: Sequence[Path], alpha: float) -> dict[str, Any]:
    """Each claim condition's statistic banded across the runs (claim_statistics.py); {} when the runs' comparisons
    hold no conditions to band (or cannot be read)."""
    try:
        return calibrate_claim_statistics(Path(reference), [Path(d) for d in result_dirs], alpha)
    except VerifyError:
        return {}


def calibrate_tolerances(
    result_dirs: Sequence[Path],
    reference: Path,
    metrics: Sequence[str] = DEFAULT_METRICS,
    groups: Sequence[str] = CHECK_GROUPS,
    safety: float = SAFETY,
    alpha: float = ALPHA,
    seed: int = BOOTSTRAP_SEED,
    claims_fn: ClaimsFn | None = claims_from_comparison,
    leave_one_out: bool = True,
    same_seed_from: Sequence[Path] = (),
    float64_from: Path | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tolerances for an expected profile recorded from `reference`, from replicate results folders of the same
    profile run with other noise seeds (and batch sizes). Each statistic verify computes is measured for every
    replicate against the reference, and the tolerance set from its spread with margin `safety`:

    - band (per curve): at every layer |AIE curve difference| <= multiplier x the layer's run-to-run spread, the
      spread measured from all k(k+1)/2 pairs of the k + 1 runs (reference and replicates) and the multiplier a
      Student t prediction bound (k degrees of freedom, Bonferroni over layers), not a fitted safety factor: the
      old max-distance rule with a 1.5 margin FAILed 3 of 5 leave-one-out replicates of the embedded smoke profile;
    - curve_correlation bound = 1 - safety x (1 - r_min), clipped to [-1, 1], r_min = the smaller of the min over
      replicates of r and the 1st percentile of r over simulated reruns (`simulated_reruns`);
    - peak_shift k = 1 + max(max observed |argmax shift|, 99th percentile over simulated reruns);
    - fact_correlation r0 and fact_fraction q: r0 maximises (min over replicates of the fraction of facts with
      r >= r0) - (95th percentile of the same fraction when facts are deranged, i.e. attached to wrong facts);
      q is halfway between those two fractions;
    - known_set: how many facts may enter or leave the Known (and traced) set: max(1, ceil(safety x the most that
      any replicate or same-seed rerun changed));
    - claims whose verdict differs between a replicate and the reference are marked unstable (reported, not judged);
    - claim_statistics: each claim condition's statistic banded across the runs (claim_statistics.py).

    Then the power: with these tolerances, does verify FAIL a replicate scaled by 0.5, its layers rolled by 3, its
    facts deranged, and (both arms present) the two arms swapped? `verdict` says "ok" or "profile too small: grow it"
    naming what went undetected. `same_seed_from`: reruns with the reference's seed (other batch sizes, thread
    counts or devices) that calibrate the same-seed tier (same_seed.calibrate_same_seed, doc["same_seed"]) and count
    towards the Known-set allowance; `float64_from`: the reference's profile run in float64, whose cell differences
    bound fp32's rounding and set the same-seed tolerance per metric (numerics.py). `leave_one_out`: also calibrate
    without each replicate in turn and judge that replicate by the result (every check): the measured false-FAIL
    rate of a held-out replicate, in doc["leave_one_out"]. Returns the tolerances.json document.
    """
    if not result_dirs:
        raise ValueError("calibrate_tolerances needs at least one replicate results folder (other noise seed).")
    ref = load_run_arms(Path(reference))
    runs = [load_run_arms(Path(d)) for d in result_dirs]
    _check_replicates(ref, runs, result_dirs, reference)
    reruns = [load_run_arms(Path(d)) for d in same_seed_from]
    doc, which = _tolerance_document(ref, runs, result_dirs, reference, metrics, groups, safety, alpha, seed, reruns)
    doc["claims"] = _unstable_claims(claims_fn, reference, result_dirs, which)
    statistics = _claim_statistics(reference, result_dirs, alpha) if claims_fn is not None else {}
    if statistics:
        doc["claim_statistics"] = statistics
    if same_seed_from or float64_from is not None:
        doc["same_seed"] = calibrate_same_seed(same_seed_from, reference, metrics, safety, float64_from)
    bands = calibrate_bands(Path(reference), [Path(d) for d in result_dirs])
    if bands:
        doc["carryover_bands"] = bands
    doc["power"] = detection_power(ref, runs, doc)
    # Sanity: the unperturbed replicates pass the tolerances they set (they must, by construction).
    doc["replicates_failing"] = sorted({f for r in runs for arm in ref for f in _fails(r[arm], ref[arm], doc)})
    undetected = [name for name, p in doc["power"].items() if not p["detected"]]
    doc["verdict"] = "ok" if not undetected else f"profile too small: grow it ({', '.join(undetected)} not detected)"
    if leave_one_out and len(result_dirs) >= 2:
        doc["leave_one_out"] = _leave_one_out(result_dirs, reference, runs, ref, metrics, groups, safety, alpha,
                                              seed)
    return doc


def _tolerance_document(ref: dict[str, ArmData], runs: list[dict[str, ArmData]], result_dirs: Sequence[Path],
                        reference: Path, metrics: Sequence[str], groups: Sequence[str], safety: float, alpha: float,
                        seed: int, reruns: Sequence[dict[str, ArmData]] = ()) -> tuple[dict[str, Any], str]:
    """Every curve and Known-set tolerance from loaded runs (the part of tolerances.json that `_fails` reads), and
    the text saying which runs they came from (for the other entries' how_chosen)."""
    labels = [_run_labels(a) for a in runs]
    which = (f"runs: {len(runs)} replicate(s) against the reference {Path(reference).name}: "
             + "; ".join(f"{Path(d).name} " + ", ".join(f"{arm} seed {v['seed']} batch {v['batch_size']}"
                                                    for arm, v in lab.items())
                         for d, lab in zip(result_dirs, labels)))
    entries: dict[str, Any] = {}
    boot = {"alpha": alpha, "seed": seed}
    for arm, ref_arm in ref.items():
        entries[f"{arm}/known_set"] = _known_set_tolerance([r[arm] for r in runs], ref_arm, safety, which,
                                                           [r[arm] for r in reruns if arm in r])
        for kind in ref_arm.kinds():
            for metric in metrics:
                entries.update(_kind_tolerances(arm, kind, metric, ref_arm, runs, groups, which, safety, boot))
    return {
        "format": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": list(metrics),
        "groups": list(groups),
        "band": {"alpha": alpha, "floor": BAND_FLOOR,
                 "rule": "per layer |curve difference| <= Student t(1 - alpha/2L, runs - 1) x run-to-run spread "
                         "(moderated with its median over layers)"},
        "seed": seed,
        "safety": safety,
        "reference": {"path": str(reference), "arms": _run_labels(ref)},
        "runs": [{"path": str(d), "arms": lab} for d, lab in zip(result_dirs, labels)],
        "entries": jsonable(entries),
    }, which


def _leave_one_out(result_dirs: Sequence[Path], reference: Path, runs: list[dict[str, ArmData]],
                   ref: dict[str, ArmData], metrics: Sequence[str], groups: Sequence[str], safety: float,
                   alpha: float, seed: int) -> dict[str, Any]:
    """Each replicate judged (every curve and Known-set check) by tolerances calibrated from the reference and the
    other replicates, already loaded (no power, claims or same-seed tier: `_fails` reads none of them)."""
    per_replicate = []
    for j, held_out in enumerate(result_dirs):
        others = [i for i in range(len(result_dirs)) if i != j]
        doc, _ = _tolerance_document(ref, [runs[i] for i in others], [result_dirs[i] for i in others], reference,
                                     metrics, groups, safety, alpha, seed)
        failed = sorted({f for arm in ref for f in _fails(runs[j][arm], ref[arm], doc)})
        per_replicate.append({"held_out": str(held_out), "failed": failed})
    n_failed = sum(bool(r["failed"]) for r in per_replicate)
    return {"replicates": len(per_replicate), "replicates_failing": n_failed,
            "rate": n_failed / len(per_replicate), "per_replicate": per_replicate,
            "how_measured": "each replicate left out of the calibration in turn and judged by the tolerances of the "
                            "reference and the other replicates (every curve and Known-set check; power not "
                            "recomputed)"}


def _perturbed(data: ArmData, fn: Callable[[np.ndarray], np.ndarray]) -> ArmData:
    return ArmData(data.arm, data.source, data.settings, data.known,
                   {k: fn(v) for k, v in data.effects.items()}, data.fact_ids, data.margins)


def _fails(regen: ArmData, expected: ArmData, tolerances: dict[str, Any]) -> list[str]:
    """Names of the checks that FAIL comparing `regen` with `expected` under `tolerances` (all kinds, metrics)."""
    failed = []
    known = check_known_set(regen, expected, tolerances)
    if known.verdict == FAIL:
        failed.append(f"{regen.arm}/known_set")
    for kind in expected.kinds():
        for metric in tolerances["metrics"]:
            for c in compare_arm_kind(regen, expected, kind, metric, tolerances, tolerances["groups"]):
                if c.verdict == FAIL:
                    failed.append("/".join(x for x in (c.arm, c.kind, c.metric, c.group, c.check) if x))
    return failed


def detection_power(ref: dict[str, ArmData], runs: list[dict[str, ArmData]], tolerances: dict[str, Any]
                    ) -> dict[str, Any]:
    """Does verify FAIL each perturbation of each replicate (all must), and which checks catch it?"""
    perturbations: dict[str, Callable[[ArmData], ArmData]] = {
        "scale_0.5": lambda d: _perturbed(d, lambda a: 0.5 * a),
        "peak_moved_3_layers": lambda d: _perturbed(d, lambda a: np.roll(a, 3, axis=2)),
        "facts_shuffled": lambda d: _perturbed(d, lambda a: a[_derangements(a.shape[0], 1, 12345)[0]]
                                               if a.shape[0] > 1 else a),
    }
    out: dict[str, Any] = {}
    for name, perturb in perturbations.items():
        caught = []
        for r in runs:
            failed = []
            for arm in ref:
                failed += _fails(perturb(r[arm]), ref[arm], tolerances)
            caught.append(failed)
        out[name] = {"detected": all(caught), "caught_by": sorted({f for c in caught for f in c})[:20],
                     "replicates_detected": sum(bool(c) for c in caught), "replicates": len(runs)}
    if set(ARMS) <= set(ref):
        caught = []
        for r in runs:
            failed = []
            for a, b in (("t2t", "s2t"), ("s2t", "t2t")):
                swapped = ArmData(a, r[b].source, r[b].settings, r[b].known, r[b].effects, r[b].fact_ids,
                                  r[b].margins)
                failed += _fails(swapped, ref[a], tolerances)
            caught.append(failed)
        out["arms_swapped"] = {"detected": all(caught), "caught_by": sorted({f for c in caught for f in c})[:20],
                               "replicates_detected": sum(bool(c) for c in caught), "replicates": len(runs)}
    return out
