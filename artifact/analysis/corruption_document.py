"""corruption.json (issue 30): C1-C3 judged under each corruption, from the corruption-choice step's per-fact files
(noise at 1 and 5 sigma, token replacement) and the arms' own traces (noise at 3 sigma, ROME's and the paper's), with
the sha256 list of the files, the verdict table and one sentence on whether the conclusion depends on the corruption.
The pipeline writes it after the step; verify.py recomputes it the same way (`corruption_document`), torch-free.

Per corruption, each fact's indirect effects [pos, layer] (`corruption.indirect_effects`) are averaged per ROME token
group (`effects.group_effects`) and compared across the arms on the facts of the step (paired; token replacement:
the facts with a partner in both arms) by `compare.compare_arrays`, and the claims are judged on that set by
`claims.verdicts_for_set` - the same code as the paper's comparison, on one paired set (the comparison judges C1 and
C3 on each arm's own known set, so the baseline row here may differ from comparison.json's verdicts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES
from artifact.analysis.claims import CLAIMS, verdicts_for_set
from artifact.analysis.compare import compare_arrays
from artifact.analysis.corruption import (
    BASELINE,
    REPLACEMENT,
    dependence_sentence,
    indirect_effects,
    label,
    noise_name,
    verdict_table,
)
from artifact.analysis.effects import group_effects
from artifact.analysis.step_files import write_step_summary
from artifact.core.digests import write_digest_list
from artifact.core.fileio import DamagedFileError, npz_problem, sha256_file, write_json_atomic
from artifact.core.layout import (
    CARRYOVER_FACTS_DIR,
    CORRUPTION_DIR,
    CORRUPTION_RESULTS_FILE,
    PAIRING_FILE,
    SETTINGS_FILE,
    corruption_fact_path,
    fact_file_id,
    result_path,
)
from artifact.core.names import ARM_LABELS, ARMS
from artifact.core.results import ResultsFolder

DIGESTS_FILE = "facts.sha256"
SUMMARY_SECTION = "## Corruption choice: do the claims depend on the corruption?"
SEPARATOR = "__"  # the step's npz keys: <corruption>__<kind>__<array> (experiments.corruption.key)
LOGIT_DIFF = "logit_diff"
MIN_FACTS = 5  # fewer facts give no usable bootstrap CI (one fact: a point): the claims are then not judged
NOT_JUDGED = "not judged"


def _read(path: Path, fix: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {fix}")
    problem = npz_problem(path)
    if problem is not None:
        raise DamagedFileError(path, problem, f"Delete it and rerun the same ./run_all.sh command: {fix}")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def fact_arrays(results: ResultsFolder | Path, run_dirs: dict[str, Path], arm: str, known_id: Any,
                corruption: str, kind: str) -> dict[str, np.ndarray]:
    """One fact's trace arrays of one arm, corruption and kind: noise at 3 sigma from the arm's own trace file, the
    others from the step's file."""
    if corruption == BASELINE:
        return _read(result_path(run_dirs[arm], kind, known_id), "the trace step writes it")
    stored = _read(corruption_fact_path(ResultsFolder.of(results).path, arm, known_id),
                   "the corruption-choice step writes one file per arm and fact")
    prefix = f"{corruption}{SEPARATOR}{kind}{SEPARATOR}"
    arrays = {name[len(prefix):]: value for name, value in stored.items() if name.startswith(prefix)}
    if not arrays:
        raise KeyError(f"{corruption_fact_path(ResultsFolder.of(results).path, arm, known_id)} has no {corruption} "
                       f"{kind} trace")
    arrays["last_position"] = stored["last_position"]
    return arrays


