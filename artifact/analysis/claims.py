"""The paper's claims (BRIEF section 1) judged from a comparison document by explicit rules; a generated summary.

Each claim is a list of conditions, each on one statistic of `compare.compare_arrays` with its 95% bootstrap CI. A
condition *holds* when the CI lies on the claimed side of its threshold, is *contradicted* when the CI lies wholly
on the other side, and is *undecided* otherwise (or when the statistic is undefined). A claim is

- "supported" when every condition holds,
- "not supported" when at least one condition is contradicted,
- "inconclusive" otherwise.

Claims and their conditions (the fact set is a parameter; defaults below):

C1 (set "own", arm T->T, kind mlp): "clearly high AIE in mid-layer MLPs at the subject tokens".
  a. last-subject-token peak AIE (max over layers of the MLP curve at the last subject token) > 0;
  b. its layer is mid-network: the bootstrap CI of the peak layer lies within relative depths
     `MID_BAND` = [0.1, 0.7] of the layers (contradicted when the CI lies wholly outside);
  c. localised at the subject: last-subject-token peak - further-tokens peak > 0.
  The last subject token, not the subject's tokens pooled: ROME locates the early MLP site there (Meng et al. 2022,
  Fig. 1-2: at the last subject token the MLP effect peaks; the first and middle subject tokens carry little), and the
  paper says T->T "behaves like a text-only Llama". The band: ROME's MLP peaks lie at relative depths 0.2-0.45
  (GPT-2 XL: layers ~10-20 of 48; GPT-J: ~4-12 of 28), and a restoration window of 10 layers blurs a peak's position
  by up to 5 layers (0.16 of a 32-layer model) each way; [0.1, 0.7] keeps that range with its blur and excludes only
  the first three and the last ten layers of a 32-layer model, the input and output ends.
C2 (set "both", every kind compared): "in S->T the AIE is much lower and more diffuse".
  a. lower: ratio of overall peak AIEs S->T / T->T < 1 (contradicted when its CI lies at or above 1);
  b. more diffuse: normalised entropy S->T - T->T > 0.
C3 (set "own", arm S->T, kinds mlp and attn): "S->T keeps some localisation near the subject tokens, in MLP and
  attention".
  a. near-subject peak AIE (subject tokens and the first subsequent token) > 0;
  b. near-subject peak - further-tokens peak > 0.

Every condition is data: its `operator` (">", "<", "within"), `thresholds`, the statistic's value and CI, and ONE
`margin` (`condition_margin`): how far the CI's nearer end lies on the passing side of the threshold, signed
(positive: it holds by that much; negative: the CI reaches across the threshold by that much). summary.md,
comparison.json, report.html and the sizing all show this number (`margin_of` reads it back). A verdict that could
depend on the bootstrap draw shows as a margin near 0 (REPRODUCE.md reports how far the CI ends move between random
streams).

`evaluate_claims(document)` returns {claim id: {"verdict", ...}} (stored as the "claims" section of comparison.json,
and usable by a verifier on a stored comparison.json); `claims_by_set` judges every claim on every fact set;
`summary_markdown(document)` writes them as prose.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

MID_BAND: tuple[float, float] = (0.1, 0.7)
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
CLAIMS: dict[str, str] = {
    "C1": "T->T: clearly high AIE in mid-layer MLPs at the subject tokens (as in text-only models).",
    "C2": "S->T: the AIE is lower and more diffuse than in T->T.",
    "C3": "S->T: some localisation near the subject tokens remains, in MLP and attention.",
}
DEFAULT_SETS: dict[str, str] = {"C1": "own", "C2": "both", "C3": "own"}
RULES: dict[str, str] = {
    "C1": f"mlp, T->T arm: last-subject-token peak AIE CI > 0; its layer's CI within relative depth "
          f"{MID_BAND[0]}-{MID_BAND[1]}; last-subject-token peak minus further-tokens peak CI > 0",
    "C2": "every kind: overall peak ratio S->T/T->T CI < 1 (lower) and entropy difference S->T - T->T CI > 0 "
          "(more diffuse)",
    "C3": "mlp and attn, S->T arm: near-subject peak AIE CI > 0 and near-subject peak minus further-tokens peak "
          "CI > 0",
}
COMBINATION = ("supported when every condition's CI lies on the claimed side; not supported when any CI lies wholly "
               "on the other side; inconclusive otherwise")


OPERATORS: tuple[str, ...] = (">", "<", "within")


def requirement_text(operator: str, thresholds: Sequence[float]) -> str:
    """How a requirement is printed ("> 0", "< 1", "within 0.1-0.7"): display only, never parsed back."""
    if operator == "within":
        return f"within {thresholds[0]:g}-{thresholds[1]:g}"
    return f"{operator} {thresholds[0]:g}"


def condition_margin(operator: str, thresholds: Sequence[float], ci_low: float | None, ci_high: float | None
                     ) -> float | None:
    """THE margin of a condition, the one number every reader shows (summary.md, comparison.json, report.html, the
    sizing): how far the CI's nearer end lies on the passing side of the threshold, signed. Positive: the condition
    holds by that much; zero or negative: the CI reaches across the threshold by that much (undecided, or
    contradicted when the whole CI lies across). "> t": ci_low - t; "< t": t - ci_high; "within a-b":
    min(ci_low - a, b - ci_high). None when the CI is undefined."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown condition operator {operator!r}; one of {', '.join(OPERATORS)}")
    if ci_low is None or ci_high is None:
        return None
    lo, hi = float(ci_low), float(ci_high)
    if operator == ">":
        return lo - thresholds[0]
    if operator == "<":
        return thresholds[0] - hi
    return min(lo - thresholds[0], thresholds[1] - hi)


