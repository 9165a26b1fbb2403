"""The checks: each a pure function of loaded data and tolerances returning `Check` records (curves, Known and
traced sets, settings, claims).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from artifact.core.layout import (
    comparison_file,
)
from artifact.core.names import GROUPS
from artifact.verification.known_margins import dtype_name, flip_margin, margin_bound, split_flips
from artifact.verification.load import ArmData, read_json
from artifact.verification.power import correlation_no_power, flat_curve, peak_no_power
from artifact.verification.records import (
    CHECK_GROUPS,
    SHAPE_GROUPS,
    FAIL,
    INFO,
    MATCHED_SETTINGS,
    NOISE_RTOL,
    PASS,
    SKIP,
    Check,
    VerifyError,
)
from artifact.verification.statistics import (
    aie_curve,
    bad_cells,
    band_statistic,
    curve_difference,
    empty_group_mismatches,
    fact_map_correlations,
    known_changes,
    pair,
    peak_layer,
    pearson,
)


def _tol(tolerances: dict[str, Any], arm: str, kind: str, metric: str, name: str, group: str | None = None) -> Any:
    """A tolerance value from tolerances.json; VerifyError naming the missing entry."""
    key = f"{arm}/{kind}/{metric}" + (f"/{group}" if group else "")
    try:
        value = tolerances["entries"][key][name]["value"]
    except (KeyError, TypeError):
        raise VerifyError(f"tolerances.json has no {name} for {key}: recalibrate the profile") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise VerifyError(f"tolerances.json: {name} for {key} is {value!r}, not a number (the calibration could not "
                          "measure it; see its how_chosen): recalibrate with more facts or replicates")
    return value


def _band(tolerances: dict[str, Any], arm: str, kind: str, metric: str, group: str, layers: int
          ) -> tuple[float, np.ndarray]:
    """The band of one curve from tolerances.json: (multiplier, [layer] spread); VerifyError when unusable."""
    key = f"{arm}/{kind}/{metric}/{group}"
    multiplier = _tol(tolerances, arm, kind, metric, "band", group)
    scale = np.asarray(tolerances["entries"][key]["band"].get("scale", []), dtype=np.float64)
    if scale.shape != (layers,) or not np.all(scale > 0):
        raise VerifyError(f"tolerances.json: the band spread of {key} has {scale.size} positive values for {layers} "
                          "layers: recalibrate the profile")
    return float(multiplier), scale


def check_curve_band(r: np.ndarray, e: np.ndarray, group: str, band: tuple[float, np.ndarray],
                     labels: dict[str, Any], pairing: str = "") -> Check:
    """The regenerated AIE curve of one group lies within multiplier x spread of the expected one at every layer
    (paired facts). Catches curves scaled, shifted or moved by more than another noise seed moves them."""
    multiplier, scale = band
    difference = curve_difference(r, e, group)
    stat, worst = band_statistic(difference, scale)
    ok = math.isfinite(stat) and stat <= multiplier
    where = (f"worst layer {worst}: difference {difference[worst]:+.4g}, allowed +/- {multiplier * scale[worst]:.4g}"
             if worst is not None else "undefined (NaN curve)")
    return Check("curve_band", PASS if ok else FAIL, **labels, group=group, observed=stat, expected=0.0,
                 tolerance=multiplier,
                 detail=f"max over layers of |AIE curve difference| / run-to-run spread of that layer; {where}"
                        + (f"; {pairing}" if pairing else ""))


def compare_arm_kind(regen: ArmData, expected: ArmData, kind: str, metric: str, tolerances: dict[str, Any],
                     groups: Sequence[str] = CHECK_GROUPS, noise_checks: bool = True) -> list[Check]:
    """Every statistical check of one arm, kind and metric (bands over layers, per-fact maps, curve shape).
    `noise_checks` False: only the checks that draw no noise (traced set, NaN, empty groups, paired facts); the
    family (family.py) judges the rest from the runs' own noise samples."""
    arm, out = regen.arm, []
    base = {"arm": arm, "kind": kind, "metric": metric}
    name = f"{kind}_{metric}"
    for side, data in (("regenerated", regen), ("expected", expected)):
        if name not in data.effects:
            return [Check("data", FAIL, **base, detail=f"{side} {data.source} has no {name} array")]
    L_r, L_e = regen.effects[name].shape[2], expected.effects[name].shape[2]
    if L_r != L_e:
        return [Check("layers", FAIL, **base, observed=L_r, expected=L_e,
                      detail=f"regenerated results have {L_r} layers, expected {L_e}: the two come from different "
                             f"models (regenerated model {(regen.settings or {}).get('model')!r}, expected "
                             f"{(expected.settings or {}).get('model')!r}); curves cannot be compared")]
    ids, r, e = pair(regen, expected, kind, metric)
    only_r = sorted(set(regen.fact_ids[kind]) - set(ids))
    only_e = sorted(set(expected.fact_ids[kind]) - set(ids))
    pairing = f"{len(ids)} paired facts" + (f"; {len(only_r)} only regenerated" if only_r else "") + \
              (f"; {len(only_e)} only expected" if only_e else "")
    out.append(check_traced(regen, expected, kind, tolerances, base))
    bad = bad_cells(r) if ids else bad_cells(regen.effects[name])
    if bad:
        f, g, layer = bad[0]
        fact = ids[f] if ids else regen.fact_ids[kind][f]
        return out + [Check("nan", FAIL, **base, observed=len(bad), expected=0,
                      detail=f"NaN in regenerated {name} of {regen.source}: {len(bad)} cell(s), first at fact "
                             f"{fact}, group {GROUPS[g]}, layer {layer}")]
    out.append(Check("nan", PASS, **base, observed=0, expected=0, detail=f"no NaN where values belong; {pairing}"))
    mismatched = empty_group_mismatches(r, e) if ids else []
    out.append(Check("empty_groups", FAIL if mismatched else PASS, **base, observed=len(mismatched), expected=0,
                     detail=(f"{len(mismatched)} (fact, group) pairs empty on one side only, first fact "
                             f"{ids[mismatched[0][0]]} group {GROUPS[mismatched[0][1]]}: token groups differ (another "
                             "tokenisation, or results attached to the wrong facts)") if mismatched
                     else "the same token groups are empty (one-token subjects etc.) on both sides"))
    if len(ids) < 2:
        out.append(Check("paired_facts", FAIL, **base, observed=len(ids), expected=">= 2",
                         detail=f"too few facts on both sides to compare ({pairing})"))
        return out
    if not noise_checks:
        return out
    bands = {group: _band(tolerances, arm, kind, metric, group, L_r) for group in groups}
    for group in groups:
        out.append(check_curve_band(r, e, group, bands[group], base, pairing))
    for group in groups:
        if group not in SHAPE_GROUPS:
            continue
        rc, ec = aie_curve(r, group), aie_curve(e, group)
        flat = flat_curve(ec, bands[group])
        corr = pearson(rc, ec)
        bound = _tol(tolerances, arm, kind, metric, "curve_correlation", group)
        ok = math.isfinite(corr) and corr >= bound
        detail = "Pearson r of the AIE curves over layers (paired facts)" + ("" if math.isfinite(corr) else
                                                                             "; undefined")
        why = correlation_no_power(bound, flat)
        out.append(Check("curve_correlation", SKIP if why else PASS if ok else FAIL, **base, group=group,
                         observed=corr, expected=1.0, tolerance=bound, detail=f"{why}; {detail}" if why else detail))
        pr, pe = peak_layer(rc), peak_layer(ec)
        k = _tol(tolerances, arm, kind, metric, "peak_shift", group)
        ok = pr is not None and pe is not None and abs(pr - pe) <= k
        why = peak_no_power(k, L_r, flat)
        detail = f"argmax layer of the AIE curve; allowed shift +/- {k}"
        out.append(Check("peak_layer", SKIP if why else PASS if ok else FAIL, **base, group=group, observed=pr,
                         expected=pe, tolerance=k, detail=f"{why}; {detail}" if why else detail))
    rs = fact_map_correlations(r, e)
    bound = _tol(tolerances, arm, kind, metric, "fact_correlation")
    q = _tol(tolerances, arm, kind, metric, "fact_fraction")
    frac = float(np.mean(np.nan_to_num(rs, nan=-np.inf) >= bound))
    worst = [ids[i] for i in np.argsort(np.nan_to_num(rs, nan=-2))[:3]]
    out.append(Check("fact_correlation", PASS if frac >= q else FAIL, **base, observed=frac, expected=1.0,
                     tolerance=q, detail=f"fraction of {len(ids)} facts whose centred [group, layer] map correlates "
                                         f"with its expected one at r >= {bound:.3f} (median r {np.nanmedian(rs):.3f}; "
                                         f"lowest: {', '.join(worst)})"))
    return out


