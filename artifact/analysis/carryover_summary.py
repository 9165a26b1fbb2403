"""The carry-over results in words (issue 18): one sentence per analysis with its statistic, the patching table, and
the carry-over section of summary.md; the methods as carryover.json states them. Pure text from the statistics of
`artifact.analysis.carryover`."""

from __future__ import annotations

from typing import Any, Mapping

from artifact.core.names import DIRECTION_LABELS, DIRECTIONS, MODALITIES, POSITION_LABELS

SUMMARY_SECTION = "## Carry-over: does recall carry over from text to speech?"
METHODS = {
    "patching": "cross-modal activation patching: the receiving prompt's subject is corrupted as in causal tracing "
                "(its arm's noise level and seed); at each layer (a window of layers for mlp/attn) the state at one "
                "mapped position is overwritten with the donor modality's clean state at the mapped position; IE = "
                "patched P(answer) - corrupted P(answer); 'own' = the receiving arm's causal trace at the same token "
                "group (the same facts)",
    "knockout": "attention knockout (Geva et al. 2023): edges last -> every subject token blocked in the window of "
                "layers centred on each layer; relative change (P_blocked - P_clean) / P_clean",
    "lens": "logit lens: each block's output read through the final norm and unembedding; P(answer) over the whole "
            "vocabulary; top-1 = the answer is the greedy text-mode token",
    "positions": "last subject token <-> last subject speech token; last text token <-> [Text] marker",
    "intervals": "95% percentile bootstrap over facts per layer; peaks: basic bootstrap CI of the value, percentile "
                 "CI of the layer; shares: basic CI from paired resamples",
}


def _number(x: float, digits: int) -> str:
    """Fixed decimals, or significant digits for values too small to show that way (probabilities of rare tokens)."""
    return f"{x:.{digits}f}" if x == 0 or abs(x) >= 10 ** -(digits - 1) else f"{x:.2g}"


def _ci(entry: Mapping[str, Any], digits: int = 3) -> str:
    if entry.get("value") is None:
        return "undefined"
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    span = f" [{_number(lo, digits)}, {_number(hi, digits)}]" if lo is not None and hi is not None else ""
    return f"{_number(entry['value'], digits)}{span}"


def _excludes_zero(entry: Mapping[str, Any]) -> bool:
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    return lo is not None and hi is not None and (lo > 0 or hi < 0)


def _layer(entry: Mapping[str, Any], layers: int) -> str:
    if entry.get("layer") is None:
        return "no layer"
    return f"layer {entry['layer']} of {layers}"


