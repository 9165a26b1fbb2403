"""transcription.json (issue 30): the implicit-transcription statistics computed from the step's per-fact files, the
recall effects' depths beside them (from carryover.json and comparison.json), the sha256 list of the files, and the
summary in words. The pipeline writes it after the implicit-transcription step; verify.py recomputes it the same
way (`transcription_document`), torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES
from artifact.analysis.step_files import stack_fact_files, write_step_summary
from artifact.analysis.transcription import (
    TOKENS,
    TOP_K,
    WHERE,
    Depth,
    beside_recall_depths,
    depth_sentence,
    transcription_statistics,
)
from artifact.core.digests import write_digest_list
from artifact.core.fileio import sha256_file, write_json_atomic
from artifact.core.layout import (
    CARRYOVER_FACTS_DIR,
    SETTINGS_FILE,
    TRANSCRIPTION_DIR,
    TRANSCRIPTION_RESULTS_FILE,
    fact_file_id,
    transcription_fact_path,
)
from artifact.core.names import KIND_NAMES
from artifact.core.results import ResultsFolder

DIGESTS_FILE = "facts.sha256"
SUMMARY_SECTION = "## Implicit transcription: does speech read as text inside the model?"
HEADLINE = ("first", "last")  # the sentence's view: the subject's first text token at the last subject speech token
CURVES = tuple(f"{t}_{m}_{w}" for t in TOKENS for m in ("prob", "rank") for w in WHERE)


def load_transcription_files(results: ResultsFolder | Path, known_ids: Sequence[Any]) -> dict[str, np.ndarray]:
    """The listed facts' fixed-shape curves ([layer] each, `TranscriptionResult.summary`) stacked to [fact, layer], in
    the given order, with known_id [fact]; a missing or damaged file is an error naming the fix."""
    folder = ResultsFolder.of(results).path
    return stack_fact_files([transcription_fact_path(folder, i) for i in known_ids], "implicit-transcription",
                            names=(*CURVES, "known_id"))


def recall_depths(results: ResultsFolder | Path) -> list[Depth]:
    """The recall effects' layers with CIs in the speech arm: the cross-modal patching peaks into speech at the last
    subject token (carryover.json, set 'all'), speech's knockout drop, and the S->T and T->T MLP sites (the last
    subject token's MLP peak, comparison.json, set 'both'). Effects a run did not measure are left out."""
    folder = ResultsFolder.of(results)
    out: list[Depth] = []
    if folder.carryover_file.is_file():
        stats = json.loads(folder.carryover_file.read_text())["sets"]["all"]["statistics"]
        for name, entry in sorted((stats.get("patching") or {}).items()):
            if entry["receiver"] == "speech" and entry["position"] == "last_subject":
                out.append(Depth.from_peak(f"the text -> speech {KIND_NAMES[entry['kind']]} patching peak",
                                           entry["cross_peak"]))
        if "knockout" in stats:
            out.append(Depth.from_peak("the speech knockout drop", stats["knockout"]["speech"]["strongest_drop"]))
    if folder.comparison_file.is_file():
        mlp = json.loads(folder.comparison_file.read_text()).get("results", {}).get("both", {}).get("mlp")
        if mlp:
            for arm, label in (("s2t", "S->T"), ("t2t", "T->T")):
                out.append(Depth.from_peak(f"the {label} MLP site", mlp["arms"][arm]["groups"]["last_subject"]["peak"]))
    return out


def transcription_document(results: ResultsFolder | Path, known_ids: Sequence[Any]) -> dict[str, Any]:
    """What transcription.json holds: per token choice and read position the mean P curve and the depths (per k),
    the depths beside the recall effects, and one sentence per k."""
    folder = ResultsFolder.of(results)
    settings = json.loads((folder.path / TRANSCRIPTION_DIR / SETTINGS_FILE).read_text())
    ids = [str(i) for i in known_ids]
    curves = load_transcription_files(folder, ids)
    stats = transcription_statistics(curves)
    layers = int(curves[CURVES[0]].shape[1])
    token, where = HEADLINE
    head = stats[f"{token}/{where}"]
    effects = recall_depths(folder)
    beside, sentences = {}, {}
    for k in TOP_K:
        rows = beside_recall_depths(Depth.from_formed("implicit transcription", head["depth"][str(k)]), effects,
                                    layers)
        beside[str(k)] = rows
        sentences[str(k)] = depth_sentence(rows, k, token, where)
    return {"settings": settings, "known_ids": ids, "n_facts": len(ids), "layers": layers,
            "bootstrap": {"confidence": CONFIDENCE, "n_resamples": N_RESAMPLES, "seed": BOOTSTRAP_SEED},
            "headline": {"token": token, "where": where}, "statistics": stats, "beside_recall": beside,
            "sentences": sentences}