def condition_outcome(operator: str, thresholds: Sequence[float], ci_low: float | None, ci_high: float | None
                      ) -> bool | None:
    """True when the CI lies on the claimed side of the threshold (within the band), False when it lies wholly on
    the other side (wholly outside the band), None otherwise or when the CI is undefined."""
    margin = condition_margin(operator, thresholds, ci_low, ci_high)
    if margin is None:
        return None
    lo, hi = float(ci_low), float(ci_high)  # type: ignore[arg-type]
    if operator == ">":
        return True if lo > thresholds[0] else False if hi <= thresholds[0] else None
    if operator == "<":
        return True if hi < thresholds[0] else False if lo >= thresholds[0] else None
    a, b = thresholds
    return True if margin >= 0 else False if (hi < a or lo > b) else None


_LEGACY_REQUIREMENT = re.compile(r"\s*(?:(?P<op>[<>])\s*(?P<t>-?[\d.eE+-]+)"
                                 r"|within\s+(?P<a>-?[\d.eE+]+)\s*-\s*(?P<b>-?[\d.eE+]+))\s*")


def requirement_of(condition: Mapping[str, Any]) -> tuple[str, tuple[float, ...]] | None:
    """A stored condition's (operator, thresholds): its fields; for a comparison.json written before conditions
    stored them, read from its old requirement string ("> 0", "< 1", "within 0.1-0.7"). None when neither is
    there."""
    if condition.get("operator") in OPERATORS and isinstance(condition.get("thresholds"), (list, tuple)):
        return str(condition["operator"]), tuple(float(t) for t in condition["thresholds"])
    m = _LEGACY_REQUIREMENT.fullmatch(str(condition.get("requirement", "")))
    if m is None:
        return None
    if m.group("op"):
        return m.group("op"), (float(m.group("t")),)
    return "within", (float(m.group("a")), float(m.group("b")))


def margin_of(condition: Mapping[str, Any]) -> float | None:
    """A stored condition's margin (`condition_margin`): the stored number when the condition stores its operator;
    for a comparison.json written before that (whose "margin" meant something else), recomputed from its CI."""
    if condition.get("operator") in OPERATORS:
        return condition.get("margin")
    requirement = requirement_of(condition)
    if requirement is None:
        return None
    return condition_margin(*requirement, condition.get("ci_low"), condition.get("ci_high"))


def condition_key(claim: str, condition: Mapping[str, Any]) -> str:
    """A condition's stable name across runs: "<claim>/<kind>/<name>" (e.g. "C2/mlp/entropy_difference")."""
    return f"{claim}/{condition.get('kind')}/{condition.get('name', condition.get('statistic'))}"