def sentences(stats: Mapping[str, Any], layers: int, kind: str = "hidden", position: str = "last_subject"
              ) -> dict[str, str]:
    """One sentence per analysis, with its statistic, for the summary (headline cell: `kind` at `position`)."""
    out: dict[str, str] = {}
    patching = stats.get("patching") or {}
    parts = []
    for direction in DIRECTIONS:
        entry = patching.get(f"{direction}/{kind}/{position}")
        if not entry:
            continue
        donor, receiver = DIRECTIONS[direction]
        cp = entry["cross_peak"]
        detected = "restores" if _excludes_zero(cp) else "does not detectably restore"
        text = (f"the clean {donor} run's {kind} state at the {POSITION_LABELS[position]}, written into the corrupted "
                f"{receiver} prompt, {detected} P(answer): peak IE {_ci(cp)} at {_layer(cp, layers)}")
        if entry.get("own_peak"):
            text += (f", vs {_ci(entry['own_peak'])} at {_layer(entry['own_peak'], layers)} for {receiver}'s own "
                     f"state (share {_ci(entry['share_of_own_peak'], 2)})")
        parts.append(text)
    if parts:
        out["patching"] = "Cross-modal patching: " + "; ".join(parts) + "."
    knock = stats.get("knockout") or {}
    if knock:
        parts = []
        for modality in MODALITIES:
            drop = (knock.get(modality) or {}).get("strongest_drop") or {}
            if drop.get("value") is None:
                parts.append(f"{modality}: undefined")
                continue
            span = (f" [{100 * drop['ci_low']:.1f}, {100 * drop['ci_high']:.1f}]"
                    if drop.get("ci_low") is not None and drop.get("ci_high") is not None else "")
            parts.append(f"{modality} {100 * drop['value']:.1f}%{span} at {_layer(drop, layers)} (relative depth "
                         f"{drop['depth']:.2f})")
        out["knockout"] = ("Attention knockout: blocking the last token's attention to the subject in a window "
                           "around one layer lowers P(answer) most (relative change) for " + "; ".join(parts) + ".")
    lens = stats.get("lens") or {}
    if lens:
        parts = []
        for modality in MODALITIES:
            last, subject = lens.get(f"{modality}/last"), lens.get(f"{modality}/last_subject")
            bits = []
            if last:
                f = last["formed"]
                bits.append(f"the answer is the top token at the last position for half the facts from layer "
                            f"{int(f['layer'])}" + (f" [{int(f['ci_low'])}, {int(f['ci_high'])}]"
                                                    if f.get("ci_low") is not None and f.get("ci_high") is not None
                                                    else "")
                            if f.get("layer") is not None else "the answer never becomes the top token at the last "
                                                               "position for half the facts")
            if subject:
                bits.append(f"at the last subject token P(answer) peaks at {_ci(subject['prob_peak'])} "
                            f"({_layer(subject['prob_peak'], layers)})")
            parts.append(f"{modality}: " + ", ".join(bits))
        out["lens"] = "Logit lens: " + "; ".join(parts) + "."
    return out


def summary_section(document: dict[str, Any]) -> str:
    """The carry-over section of summary.md: per fact set, one sentence per analysis with its statistic."""
    models = document["settings"]["models"]
    lines = [SUMMARY_SECTION, "",
             f"Facts known in both arms, each analysis in both modalities (text in {models['text']}, speech in "
             f"{models['speech']}, one transformer); positions map {METHODS['positions']}; "
             "95% bootstrap CIs over facts. Figures: carryover/*.png; numbers: carryover/carryover.json.", ""]
    for name, entry in document["sets"].items():
        lines += [f"### Set `{name}` ({len(entry['known_ids'])} facts)", ""]
        lines += [f"- {text}" for text in entry["sentences"].values()]
        lines.append("")
        lines += patching_table(entry["statistics"].get("patching") or {}, document.get("layers") or 0)
    all_ids = set(document["sets"]["all"]["known_ids"])
    for name, members in (document.get("subsets") or {}).items():
        if name not in document["sets"]:
            inside = len(all_ids & set(members))
            lines += [f"Set `{name}`: " + ("no facts (skipped)." if not inside else
                                           f"all {inside} facts: the same as `all`."), ""]
    return "\n".join(lines)


def patching_table(patching: dict[str, Any], layers: int) -> list[str]:
    """Every patched cell: the cross-modal peak beside the receiving modality's own, and the share (markdown)."""
    if not patching:
        return []
    lines = ["| donor -> receiver | state | position | cross-modal peak IE [95% CI] (layer) | receiver's own peak "
             "(layer) | share of own |", "|---|---|---|---|---|---|"]
    for entry in patching.values():
        cross, own = entry["cross_peak"], entry.get("own_peak") or {}
        lines.append(f"| {DIRECTION_LABELS[entry['direction']]} | {entry['kind']} | {entry['position']} | "
                     f"{_ci(cross)} ({cross.get('layer')}) | {_ci(own) if own else '-'} "
                     f"({own.get('layer') if own else '-'}) | "
                     f"{_ci(entry['share_of_own_peak'], 2) if 'share_of_own_peak' in entry else '-'} |")
    return lines + ["", f"Layers 0-{layers - 1}; for mlp and attn the layer is the centre of the patched window.", ""]
