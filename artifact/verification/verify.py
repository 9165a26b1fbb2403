"""Statistical comparison of regenerated results with a stored expected profile (what `verify.py` runs).

Every check is a pure function returning `Check` records {check, arm, kind, metric, group, observed, expected,
tolerance, verdict, detail}; `verify()` runs them all and never raises on bad input: a missing file, a NaN or a
layer-count mismatch becomes a FAIL record naming it.

Layouts (see expected/README.md):

    results/<profile>/runs/<arm>-<model>-<key>/{settings.json, known.json, aggregate/group_effects.npz}
    results/<profile>/selection.json                       which run folder of each arm (`core.results`)
    results/<profile>/comparison/comparison.json          claims section (regenerated claim verdicts)
    expected/<profile>/<arm>/{group_effects.npz, known_ids.json, settings.json}
    expected/<profile>/{claims.json, tolerances.json, manifest.json}

First the identity (model, weights, facts, profile settings), the trace files against their sha256 lists and the
aggregates and comparison recomputed from them; then the same-seed tier (every cell within its metric's numerics
bound) when the run used the reference's noise seed. Then, per arm (t2t, s2t), kind (hidden, mlp, attn) and metric
(prob, logprob):

- curve_band (per group last_subject, last): facts paired by known_id; per layer |AIE curve difference| over that
  layer's run-to-run spread (calibrated from replicates) <= a Student t prediction multiplier. Catches scaled or
  shifted curves.
- fact_correlation: per fact, Pearson r between its regenerated and expected [group, layer] IE map, each side
  centred on its mean map over the paired facts (NaN cells dropped); the fraction of facts with r >= bound must be
  >= fact_fraction. Catches results attached to wrong facts.
- curve_correlation / peak_layer (per group): Pearson r of the two AIE curves (mean over paired facts) >= bound;
  argmax layers within +/- k. Catches moved peaks and changed shapes. SKIP with the reason when the check cannot
  fail (power.py: an allowance of half the layers or more, a bound of -1, a flat curve).
- known_set / traced_set (per arm): every fact that entered or left the Known (traced) set has |margin| under the
  bound of the run's dtype (known_margins.py; flips without recorded margins: at most the calibrated count); each
  listed with its logit margins, and the facts closest to flipping named.
- claims: each regenerated claim verdict equals the expected one (claims unstable across calibration seeds: INFO);
  claim_statistic: each condition's statistic within its band across seeds (claim_statistics.py).
- settings / files / nan / empty_groups / layers: the comparison is meaningful (same model, facts, noise rule,
  samples...; every file present; no NaN where a value belongs; the same token groups empty; same layer count).

In the other-seed tier, when the run and the profile both kept per-sample effects with enough noise samples, the
statistical checks above (bands, curve shapes, peaks, per-fact maps, carry-over patching curves, claim statistics)
are instead judged together on one permutation distribution of the runs' pooled noise-sample sets (family.py: one
family-wise false-FAIL rate of 5%, no replicates needed); their replicate-calibrated versions are not run.

A profile holding only claims.json (SpiritLM, whose curves need the gated weights and a GPU) gets the claims and the
run settings checked; the report lists every check that was not possible and why.

Tolerances come from `calibrate_tolerances` (replicate runs with other noise seeds and batch sizes against the
reference run), each stored with how it was chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from artifact.core.layout import (
    CLAIMS_FILE,
    comparison_file,
    MANIFEST_FILE,
    TOLERANCES_FILE,
)
from artifact.core.names import ARMS
from artifact.core.results import ResultsFolder
from artifact.verification.checks import (
    check_claims,
    check_known_set,
    check_settings,
    claims_from_comparison,
    compare_arm_kind,
)
from artifact.verification.load import (
    ArmData,
    expected_arms,
    load_expected_arm,
    load_run_arm,
    load_tolerances,
    read_json,
    run_settings,
)
from artifact.verification.beyond import beyond_verdicts
from artifact.verification.carryover import carryover_verdicts
from artifact.verification.claim_statistics import check_claim_statistics, run_condition_values
from artifact.verification.identity import check_identity, identity_of
from artifact.verification.recompute import check_recomputed
from artifact.verification.numerics import same_seed_tolerance as same_seed_tolerance_of
from artifact.verification.family import merge_claims
from artifact.verification.family_inputs import family_checks, family_samples, stacked_carryover
from artifact.verification.noise_band import members_of, noise_band_checks
from artifact.verification.same_seed import check_same_seed, same_noise, streams_differ
from artifact.verification.records import (
    CHECK_GROUPS,
    DEFAULT_METRICS,
    SHAPE_GROUPS,
    FAIL,
    PASS,
    Check,
    ClaimsFn,
    Report,
    VerifyError,
)


def _guard(out: list[Check], what: str, fn: Callable[[], Any], **labels) -> Any:
    """Run fn; a VerifyError becomes a FAIL record (`what` names the check), other errors too, with their type."""
    try:
        return fn()
    except VerifyError as error:
        out.append(Check(what, FAIL, detail=str(error), **labels))
    except Exception as error:  # never a traceback in the reviewer's face, but say what broke
        out.append(Check(what, FAIL, detail=f"{type(error).__name__}: {error}", **labels))
    return None


def verify(results: Path, expected: Path, claims_fn: ClaimsFn = claims_from_comparison,
           tolerances: dict[str, Any] | None = None, recompute: bool = True) -> Report:
    """Compare a results folder with an expected profile; never raises on bad data (FAIL records instead).
    `recompute`: first check the trace files against the run's sha256 lists and recompute the aggregates and the
    comparison from them (`recompute.check_recomputed`); off only for folders that are not a pipeline run's."""
    results, expected = Path(results), Path(expected)
    checks: list[Check] = []
    possible: list[str] = []
    skipped: dict[str, str] = {}
    if not results.is_dir():
        checks.append(Check("files", FAIL, detail=f"missing results folder: {results} (run ./run_all.sh first)"))
    if not expected.is_dir():
        checks.append(Check("files", FAIL, detail=f"missing expected profile folder: {expected}"))
    if checks:
        return conclude(Report(str(results), str(expected), checks, possible, skipped))
    folder = ResultsFolder(results)  # each arm's run folder found once, by the rule every reader uses
    checks.append(_identity_check(results, expected))
    if recompute:
        checks += check_recomputed(folder)
        possible.append("trace files against their sha256 list; aggregates and comparison recomputed from them")
    else:
        skipped["recomputation"] = "turned off (recompute=False): derived files were trusted"
    arms = expected_arms(expected)
    if arms:
        if tolerances is None:
            tolerances = _guard(checks, "tolerances", lambda: load_tolerances(expected))
        if tolerances is None:
            skipped["curve statistics"] = (f"no usable {expected / TOLERANCES_FILE}: only settings and Known sets "
                                           "(exact) were compared; record the profile with --calibrate-from")
        metrics = tuple((tolerances or {}).get("metrics", DEFAULT_METRICS))
        groups = tuple((tolerances or {}).get("groups", CHECK_GROUPS))
        possible.append(f"curves ({', '.join(arms)}: bands over layers, per-fact map correlation, curve shape, "
                        f"Known sets; metric {', '.join(metrics)})")
        for arm in ARMS:
            if arm not in arms:
                skipped[f"curves {arm}"] = f"the expected profile has no {arm}/ folder"
        same_seed_doc = (tolerances or {}).get("same_seed") or None
        same_seed_tolerance = (same_seed_doc or {}).get("value")
        tiers: dict[str, str] = {}
        noise_members: list = []  # the other-seed tier from the runs' own noise samples (noise_band.py)
        loaded: dict[str, tuple[ArmData, ArmData]] = {}
        for arm in arms:
            exp = _guard(checks, "files", lambda: load_expected_arm(expected, arm), arm=arm)
            reg = _guard(checks, "files", lambda: load_run_arm(folder, arm), arm=arm)
            if exp is not None and reg is not None:
                loaded[arm] = (reg, exp)
                tiers[arm] = ("same-seed" if same_noise(reg, exp) and same_seed_tolerance is not None
                              else "other-seed")
        samples, family_why = family_samples(loaded) if loaded else (None, "")
        family = samples is not None and set(tiers.values()) == {"other-seed"}
        if not family and family_why and set(tiers.values()) == {"other-seed"}:
            skipped["one family-wise rate over every statistical check"] = family_why
        for arm, (reg, exp) in loaded.items():
            streams = streams_differ(reg, exp)
            if streams:  # the same seed from other streams is another noise draw: never compared cell by cell
                skipped[f"same-seed tier {arm}"] = streams
            members = members_of(reg, exp, metrics, groups) if tiers[arm] == "other-seed" and not family else []
            noise_members += members
            if tiers[arm] == "same-seed":
                for kind in exp.kinds():
                    for metric in metrics:
                        checks.append(_guard(checks, "same_seed_cells", lambda: check_same_seed(
                            reg, exp, kind, metric, same_seed_tolerance_of(same_seed_doc, metric)), arm=arm,
                            kind=kind, metric=metric)
                            or Check("same_seed_cells", FAIL, arm=arm, kind=kind, metric=metric,
                                     detail="could not be computed (see above)"))
            checks.append(check_settings(reg, exp))
            checks.append(check_known_set(reg, exp, tolerances))
            if family:  # the noise-free checks here; the statistical ones in the family below
                for kind in exp.kinds():
                    for metric in metrics:
                        checks += _guard(checks, "statistics", lambda: compare_arm_kind(
                            reg, exp, kind, metric, tolerances or {}, groups, noise_checks=False),
                            arm=arm, kind=kind, metric=metric) or []
                continue
            if tolerances is None:
                continue
            if not other_seed_calibrated(tolerances):  # a profile recorded with the same-seed tier only
                if members:
                    skipped[f"other-seed statistics {arm}"] = (
                        "the profile records no other-seed replicates: only the bands from the runs' own noise "
                        "samples (noise_band) judged the curves; peaks, correlations and shape need replicates")
                elif tiers[arm] == "same-seed":
                    skipped["other-seed statistics"] = (
                        "the profile's other-seed tier comes from its own noise samples and judges runs with another "
                        "seed; this run drew the reference's noise, so its cells were compared one by one instead"
                        if tolerances.get("other_seed") else
                        "the profile records no other-seed replicates (same-seed tier only): the run's cells were "
                        "compared one by one instead")
                else:
                    checks.append(Check("tier", FAIL, arm=arm, detail=streams or (
                        "this profile is recorded for same-seed reruns only (no other-seed replicates were run for "
                        f"it), and this run used noise seed {(reg.settings or {}).get('seed')} instead of the "
                        f"reference's {(exp.settings or {}).get('seed')}: rerun without "
                        "--seed")))
                continue
            for kind in exp.kinds():
                if kind not in reg.fact_ids:
                    checks.append(Check("data", FAIL, arm=arm, kind=kind,
                                        detail=f"regenerated {reg.source} has no {kind} effects"))
                    continue
                for metric in metrics:
                    checks += _guard(checks, "statistics", lambda: compare_arm_kind(reg, exp, kind, metric,
                                                                                  tolerances, groups),
                                     arm=arm, kind=kind, metric=metric) or []
        if family:
            family_records = _guard(checks, "family", lambda: _family_checks(
                folder, expected, loaded, metrics, groups, samples)) or []
            checks += [c for c in family_records if c.check != "claim_statistic"]
            possible.append(f"every other-seed statistical check on one permutation distribution of the runs' "
                            f"{samples[0]} + {samples[1]} noise-sample sets (bands, curve shapes, peaks, per-fact "
                            "maps, carry-over patching, claim statistics; max-T: family-wise false-FAIL rate 5%)")
            skipped["replicate-calibrated statistics"] = (
                "not run: the family from the runs' own noise samples judges these checks (no double judging)")
        if noise_members:
            checks += noise_band_checks(noise_members)
            possible.append("bands from the runs' own noise samples (exact permutation max-T over every curve "
                            "together: family-wise false-FAIL rate 5%)")
        if tiers:
            possible.insert(0, _tier_sentence(tiers, (same_seed_doc or {}).get("metrics") or same_seed_tolerance,
                                              tolerances is not None and other_seed_calibrated(tolerances),
                                              family, from_samples=bool(noise_members),
                                              samples_tier=bool((tolerances or {}).get("other_seed"))))
        carryover_tier = (bool(tiers) and set(tiers.values()) == {"same-seed"},
                          (same_seed_doc or {}).get("metrics") or same_seed_tolerance)
    else:
        carryover_tier = (False, None)
        family, family_records = False, []
        skipped["curves"] = ("the expected profile holds no recorded curves (claims only), so curve bands, "
                             "per-fact correlation, curve shape and Known-set checks were not possible")
        recorded = {}
        if (expected / MANIFEST_FILE).is_file():
            recorded = (_guard(checks, "files", lambda: read_json(expected / MANIFEST_FILE)) or {}).get("settings")
        if recorded:  # at least check that the claims come from the same model, facts and noise rule
            regenerated = _guard(checks, "files", lambda: run_settings(folder))
            for arm, exp_settings in (recorded.items() if regenerated is not None else ()):
                if arm not in regenerated:
                    checks.append(Check("files", FAIL, arm=arm, detail=f"missing run folder: no {arm} run in "
                                                                       f"{results}"))
                    continue
                checks.append(check_settings(ArmData(arm, results, regenerated[arm], None),
                                             ArmData(arm, expected, exp_settings, None)))
            possible.append("run settings (model, facts, noise rule) against the recorded ones")
    carryover_tolerances = tolerances
    if family:  # the family judges the patching curves (when both sides kept their per-sample values)
        carryover_tolerances = {k: v for k, v in (tolerances or {}).items() if k != "carryover_bands"}
    more, not_possible = carryover_verdicts(folder, expected, *carryover_tier, carryover_tolerances, recompute)
    checks += more
    if family and any(c.check == "carryover_band" for c in family_records):
        not_possible.pop("carry-over patching (other seed)", None)
    skipped.update(not_possible)
    if any(c.check in ("carryover_facts", "carryover_cells", "carryover_band") for c in more):
        possible.append("carry-over analyses (recomputed from their fact files; knockout and logit lens cell by cell "
                        "in either tier, patching cell by cell in the same-seed tier)")
    elif more:
        possible.append("carry-over analyses recomputed from their fact files (the profile records none to compare)")
    more, not_possible = beyond_verdicts(folder, expected, *carryover_tier, recompute)
    checks += more
    skipped.update(not_possible)
    if more:
        possible.append("implicit transcription and corruption choice (recomputed from their fact files; compared "
                        "cell by cell where the profile records them)")
    claims_path = expected / CLAIMS_FILE
    if claims_path.is_file():
        doc = _guard(checks, "files", lambda: read_json(claims_path))
        if doc is not None:
            expected_claims = doc.get("claims", doc)
            regenerated = _guard(checks, "claims", lambda: claims_fn(results))
            unstable = (tolerances or {}).get("claims", {}).get("unstable", []) if tolerances else []
            claim_checks = check_claims(regenerated, expected_claims, unstable)
            possible.append(f"claims ({len(expected_claims)} from {claims_path.name})")
            if family:  # the conditions' statistics in the family; a decided flip FAILs only beyond the noise
                checks += merge_claims(claim_checks, family_records)
                checks += [c for c in family_records if c.check == "claim_statistic"]
            else:
                checks += claim_checks
                _claim_statistic_checks(checks, possible, skipped, results, doc, tolerances)
    else:
        skipped["claims"] = f"no {claims_path}"
    if not possible:
        checks.append(Check("profile", FAIL, detail=f"{expected} holds neither curves nor claims: nothing to check"))
    return conclude(Report(str(results), str(expected), checks, possible, skipped))