def known_limit(tolerances: dict[str, Any] | None, arm: str) -> int | None:
    """How many facts may enter or leave an arm's Known (and traced) set, or None when not calibrated."""
    try:
        value = (tolerances or {})["entries"][f"{arm}/known_set"]["changed"]["value"]
    except (KeyError, TypeError):
        return None
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _margin_text(fact: str, *sides: ArmData) -> str:
    values = [f"{side.margins[fact]:+.3g}" for side in sides if side.margins and fact in side.margins]
    return f"{fact} (margin {' -> '.join(values)})" if values else fact


def closest_to_flipping(data: ArmData, count: int = 3) -> str:
    """The facts whose Known verdict is closest to flipping (smallest |margin|), as text; '' without margins."""
    if not data.margins:
        return ""
    nearest = sorted(data.margins.items(), key=lambda item: abs(item[1]))[:count]
    return ("closest to flipping (|answer logit - best other logit|): "
            + ", ".join(f"{fact} {margin:+.3g}" for fact, margin in nearest))


def check_traced(regen: ArmData, expected: ArmData, kind: str, tolerances: dict[str, Any] | None,
                 labels: dict[str, Any]) -> Check:
    """The traced facts of a kind agree as the Known sets must (an incomplete or truncated run fails here)."""
    r, e = set(regen.fact_ids[kind]), set(expected.fact_ids[kind])
    changed = known_changes(r, e)
    limit = known_limit(tolerances, regen.arm)
    limit = 0 if limit is None else limit
    bound = margin_bound(regen.settings)
    free = split_flips(sorted(r ^ e), bound, (expected.margins, regen.margins))[0] if bound is not None else []
    changed -= len(free)  # a Known flip within float noise may change the traced set too (known_margins.py)
    planned_missing = (regen.untraced or {}).get(kind) or []
    if planned_missing:  # an incomplete run, whatever the allowance for Known flips says
        return Check("traced_set", FAIL, **labels, observed=changed, expected=0, tolerance=limit,
                     detail=f"the run planned {len(planned_missing)} {kind} trace(s) it had not finished when it "
                            f"aggregated (facts {planned_missing[:10]}): an incomplete run; resume it with the same "
                            "./run_all.sh command, then verify again")
    return Check("traced_set", PASS if changed <= limit else FAIL, **labels, observed=changed, expected=0,
                 tolerance=limit,
                 detail=f"traced facts: {len(r)} regenerated, {len(e)} expected, {len(r & e)} both; missing "
                        f"{sorted(e - r)[:10]}, extra {sorted(r - e)[:10]} (allowed: as many as the Known set's"
                        + (f"; {len(free)} more of Known flips within float noise: {free[:10]}" if free else "")
                        + ")")