def _condition(kind: str, name: str, statistic: str, stat: Mapping[str, Any] | None, operator: str,
               thresholds: Sequence[float]) -> dict[str, Any]:
    """One condition as data: the statistic with its CI, the operator and threshold(s), its one margin and outcome
    (all computed here, from `condition_margin` and `condition_outcome`)."""
    stat = stat or {}
    lo, hi = stat.get("ci_low"), stat.get("ci_high")
    holds = condition_outcome(operator, thresholds, lo, hi)
    noise = {"facts_only": stat["facts_only"], "noise_share": stat.get("noise_share")} if "facts_only" in stat else {}
    return {"kind": kind, "name": name, "statistic": statistic, "value": stat.get("value"), "ci_low": lo,
            "ci_high": hi, "operator": operator, "thresholds": [float(t) for t in thresholds],
            "requirement": requirement_text(operator, thresholds), "holds": holds,
            "margin": condition_margin(operator, thresholds, lo, hi),
            "outcome": "holds" if holds else "contradicted" if holds is False else "undecided", **noise}


def _combine(conditions: Sequence[Mapping[str, Any]]) -> str:
    if not conditions:
        return INCONCLUSIVE
    if any(c["holds"] is False for c in conditions):
        return NOT_SUPPORTED
    if all(c["holds"] is True for c in conditions):
        return SUPPORTED
    return INCONCLUSIVE


def _depth(peak: Mapping[str, Any] | None, num_layers: int) -> dict[str, Any]:
    """The peak layer and its CI in relative depth (layer / (layers - 1))."""
    peak = peak or {}
    depth = lambda x: None if x is None else x / max(1, num_layers - 1)  # noqa: E731
    return {"value": depth(peak.get("layer")), "ci_low": depth(peak.get("layer_ci_low")),
            "ci_high": depth(peak.get("layer_ci_high"))}