def aggregate_transcription(results: ResultsFolder | Path, known_ids: Sequence[Any]) -> dict[str, Any]:
    """transcription/transcription.json and facts.sha256 (the files it was computed from); returns the document."""
    folder = ResultsFolder.of(results)
    document = transcription_document(folder, known_ids)
    step = folder.path / TRANSCRIPTION_DIR
    write_json_atomic(step / TRANSCRIPTION_RESULTS_FILE, document)
    write_digest_list(step / DIGESTS_FILE, {f"{CARRYOVER_FACTS_DIR}/{fact_file_id(i)}.npz":
                                            sha256_file(transcription_fact_path(folder.path, i))
                                            for i in document["known_ids"]})
    return document


def summary_section(document: dict[str, Any]) -> str:
    """The summary.md section: what was measured, the sentences, and the depths beside the recall effects."""
    settings = document["settings"]
    lines = [SUMMARY_SECTION, "",
             f"The spoken subject's positions in the speech model ({settings['model']}) read through the final norm "
             f"and unembedding at every layer, over the text-mode vocabulary; {document['n_facts']} facts. Depth: "
             "the first layer at which the subject's text is among the top k text-mode tokens for half the facts "
             f"(95% percentile CI over facts, {document['bootstrap']['n_resamples']} resamples).", ""]
    lines += [f"- top {k}: {sentence}" for k, sentence in document["sentences"].items()]
    headline = document["statistics"]["first/last"]["depth"]
    lines += ["", "| depth | layer | 95% CI | relative depth | transcription is |", "|---|---|---|---|---|"]
    for n, row in enumerate(document["beside_recall"][str(TOP_K[-1])]):
        ci = "" if row["ci_low"] is None else f"[{row['ci_low']:g}, " + \
            ("never" if row["ci_high"] is None else f"{row['ci_high']:g}") + "]"
        if n == 0 and row["layer"] is None:  # the transcription's depth never comes: say how surely
            ci = f"none in {100 * headline[str(TOP_K[-1])]['never_share']:.1f}% of resamples"
        layer = "none" if row["layer"] is None else f"{row['layer']:g}"
        depth = "" if row["relative_depth"] is None else f"{row['relative_depth']:.2f}"
        lines.append(f"| {row['name']} | {layer} | {ci} | {depth} | {row.get('transcription', '')} |")
    lines += ["", "Top-k share of the facts per layer (first text token, last subject speech token): "
              + ", ".join(f"top {k}: " + " ".join(f"{x:.2f}" for x in
                                                   document["statistics"]["first/last"]["depth"][str(k)]["top_k_share"])
                          for k in TOP_K), ""]
    if any(headline[str(k)]["layer"] is None for k in TOP_K):
        lines += ["Where no layer reaches half the facts, the largest share at any layer with its exact "
                  "(Clopper-Pearson) 95% CI over facts: "
                  + "; ".join(best_share(headline[str(k)], k) for k in TOP_K) + ".", ""]
    return "\n".join(lines)


def best_share(depth: dict[str, Any], k: int) -> str:
    """'top k: c of n facts at layer l (share, 95% CI [lo, hi])': the layer where most facts read as their text,
    with the binomial CI that says how far below half the facts the share lies."""
    from scipy.stats import binomtest  # lazy: the summary's one use of scipy

    shares = np.asarray(depth["top_k_share"], dtype=float)
    n = int(depth["n_facts"])
    layer = int(shares.argmax())
    count = int(round(shares[layer] * n))
    ci = binomtest(count, n).proportion_ci(0.95, method="exact")
    where = f" at layer {layer}" if count else " at any layer"
    return f"top {k}: {count} of {n} facts{where} ({count / n:.2f}, 95% CI [{ci.low:.2f}, {ci.high:.2f}])"


def write_summary(results: ResultsFolder | Path, document: dict[str, Any]) -> None:
    """transcription/summary.md, and the same section appended to (or replaced in) the comparison's summary.md."""
    write_step_summary(results, TRANSCRIPTION_DIR, SUMMARY_SECTION, summary_section(document))


__all__ = ["aggregate_transcription", "load_transcription_files", "recall_depths", "summary_section",
           "transcription_document", "write_summary"]