def check_known_set(regen: ArmData, expected: ArmData, tolerances: dict[str, Any] | None) -> Check:
    """Facts that entered or left the Known set, judged by their margins (known_margins.py): a flip whose |margin|
    lies under the measured bound of the run's dtype is float noise and free, any flip above it FAILs. Flips of
    facts whose margin neither side recorded (runs from before margins were recorded), or a dtype without a measured
    bound, fall back to the old rule, labelled so: at most the calibrated number of flips. Each change is listed with
    its margins, and the regenerated facts closest to flipping are named (not a crash)."""
    if regen.known is None or expected.known is None:
        return Check("known_set", SKIP, arm=regen.arm, detail="Known set not recorded on one side")
    extra, lost = sorted(set(regen.known) - set(expected.known)), sorted(set(expected.known) - set(regen.known))
    changed = len(extra) + len(lost)
    limit = known_limit(tolerances, regen.arm)
    detail = (f"{len(regen.known)} regenerated vs {len(expected.known)} expected known facts; "
              f"{len(extra)} only regenerated {[_margin_text(f, expected, regen) for f in extra[:10]]}, "
              f"{len(lost)} only expected {[_margin_text(f, expected, regen) for f in lost[:10]]}")
    nearest = closest_to_flipping(regen) or closest_to_flipping(expected)
    detail += f"; {nearest}" if nearest else "; margins not recorded (run from before they were)"
    bound, dtype = margin_bound(regen.settings), dtype_name(regen.settings)
    if bound is None:
        return _known_count_rule(regen.arm, changed, limit, detail + f"; no margin bound measured for dtype "
                                 f"{dtype or '?'}: old rule")
    free, above, unrecorded = split_flips(extra + lost, bound, (expected.margins, regen.margins))
    rule = (f"; rule: a flip with |margin| < {bound:.3g} ({dtype}, known_margins.py) is float noise and free: "
            f"{len(free)} free, {len(above)} at or above it{' ' + str(above[:10]) if above else ''}")
    if unrecorded:  # margins missing on both sides for these flips: the old count rule for them
        check = _known_count_rule(regen.arm, len(unrecorded), limit, detail + rule + f"; {len(unrecorded)} flip(s) "
                                  "without a recorded margin (runs from before margins were recorded): old rule")
        return replace(check, verdict=FAIL) if above else check
    worst = max((flip_margin(f, (expected.margins, regen.margins)) or 0.0 for f in extra + lost), default=0.0)
    return Check("known_set", FAIL if above else PASS, arm=regen.arm, observed=worst, expected=0.0,
                 tolerance=bound, detail=detail + rule + " (observed: the largest |margin| of a flipped fact)")


