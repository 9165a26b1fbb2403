"""The comparison as markdown tables (comparison.md): per fact set and kind, both arms' peaks with CIs, their
ratio, diffuseness and where the paired difference's simultaneous band excludes 0.
"""

from __future__ import annotations

from typing import Any, Mapping

from artifact.core.names import (
    ARM_LABELS,
    LAST_TOKEN_MEANING,
)


def _fmt(x: Any, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(d: Mapping[str, Any], digits: int = 4) -> str:
    return f"{_fmt(d.get('value'), digits)} [{_fmt(d.get('ci_low'), digits)}, {_fmt(d.get('ci_high'), digits)}]"


def _peak_text(p: Mapping[str, Any]) -> str:
    if p.get("layer") is None:
        return "n/a"
    lo, hi = p.get("layer_ci_low"), p.get("layer_ci_high")
    layers = f"L{p['layer']} [{'?' if lo is None else int(lo)}-{'?' if hi is None else int(hi)}]"
    where = f"{p['group']} " if p.get("group") else ""
    return f"{where}{layers}: {_ci(p)}"


def _band_layers(diff: Mapping[str, Any], sign: int) -> str:
    lo, hi = diff["band_low"], diff["band_high"]
    chosen = [str(i) for i, (a, b) in enumerate(zip(lo, hi))
              if a is not None and b is not None and ((sign < 0 and b < 0) or (sign > 0 and a > 0))]
    return ",".join(chosen) or "none"


def comparison_markdown(doc: Mapping[str, Any]) -> str:
    """The reviewer's table: per set and kind, peaks per arm, their ratio, diffuseness and where S->T differs."""
    metric = doc["metric"]
    lines = [f"# T->T vs S->T: causal tracing comparison ({metric})", "",
             f"- T->T run: `{doc['t2t_run']}` ({LAST_TOKEN_MEANING['t2t']})",
             f"- S->T run: `{doc['s2t_run']}` ({LAST_TOKEN_MEANING['s2t']})",
             f"- CIs: 95%, bootstrap over facts ({doc['bootstrap']['n_resamples']} resamples, seed "
             f"{doc['bootstrap']['seed']}); curves and paired differences BCa; peak layers: "
             f"{doc['bootstrap']['peak_layers']}; peak AIEs, ratios, entropy: "
             f"{doc['bootstrap']['peaks_ratios_entropy']}; "
             "difference bands: " + doc["bootstrap"]["band"] + ".",
             f"- Diffuseness: {doc['diffuseness']}.",
             "- Peak cells: `L<layer> [layer CI]: AIE [CI]`; grid statistics exclude the last token.", ""]
    for name, per_kind in doc["results"].items():
        lines += [f"## Set `{name}`: {doc['sets'][name]['description']}", "",
                  "| kind | n T->T / S->T | T->T peak at last subject | S->T peak at last subject | ratio S/T "
                  "(last subject) | T->T overall peak | S->T overall peak | ratio S/T (overall) | entropy T->T | "
                  "entropy S->T | entropy S-T | layers S<T (band, last subject) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for kind, r in per_kind.items():
            t, s = r["arms"]["t2t"], r["arms"]["s2t"]
            ls = r["groups"]["last_subject"]
            lines.append(
                f"| {kind} | {r['n_facts']['t2t']} / {r['n_facts']['s2t']} | "
                f"{_peak_text(t['groups']['last_subject']['peak'])} | {_peak_text(s['groups']['last_subject']['peak'])}"
                f" | {_ci(ls['peak_ratio'], 3)} | {_peak_text(t['overall_peak'])} | {_peak_text(s['overall_peak'])} | "
                f"{_ci(r['overall_peak_ratio'], 3)} | {_ci(t['entropy'], 3)} | {_ci(s['entropy'], 3)} | "
                f"{_ci(r['entropy_difference'], 3)} | {_band_layers(ls['difference'], -1)} |")
        lines += ["", "| kind | arm | subject peak | near-subject peak | further peak | subject - further | "
                      "near-subject - further |", "|---|---|---|---|---|---|---|"]
        for kind, r in per_kind.items():
            for arm in ("t2t", "s2t"):
                a = r["arms"][arm]
                lines.append(f"| {kind} | {ARM_LABELS[arm]} | {_peak_text(a['subject_peak'])} | "
                             f"{_peak_text(a['near_subject_peak'])} | {_peak_text(a['further_peak'])} | "
                             f"{_ci(a['subject_minus_further'])} | {_ci(a['near_subject_minus_further'])} |")
        lines.append("")
    norm = doc.get("normalised", {})
    if norm.get("skipped"):
        lines += ["## Length-normalised view", "", f"Not computed: {norm['skipped']}", ""]
    verdicts = doc.get("claims", {})
    if verdicts:
        lines += ["## Claims (rules in summary.md)", "", "| claim | verdict |", "|---|---|"]
        lines += [f"| {c} | {v['verdict']} |" for c, v in verdicts.items()]
        lines.append("")
    return "\n".join(lines)