def _family_checks(folder: ResultsFolder, expected: Path, loaded: dict[str, tuple[ArmData, ArmData]],
                   metrics: tuple[str, ...], groups: tuple[str, ...], samples: tuple[int, int]) -> list[Check]:
    """The family (family.py) over every arm, the carry-over patching curves when both sides kept their per-sample
    values, and the claims' conditions when the profile records claims (in the metric of the run's comparison)."""
    claims = (expected / CLAIMS_FILE).is_file()
    metric = "prob"
    if claims and comparison_file(folder.path).is_file():
        metric = str(read_json(comparison_file(folder.path)).get("metric", "prob"))
    return family_checks(loaded, metrics, groups, SHAPE_GROUPS, samples, stacked_carryover(folder.path, expected),
                         claims=claims, claims_metric=metric)


def _claim_statistic_checks(checks: list[Check], possible: list[str], skipped: dict[str, str], results: Path,
                            claims_doc: dict[str, Any], tolerances: dict[str, Any] | None) -> None:
    """Each claim condition's statistic within its band across seeds (claim_statistics.py), when the profile records
    the conditions and their bands; else says why not (profiles recorded before)."""
    bands = (tolerances or {}).get("claim_statistics") or {}
    expected_conditions = claims_doc.get("conditions") or {}
    if not bands or not expected_conditions:
        if tolerances is not None and other_seed_calibrated(tolerances):
            skipped["claim statistics"] = ("the profile records no claim statistics or no bands for them (recorded "
                                           "before they were banded): the verdicts only; re-record it to band them")
        elif expected_conditions and (tolerances or {}).get("other_seed"):
            skipped["claim statistics"] = ("the profile records no replicates to band the claims' statistics across "
                                           "seeds (its other-seed tier is the runs' own noise samples): the verdicts "
                                           "only")
        return
    values = _guard(checks, "claim_statistic", lambda: run_condition_values(results))
    if values is not None:
        checks += check_claim_statistics(values, expected_conditions, bands)
        possible.append(f"claim statistics ({len(bands)} conditions, each within its band across seeds)")