def fact_effects(results: ResultsFolder | Path, run_dirs: dict[str, Path], arm: str, known_ids: Sequence[str],
                 corruption: str, kind: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """([fact, group, layer] effects, [fact] first-subsequent-is-last) of one arm, corruption, kind and metric."""
    effects, overlap = [], []
    for known_id in known_ids:
        arrays = fact_arrays(results, run_dirs, arm, known_id, corruption, kind)
        last = int(arrays["last_position"])
        effects.append(group_effects(indirect_effects(arrays, metric), arrays["subject_range"], last))
        overlap.append(int(arrays["subject_range"][1]) == last)
    return np.stack(effects), np.asarray(overlap, dtype=bool)


def corruption_facts(settings: dict[str, Any], pairing: dict[str, Any], known_ids: Sequence[str]
                     ) -> dict[str, list[str]]:
    """The facts each corruption is judged on: every fact of the step for noise; for token replacement, those with
    a partner in both arms."""
    ids = [str(i) for i in known_ids]
    out = {noise_name(m): ids for m in settings["multiples"]}
    if settings["replacement"]:
        out[REPLACEMENT] = [i for i in ids if all(i in (pairing.get(arm) or {}).get("partners", {}) for arm in ARMS)]
    return out


def judged(results: ResultsFolder | Path, run_dirs: dict[str, Path], known_ids: Sequence[str], corruption: str,
           kinds: Sequence[str], metric: str) -> dict[str, Any]:
    """C1-C3 on one corruption and metric (`verdicts_for_set` of the paired comparison per kind), with each kind's
    last-subject-token AIE curve per arm for the figure."""
    if not known_ids:
        return {"n_facts": 0, "claims": {c: {"verdict": NOT_JUDGED, "conditions": [],
                                            "note": "no fact has a partner in both arms"} for c in CLAIMS},
                "curves": {}}
    compared, curves = {}, {}
    for kind in kinds:
        t, t_last = fact_effects(results, run_dirs, "t2t", known_ids, corruption, kind, metric)
        s, s_last = fact_effects(results, run_dirs, "s2t", known_ids, corruption, kind, metric)
        compared[kind] = compare_arrays(t, s, True, kind=kind, t2t_subsequent_is_last=t_last,
                                        s2t_subsequent_is_last=s_last)
        curves[kind] = {arm: compared[kind]["arms"][arm]["groups"]["last_subject"]["aie"] for arm in ARMS}
    verdicts = verdicts_for_set(compared)
    out = {c: {k: v[k] for k in ("verdict", "conditions", "note") if k in v} for c, v in verdicts.items()}
    if len(known_ids) < MIN_FACTS:  # the statistics stay for a look; a verdict from them would mean nothing
        for entry in out.values():
            entry.update(verdict=NOT_JUDGED, note=f"{len(known_ids)} facts: fewer than {MIN_FACTS} give no usable CI")
    return {"n_facts": len(known_ids), "claims": out, "curves": curves}


def judged_sentence(verdicts: dict[str, dict[str, str]], corruptions: dict[str, Any]) -> str:
    """`dependence_sentence` over the corruptions whose claims were judged; those that were not (too few facts)
    are named instead of being counted as agreeing."""
    unjudged = [c for c, per in verdicts.items() if any(v == NOT_JUDGED for v in per.values())]
    if BASELINE in unjudged:
        n = corruptions[BASELINE]["metrics"]["prob"]["n_facts"]
        return (f"Not measured: {n} facts are too few to judge the claims (at least {MIN_FACTS}), so whether the "
                "conclusion depends on the corruption is not said; the standard profile measures it.")
    sentence = dependence_sentence({c: per for c, per in verdicts.items() if c not in unjudged})
    if unjudged:
        sentence += " Not judged (too few facts): " + ", ".join(
            f"{label(c)} ({corruptions[c]['metrics']['prob']['n_facts']} facts)" for c in unjudged) + "."
    return sentence


def logit_diff_sentence(verdicts: dict[str, dict[str, str]], corruptions: dict[str, Any]) -> str:
    """The dependence sentence for token replacement's logit difference (`verdicts`: the baseline's and the
    replacement's by that metric); when the baseline itself was not judged, a short pointer to the sentence before
    rather than the same 'not measured' text twice."""
    lead = "Measured by the logit difference under token replacement: "
    if any(v == NOT_JUDGED for v in verdicts[BASELINE].values()):
        return lead + "not measured either, for the same reason."
    return lead + judged_sentence(verdicts, corruptions)


def corruption_document(results: ResultsFolder | Path, known_ids: Sequence[Any], run_dirs: dict[str, Path]
                        ) -> dict[str, Any]:
    """What corruption.json holds: per corruption its facts and, per metric (P(answer); token replacement also the
    logit difference), C1-C3 with their conditions' CIs; the verdict table and the dependence sentences."""
    folder = ResultsFolder.of(results)
    step = folder.path / CORRUPTION_DIR
    settings = json.loads((step / SETTINGS_FILE).read_text())
    pairing = json.loads((step / PAIRING_FILE).read_text())
    ids = [str(i) for i in known_ids]
    corruptions: dict[str, Any] = {}
    for corruption, members in corruption_facts(settings, pairing, ids).items():
        metrics = ("prob", LOGIT_DIFF) if corruption == REPLACEMENT else ("prob",)
        corruptions[corruption] = {
            "label": label(corruption), "known_ids": members,
            "metrics": {m: judged(folder, run_dirs, members, corruption, settings["kinds"], m) for m in metrics}}
    verdicts = {c: {claim: v["verdict"] for claim, v in entry["metrics"]["prob"]["claims"].items()}
                for c, entry in corruptions.items()}
    sentences = {"prob": judged_sentence(verdicts, corruptions)}
    if REPLACEMENT in corruptions:
        by_diff = {BASELINE: verdicts[BASELINE],
                   REPLACEMENT: {c: v["verdict"] for c, v in
                                 corruptions[REPLACEMENT]["metrics"][LOGIT_DIFF]["claims"].items()}}
        sentences[LOGIT_DIFF] = logit_diff_sentence(by_diff, corruptions)
    skipped = {arm: len((pairing.get(arm) or {}).get("skipped", [])) for arm in ARMS} if settings["replacement"] \
        else {}
    return {"settings": settings, "known_ids": ids, "n_facts": len(ids),
            "bootstrap": {"confidence": CONFIDENCE, "n_resamples": N_RESAMPLES, "seed": BOOTSTRAP_SEED},
            "replacement_skipped": skipped, "corruptions": corruptions, "table": verdict_table(verdicts),
            "sentences": sentences}


def aggregate_corruption(results: ResultsFolder | Path, known_ids: Sequence[Any], run_dirs: dict[str, Path]
                         ) -> dict[str, Any]:
    """corruption/corruption.json and facts.sha256 (the step's files it was computed from); returns the document."""
    folder = ResultsFolder.of(results)
    document = corruption_document(folder, known_ids, run_dirs)
    step = folder.path / CORRUPTION_DIR
    write_json_atomic(step / CORRUPTION_RESULTS_FILE, document)
    write_digest_list(step / DIGESTS_FILE, {f"{CARRYOVER_FACTS_DIR}/{arm}/{fact_file_id(i)}.npz":
                                            sha256_file(corruption_fact_path(folder.path, arm, i))
                                            for arm in ARMS for i in document["known_ids"]})
    return document


def summary_section(document: dict[str, Any]) -> str:
    """The summary.md section: the verdict table per corruption, the sentences, and the replacement's skips."""
    claims = list(CLAIMS)
    lines = [SUMMARY_SECTION, "",
             f"C1-C3 judged by the comparison's rules on the {document['n_facts']} facts of this step, paired across "
             f"the arms, under each corruption (95% bootstrap CIs over facts, {document['bootstrap']['n_resamples']} "
             "resamples); metric P(answer).", "",
             "| corruption | facts | " + " | ".join(claims) + " |", "|---|---|" + "---|" * len(claims)]
    for row in document["table"]:
        n = document["corruptions"][row["corruption"]]["metrics"]["prob"]["n_facts"]
        lines.append(f"| {row['label']} | {n} | " + " | ".join(row.get(c, "") for c in claims) + " |")
    if LOGIT_DIFF in document["sentences"]:
        entry = document["corruptions"][REPLACEMENT]["metrics"][LOGIT_DIFF]
        lines.append(f"| token replacement, logit difference | {entry['n_facts']} | "
                     + " | ".join(entry["claims"][c]["verdict"] for c in claims) + " |")
    lines += ["", *[f"- {s}" for s in document["sentences"].values()]]
    if document["replacement_skipped"]:
        lines.append("- Token replacement skipped the facts without a same-length partner with another answer: "
                     + ", ".join(f"{ARM_LABELS[a]} {n} of {document['n_facts']}"
                                 for a, n in document["replacement_skipped"].items()) + ".")
    lines.append("")
    return "\n".join(lines)


def write_summary(results: ResultsFolder | Path, document: dict[str, Any]) -> None:
    """corruption/summary.md, and the same section in the comparison's summary.md."""
    write_step_summary(results, CORRUPTION_DIR, SUMMARY_SECTION, summary_section(document))


__all__ = ["aggregate_corruption", "corruption_document", "corruption_facts", "fact_arrays", "fact_effects",
           "summary_section", "write_summary"]