def _known_count_rule(arm: str, changed: int, limit: int | None, detail: str) -> Check:
    """The old Known rule: at most `limit` facts changed (exact agreement without a calibrated allowance)."""
    if limit is None:
        return Check("known_set", PASS if changed == 0 else FAIL, arm=arm, observed=changed, expected=0,
                     tolerance=0, detail=detail + " (no calibrated allowance: exact agreement required)")
    return Check("known_set", PASS if changed <= limit else FAIL, arm=arm, observed=changed, expected=0,
                 tolerance=limit, detail=detail + f" (at most {limit} flip(s))")


def check_settings(regen: ArmData, expected: ArmData) -> Check:
    """The runs compared used the same model, facts, noise rule, samples, window and positions."""
    r, e = regen.settings or {}, expected.settings or {}
    diff = {k: (r.get(k), e.get(k)) for k in MATCHED_SETTINGS if k in e and r.get(k) != e.get(k)}
    notes = []
    if isinstance(r.get("noise"), (int, float)) and isinstance(e.get("noise"), (int, float)) and not diff:
        if not math.isclose(r["noise"], e["noise"], rel_tol=NOISE_RTOL):
            diff["noise"] = (r["noise"], e["noise"])
    for k in ("seed", "batch_size", "device"):
        if r.get(k) != e.get(k):
            notes.append(f"{k} {r.get(k)!r} (expected run {e.get(k)!r}; allowed to differ)")
    if diff:
        hint = " (are these results of another model than the profile's?)" if "model" in diff else ""
        return Check("settings", FAIL, arm=regen.arm, observed={k: v[0] for k, v in diff.items()},
                     expected={k: v[1] for k, v in diff.items()},
                     detail=f"settings differ from the expected run's: {diff}{hint}")
    return Check("settings", PASS, arm=regen.arm, detail="; ".join(notes) or "same settings")


def check_claims(regenerated: dict[str, Any] | None, expected: dict[str, Any],
                 unstable: Iterable[str] = ()) -> list[Check]:
    """Each expected claim verdict against the regenerated one. `expected`: claim id -> {"verdict", "statement"}
    (or a bare verdict). Opposite decided verdicts (supported <-> not supported) FAIL, even for a claim listed in
    `unstable`; a change between a decided verdict and "inconclusive" is INFO (a CI that now touches the threshold,
    not a contrary finding); any other change FAILs unless the claim is `unstable` (then INFO)."""
    unstable = set(unstable)
    out = []
    for cid, entry in expected.items():
        want = entry.get("verdict") if isinstance(entry, dict) else entry
        statement = entry.get("statement", "") if isinstance(entry, dict) else ""
        if regenerated is None:
            out.append(Check("claim", FAIL, group=cid, expected=want, detail="no regenerated claims (see above)"))
            continue
        if cid not in regenerated:
            out.append(Check("claim", FAIL, group=cid, expected=want,
                             detail=f"claim {cid!r} missing from the regenerated claims: {statement}"))
            continue
        got = regenerated[cid]
        decided = {"supported", "not supported"}
        note = ""
        if got == want:
            verdict = PASS
        elif {got, want} == decided:
            verdict = FAIL
            note = " (opposite verdicts: a contrary finding, never tolerated)"
        elif "inconclusive" in (got, want) and {got, want} & decided:
            verdict = INFO
            note = (" (decided <-> inconclusive: a CI now touches its threshold; the statistic and its margin are in "
                    "comparison/summary.md)")
        else:
            verdict = INFO if cid in unstable else FAIL
            if verdict == INFO:
                note = " (verdict unstable across calibration seeds: reported, not judged)"
        out.append(Check("claim", verdict, group=cid, observed=got, expected=want, tolerance="equal",
                         detail=statement + note))
    return out


def claim_verdicts(doc: Any) -> dict[str, Any]:
    """Claim id -> verdict from a claims section: {id: verdict}, {id: {"verdict"|"holds"|"pass": v}} or a list of
    {"id": ..., "verdict"|"holds"|"pass": ...}."""
    if isinstance(doc, dict) and "claims" in doc:
        doc = doc["claims"]
    items = doc.items() if isinstance(doc, dict) else ((d.get("id"), d) for d in doc or [] if isinstance(d, dict))
    out = {}
    for cid, entry in items:
        if isinstance(entry, dict):
            for key in ("verdict", "holds", "pass", "passed"):
                if key in entry:
                    out[str(cid)] = entry[key]
                    break
        else:
            out[str(cid)] = entry
    return out


def claims_from_comparison(results: Path) -> dict[str, Any]:
    """The regenerated claim verdicts of a results folder (comparison/comparison.json, its claims section)."""
    doc = read_json(comparison_file(results))
    if "claims" not in doc:
        raise VerifyError(f"{comparison_file(results)} has no 'claims' section")
    return claim_verdicts(doc["claims"])