def other_seed_calibrated(tolerances: dict[str, Any]) -> bool:
    """Whether a tolerances document holds the other-seed tier's curve tolerances (bands from replicates)."""
    return any(isinstance(entry, dict) and "band" in entry for entry in (tolerances.get("entries") or {}).values())


def _within(tolerance: float | dict[str, float] | None) -> str:
    if isinstance(tolerance, dict):
        return ", ".join(f"{value:.3g} ({metric})" for metric, value in tolerance.items())
    return f"{tolerance:.3g}"


def _tier_sentence(tiers: dict[str, str], same_seed_tolerance: float | dict[str, float] | None,
                   other_seed: bool = True, family: bool = False, from_samples: bool = False,
                   samples_tier: bool = False) -> str:
    """Which tolerance tier judged the curves, and why (`family`: every statistical check judged together from both
    runs' own noise samples; `from_samples`: only the noise_band checks were; `samples_tier`: the profile judges
    another seed from its noise samples, which a same-seed run does not need)."""
    if set(tiers.values()) == {"same-seed"}:
        return (f"tier: same-seed (the run used the reference's noise seed, so it drew the same noise): "
                f"every cell within {_within(same_seed_tolerance)}"
                + (", on top of the other-seed checks" if other_seed else
                   " (the profile's other-seed tier, from its noise samples, is for runs with another seed)"
                   if samples_tier else " (the profile has no other-seed calibration)"))
    why = ("the profile has no same-seed calibration" if same_seed_tolerance is None
           else "the run used another noise seed than the reference")
    mixed = "" if set(tiers.values()) == {"other-seed"} else f" ({', '.join(f'{a}: {t}' for a, t in tiers.items())})"
    if family:
        return (f"tier: other-seed ({why}): every statistical check judged together from the runs' own noise samples "
                "(one permutation distribution, family-wise false-FAIL rate 5%; no replicates needed)")
    if from_samples and not other_seed:
        return (f"tier: other-seed ({why}): the curves judged from both runs' own noise samples (noise_band; the "
                f"profile records no other-seed replicates){mixed}")
    how = "statistical tolerances calibrated from other-seed replicates"
    return f"tier: other-seed ({why}): {how}" + (", and bands from both runs' own noise samples (noise_band)"
                                                  if from_samples else "") + mixed


def _identity_check(results: Path, expected: Path) -> Check:
    """The run's identity (model, weights, facts, profile settings) against the one the profile recorded."""
    try:
        recorded = read_json(expected / MANIFEST_FILE).get("identity") if (expected / MANIFEST_FILE).is_file() \
            else None
        run_manifest = read_json(results / MANIFEST_FILE) if (results / MANIFEST_FILE).is_file() else None
    except VerifyError as error:
        return Check("identity", FAIL, detail=str(error))
    weights = isinstance(recorded, dict) and "weights_sha256" in recorded
    return check_identity(identity_of(run_manifest, weights) if run_manifest else None, recorded)


def conclude(report: Report) -> Report:
    """The report with its verdict: PASS when at least one check was judged and none FAILed, else FAIL."""
    judged = [c for c in report.checks if c.verdict in (PASS, FAIL)]
    report.verdict = PASS if judged and all(c.verdict == PASS for c in judged) else FAIL
    return report