def claim_c1(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Conditions of C1 on one set's result for kind mlp (compare_arrays output)."""
    if result is None:
        return []
    arm = result["arms"]["t2t"]
    peak = arm["groups"]["last_subject"]["peak"]
    return [
        _condition("mlp", "last_subject_peak", "T->T last-subject-token peak AIE", peak, ">", (0.0,)),
        _condition("mlp", "last_subject_peak_depth", f"T->T last-subject-token peak layer (relative depth; layer "
                   f"{peak.get('layer')} of {result['num_layers']})", _depth(peak, result["num_layers"]), "within",
                   MID_BAND),
        _condition("mlp", "last_subject_minus_further", "T->T last-subject-token peak - further peak",
                   arm["last_subject_minus_further"], ">", (0.0,)),
    ]


def claim_c2(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Conditions of C2 on one set's results ({kind: compare_arrays output})."""
    out = []
    for kind, r in results.items():
        out.append(_condition(kind, "overall_peak_ratio", "overall peak ratio S->T / T->T",
                              r["overall_peak_ratio"], "<", (1.0,)))
        out.append(_condition(kind, "entropy_difference", "entropy S->T - T->T", r["entropy_difference"], ">",
                              (0.0,)))
    return out


def claim_c3(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Conditions of C3 on one set's results for kinds mlp and attn."""
    out = []
    for kind in ("mlp", "attn"):
        if kind not in results:
            continue
        arm = results[kind]["arms"]["s2t"]
        out.append(_condition(kind, "near_subject_peak", "S->T near-subject peak AIE", arm["near_subject_peak"],
                              ">", (0.0,)))
        out.append(_condition(kind, "near_subject_minus_further", "S->T near-subject peak - further peak",
                              arm["near_subject_minus_further"], ">", (0.0,)))
    return out


def verdicts_for_set(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """All claims judged on one set's results ({kind: compare_arrays output})."""
    conditions = {"C1": claim_c1(results.get("mlp")), "C2": claim_c2(results), "C3": claim_c3(results)}
    out = {}
    for claim, conds in conditions.items():
        missing = {"C1": "kind mlp not compared", "C2": "no kind compared", "C3": "kinds mlp/attn not compared"}
        out[claim] = {"claim": CLAIMS[claim], "rule": RULES[claim], "verdict": _combine(conds), "conditions": conds,
                      **({"note": missing[claim]} if not conds else {})}
    return out


def evaluate_claims(document: Mapping[str, Any], sets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Per-claim verdicts from a comparison document (compare_runs output or a loaded comparison.json), each claim
    judged on its default fact set (`DEFAULT_SETS`, overridden by `sets`):
    {"C1": {"verdict", "set", "claim", "rule", "conditions": [...]}, "C2": ..., "C3": ...}."""
    sets = {**DEFAULT_SETS, **(sets or {})}
    verdicts = {}
    for claim, name in sets.items():
        if name in document["results"]:
            verdicts[claim] = {"set": name, **verdicts_for_set(document["results"][name])[claim]}
        else:
            verdicts[claim] = {"set": name, "claim": CLAIMS[claim], "rule": RULES[claim], "verdict": INCONCLUSIVE,
                               "conditions": [], "note": f"set {name!r} not in the comparison"}
    return verdicts


def claims_by_set(document: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Every claim's verdict on every fact set of the comparison: {set: {claim: verdict}}."""
    return {name: {c: v["verdict"] for c, v in verdicts_for_set(results).items()}
            for name, results in document["results"].items()}


def rules_section() -> dict[str, Any]:
    """The decision rules as data (stored beside the verdicts in comparison.json)."""
    return {"combination": COMBINATION, "mid_band": list(MID_BAND), "rules": dict(RULES),
            "default_sets": dict(DEFAULT_SETS)}


# -------------------------------------------------------------------------------------------------- prose


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _sentence(c: Mapping[str, Any]) -> str:
    noise = ""
    if c.get("facts_only"):  # the CI resampled facts and noise samples: say what the noise added
        share = c.get("noise_share")
        noise = (f" (noise {'n/a' if share is None else f'{100 * share:.0f}%'} of its width; facts only "
                 f"[{_num(c['facts_only']['ci_low'])}, {_num(c['facts_only']['ci_high'])}])")
    return (f"{c['statistic']} ({c['kind']}) = {_num(c['value'])}, 95% CI [{_num(c['ci_low'])}, {_num(c['ci_high'])}]"
            f"{noise}, required {c['requirement']}: {c['outcome']} (margin {_num(margin_of(c))})")


def summary_markdown(document: Mapping[str, Any]) -> str:
    """The written summary, generated from the comparison's numbers: one paragraph per claim with its verdict and
    the statistics behind it, then the verdicts on every fact set."""
    verdicts = document.get("claims") or evaluate_claims(document)
    metric = document.get("metric", "prob")
    sources = {kind_result.get("ci_sources") for set_results in document.get("results", {}).values()
               for kind_result in set_results.values()} - {None}
    over = ("facts and noise samples (two-way)" if sources else
            "facts only (the traces keep no per-noise-sample values: conditional on the run's one noise draw)")
    lines = ["# Do the results support the paper's claims?", "",
             f"Generated from `comparison.json` (metric {metric}; 95% bootstrap CIs over {over}, "
             f"{document['bootstrap']['n_resamples']} resamples). Rule for every claim: {COMBINATION}.", ""]
    for claim, v in verdicts.items():
        set_info = document.get("sets", {}).get(v["set"], {})
        lines += [f"## {claim}: {v['claim']}", "",
                  f"**Verdict: {v['verdict']}** (set `{v['set']}`"
                  + (f": {set_info['description']}" if set_info.get("description") else "") + ").", "",
                  f"Rule: {v['rule']}.", ""]
        if v.get("note"):
            lines += [f"Not evaluable: {v['note']}.", ""]
        lines += [f"- {_sentence(c)}." for c in v["conditions"]]
        lines.append("")
    by_set = document.get("claims_by_set") or claims_by_set(document)
    if by_set:
        names = list(CLAIMS)
        lines += ["## Verdicts on every fact set", "", "| set | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for name, per_claim in by_set.items():
            lines.append(f"| {name} | " + " | ".join(per_claim[c] for c in names) + " |")
        lines.append("")
    return "\n".join(lines)


__all__ = ["CLAIMS", "DEFAULT_SETS", "MID_BAND", "OPERATORS", "RULES", "claims_by_set", "condition_key",
           "condition_margin", "condition_outcome", "evaluate_claims", "margin_of", "requirement_of",
           "requirement_text", "rules_section", "summary_markdown", "verdicts_for_set"]
