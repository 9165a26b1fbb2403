"""The carry-over step (issue 18): for each fact known in both arms, measure directly whether recall carries over
from text to speech, with the engine's three analyses, each modality in its own arm's model:

- cross-modal patching: the clean run of one modality donates its state (hidden, MLP or attention output) at a mapped
  position to the corrupted run of the other modality (`artifact.tracing.crossmodal`);
- attention knockout: last -> subject edges blocked in a window of layers, per modality (`artifact.tracing.knockout`);
- logit lens at the mapped positions, per modality (`artifact.tracing.lens`).

Positions map by token group: the last subject token <-> the last subject speech token, the last text token <-> the
`[Text]` marker. A state moves between the two arms' models, which must share one transformer (`check_shared`): for
SpiritLM they are one model; the embedded speech model is the text model plus new embedding rows (its training
changes nothing else), so its blocks are the text model's, bit for bit, while each arm keeps its own vocabulary for
P(answer). Each fact's numbers go to one file, written atomically, so a killed run resumes fact by fact; the settings
are stored beside them and a rerun with others is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.core.fileio import DamagedFileError, npz_problem, read_json, write_json_atomic, write_npz_atomic
from artifact.core.layout import ResultsFolderError, fact_file_id
from artifact.experiments.profiles import CarryOverPlan

log = logging.getLogger(__name__)

CARRYOVER_DIR = "carryover"
FACTS_DIR = "facts"
SETTINGS_FILE = "settings.json"
MODALITIES: tuple[str, ...] = ("text", "speech")
DIRECTION_MODALITIES: dict[str, tuple[str, str]] = {"text_to_speech": ("text", "speech"),
                                                    "speech_to_text": ("speech", "text")}  # (donor, receiver)


@dataclass(frozen=True)
class CarryOverSettings:
    """Everything the carry-over numbers depend on; stored as carryover/settings.json."""

    models: dict[str, str]  # modality -> the arm's model that runs it (text: T->T's, speech: S->T's)
    text_noise: float  # the T->T arm's corruption level (text subject tokens)
    speech_noise: float  # the S->T arm's (speech subject tokens)
    samples: int
    window: int  # restoration window of mlp/attn patching, and the knockout window
    seed: int
    batch_size: int
    plan: CarryOverPlan

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def noise(self, modality: str) -> float:
        return self.text_noise if modality == "text" else self.speech_noise


def mapped_positions(prompt: Any) -> dict[str, int]:
    """The positions of the mapped token groups in one prompt: last subject token and last token."""
    return {"last_subject": int(prompt.subject_range[1]) - 1, "last": int(prompt.last_position)}


def fact_path(out: Path, known_id: Any) -> Path:
    return Path(out) / CARRYOVER_DIR / FACTS_DIR / f"{fact_file_id(known_id)}.npz"


def check_shared(text_model: Any, speech_model: Any) -> None:
    """Cross-modal patching writes one model's states into the other's run: both must share every transformer
    weight (the same model, or one that only adds vocabulary rows). Raises ValueError naming the first difference."""
    import torch

    if text_model is speech_model:
        return
    speech = dict(speech_model.model.named_parameters())
    for name, weight in text_model.model.named_parameters():
        other = speech.get(name)
        if other is None or other.shape[1:] != weight.shape[1:] or other.shape[0] < weight.shape[0] or \
                not torch.equal(other[: weight.shape[0]], weight):
            raise ValueError(f"{text_model.name} and {speech_model.name} differ in {name}: cross-modal patching "
                             "needs one transformer for both modalities (the same model, or the text model with "
                             "added vocabulary rows only)")


def fact_carryover(models: dict[str, Any], prompts: dict[str, Any], settings: CarryOverSettings
                   ) -> dict[str, np.ndarray]:
    """One fact's carry-over arrays from its text and speech prompts, each run in its arm's model (`models` and
    `prompts` keyed by modality; the models checked by `check_shared`):
    patch_prob/patch_logprob [direction, kind, position, layer], the receiving prompt's corrupted (low_*) and clean
    (high_*) scores [direction], knockout_clean [modality] and knockout_prob [modality, layer], lens_prob and lens_rank
    [modality, position, layer]. Plans without an analysis get empty arrays for it."""
    import torch

    from artifact.known import text_mode_banned_ids
    from artifact.tracing.knockout import knockout
    from artifact.tracing.lens import logit_lens

    plan = settings.plan
    L = models["speech"].adapter.num_layers
    ids = {m: torch.tensor(prompts[m].input_ids, dtype=torch.long) for m in MODALITIES}
    where = {m: mapped_positions(prompts[m]) for m in MODALITIES}
    D, K, P = len(plan.directions), len(plan.patch_kinds), len(plan.positions)
    patching = "patching" in plan.analyses
    out: dict[str, np.ndarray] = {
        "patch_prob": np.full((D, K, P, L) if patching else (0, K, P, L), np.nan),
        "patch_logprob": np.full((D, K, P, L) if patching else (0, K, P, L), np.nan),
        **{f"{level}_{metric}": np.full(D if patching else 0, np.nan)
           for level in ("low", "high") for metric in ("prob", "logprob")},
    }
    if patching:
        _patching(models, prompts, ids, where, settings, out)
    knock = "knockout" in plan.analyses
    out["knockout_clean"] = np.full(len(MODALITIES) if knock else 0, np.nan)
    out["knockout_prob"] = np.full((len(MODALITIES) if knock else 0, L), np.nan)
    lens = "lens" in plan.analyses
    out["lens_prob"] = np.full((len(MODALITIES) if lens else 0, P, L), np.nan)
    out["lens_rank"] = np.full((len(MODALITIES) if lens else 0, P, L), -1, dtype=np.int64)
    for m, modality in enumerate(MODALITIES):
        prompt, model, adapter = prompts[modality], models[modality].model, models[modality].adapter
        if knock:
            b, e = prompt.subject_range
            out["knockout_clean"][m], out["knockout_prob"][m] = knockout(
                model, adapter, ids[modality], prompt.target_id, range(b, e), window=settings.window)
        if lens:
            result = logit_lens(model, adapter, ids[modality], prompt.target_id,
                                [where[modality][p] for p in plan.positions],
                                text_mode_banned_ids(models[modality].tokenizer))
            out["lens_prob"][m], out["lens_rank"][m] = result.prob, result.rank
    return out


def _patching(models: dict[str, Any], prompts: dict[str, Any], ids: dict[str, Any], where: dict[str, dict[str, int]],
              settings: CarryOverSettings, out: dict[str, np.ndarray]) -> None:
    """Fill out's patch_* and low/high arrays. Each modality's clean and corrupted runs are cached once (the engine's
    fast path) in its arm's model: the corrupted run receives every patch, the clean run donates to the other
    modality. Families without a layer stepper take the hook path (one clean forward per donor state, full forwards
    per patch)."""
    from artifact.tracing.config import TraceConfig
    from artifact.tracing.crossmodal import cross_patch, donor_states, patch_receiver, receiver
    from artifact.tracing.hooks import prepare_context

    plan = settings.plan

    def config(modality: str, kind: str = "hidden") -> TraceConfig:
        return TraceConfig(kind=kind, samples=settings.samples, noise=settings.noise(modality),
                           window=settings.window, seed=settings.seed, batch_size=settings.batch_size)

    tracers = {m: receiver(models[m].model, models[m].adapter, ids[m], tuple(prompts[m].subject_range),
                           prompts[m].target_id, config(m)) for m in MODALITIES}
    for d, direction in enumerate(plan.directions):
        donor, into = DIRECTION_MODALITIES[direction]
        r, tracer = prompts[into], tracers[into]
        model, adapter = models[into].model, models[into].adapter
        if tracer is not None:
            high, low = tracer.cache.high, tracer.cache.low
        else:
            _, high, low = prepare_context(model, adapter, ids[into], tuple(r.subject_range), r.target_id,
                                           config(into))
        out["high_prob"][d], out["high_logprob"][d] = high
        out["low_prob"][d], out["low_logprob"][d] = low
        for k, kind in enumerate(plan.patch_kinds):
            for p, position in enumerate(plan.positions):
                source, target = where[donor][position], where[into][position]
                if tracer is not None and tracers[donor] is not None:
                    states = tracers[donor].cache.clean[kind][:, source]
                    result = patch_receiver(tracer, target, states, config(into, kind))
                else:
                    states = donor_states(models[donor].model, models[donor].adapter, ids[donor], source, kind)
                    result = cross_patch(model, adapter, ids[into], tuple(r.subject_range), r.target_id, target,
                                         states, config(into, kind))
                out["patch_prob"][d, k, p], out["patch_logprob"][d, k, p] = result


def _identity_arrays(fact: Any, prompts: dict[str, Any]) -> dict[str, np.ndarray]:
    """The fact and both prompts' positions beside the numbers, so each file explains itself."""
    arrays: dict[str, np.ndarray] = {"known_id": np.asarray(str(fact.known_id)), "subject": np.asarray(fact.subject),
                                     "attribute": np.asarray(fact.attribute)}
    for modality in MODALITIES:
        prompt = prompts[modality]
        arrays[f"{modality}_input_ids"] = np.asarray(prompt.input_ids, dtype=np.int64)
        arrays[f"{modality}_subject_range"] = np.asarray(prompt.subject_range, dtype=np.int64)
        arrays[f"{modality}_target_id"] = np.int64(prompt.target_id)
        arrays[f"{modality}_positions"] = np.asarray(list(mapped_positions(prompt).values()), dtype=np.int64)
    return arrays


def open_carryover_dir(out: Path, settings: CarryOverSettings) -> Path:
    """carryover/ with its settings.json written, or checked against a rerun's (finished files are reused, so
    results of other settings must never be taken for these)."""
    folder = Path(out) / CARRYOVER_DIR
    path = folder / SETTINGS_FILE
    wanted = settings.to_dict()
    if path.is_file():
        stored = read_json(path)
        if stored != wanted:
            differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise ResultsFolderError(f"{folder} holds carry-over results of other settings ({', '.join(differ)} "
                                     "differ); remove that folder to recompute them, or pass another --out.")
    else:
        (folder / FACTS_DIR).mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, wanted)
    return folder


def run_carryover(models: dict[str, Any], pairs: Sequence[tuple[Any, dict[str, Any]]], settings: CarryOverSettings,
                  out: Path, progress: bool = True) -> tuple[list[str], list[str]]:
    """Compute every fact of `pairs` ((fact, {modality: prompt})) that has no file yet; returns (computed, reused)
    known_ids. A killed run loses at most the fact in progress."""
    from tqdm import tqdm

    check_shared(models["text"], models["speech"])
    open_carryover_dir(out, settings)
    computed, reused = [], []
    todo = []
    for fact, prompts in pairs:
        path = fact_path(out, fact.known_id)
        problem = npz_problem(path) if path.is_file() else "missing"
        if problem not in (None, "missing"):
            log.warning("%s is damaged (%s): computing it again", path, problem)
        (reused if problem is None else todo).append((fact, prompts))
    reused = [str(f.known_id) for f, _ in reused]
    for fact, prompts in tqdm(todo, desc="carry-over", unit="fact", disable=not progress):
        arrays = fact_carryover(models, prompts, settings)
        arrays.update(_identity_arrays(fact, prompts))
        write_npz_atomic(fact_path(out, fact.known_id), arrays)
        computed.append(str(fact.known_id))
    return computed, reused


def load_fact_files(out: Path, known_ids: Sequence[Any]) -> dict[str, np.ndarray]:
    """The listed facts' arrays stacked along a new first axis (fact), in the given order; a missing file is an error
    naming the step that writes it."""
    stacked: dict[str, list[np.ndarray]] = {}
    for known_id in known_ids:
        path = fact_path(out, known_id)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the carry-over step writes one file per fact (rerun the same "
                                    "./run_all.sh command to compute it)")
        problem = npz_problem(path)
        if problem is not None:
            raise DamagedFileError(path, problem, "Delete it and rerun the same ./run_all.sh command: the carry-over "
                                                  "step computes it again.")
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                if not key.endswith(("_input_ids",)):
                    stacked.setdefault(key, []).append(data[key])
    return {key: np.stack(values) for key, values in stacked.items()}


# ------------------------------------------------------------------------------------------------------ aggregate

RESULTS_FILE = "carryover.json"
DIGESTS_FILE = "facts.sha256"  # the fact files the aggregate was computed from, with sha256 (verify checks them)
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


def own_restore_curves(t2t_dir: Path, s2t_dir: Path, known_ids: Sequence[str], kinds: Sequence[str],
                       positions: Sequence[str]) -> dict[tuple[str, str, str], np.ndarray]:
    """The arms' own causal-trace curves [fact, layer] (metric prob) at each mapped token group, in `known_ids` order,
    keyed (modality, kind, position); kinds an arm did not trace, or facts it lacks, are left out."""
    from artifact.analysis.effects import fact_effects
    from artifact.core.names import GROUPS

    out: dict[tuple[str, str, str], np.ndarray] = {}
    for modality, run_dir in (("text", t2t_dir), ("speech", s2t_dir)):
        for kind in kinds:
            if not (Path(run_dir) / "traces" / kind).is_dir():
                continue
            fe = fact_effects(run_dir, kind, "prob", known_ids)
            index = {str(i): n for n, i in enumerate(fe.known_ids)}
            if any(str(i) not in index for i in known_ids):
                continue
            order = [index[str(i)] for i in known_ids]
            for position in positions:
                out[(modality, kind, position)] = fe.effects[order, GROUPS.index(position)]
    return out


def carryover_document(out: Path, known_ids: Sequence[Any], t2t_dir: Path, s2t_dir: Path,
                       subsets: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The statistics of every fact set (all, and each subset that is neither empty nor all of them) from the
    per-fact files and the arms' traces; what carryover.json holds (verify.py recomputes it the same way)."""
    from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES
    from artifact.analysis.carryover import carryover_statistics, sentences

    folder = Path(out) / CARRYOVER_DIR
    settings = json.loads((folder / SETTINGS_FILE).read_text())
    plan = settings["plan"]
    ids = [str(i) for i in known_ids]
    sets = {"all": ids}
    for name, members in (subsets or {}).items():
        chosen = [i for i in ids if i in set(map(str, members))]
        if chosen and chosen != ids:
            sets[name] = chosen
    document: dict[str, Any] = {"settings": settings, "methods": METHODS,
                                "bootstrap": {"confidence": CONFIDENCE, "n_resamples": N_RESAMPLES,
                                              "seed": BOOTSTRAP_SEED},
                                "sets": {}}
    layers = None
    every = load_fact_files(out, ids)  # read once; each set takes its rows
    every_own = own_restore_curves(t2t_dir, s2t_dir, ids, plan["patch_kinds"], plan["positions"]) \
        if "patching" in plan["analyses"] else {}
    layers = int(every["knockout_prob"].shape[-1] if every["knockout_prob"].size else every["patch_prob"].shape[-1])
    row = {i: n for n, i in enumerate(ids)}
    for name, members in sets.items():
        rows = [row[i] for i in members]
        arrays = {key: value[rows] for key, value in every.items()}
        own = {key: value[rows] for key, value in every_own.items()}
        stats = carryover_statistics(arrays, own, plan)
        document["sets"][name] = {"known_ids": members, "statistics": stats, "sentences": sentences(stats, layers)}
    document["layers"] = layers
    document["subsets"] = {name: [str(i) for i in members] for name, members in (subsets or {}).items()}
    return document


def fact_digests(out: Path, known_ids: Sequence[Any]) -> dict[str, str]:
    """sha256 of each listed fact's file, keyed by its path relative to carryover/."""
    from artifact.core.fileio import sha256_file

    return {f"{FACTS_DIR}/{fact_file_id(i)}.npz": sha256_file(fact_path(out, i)) for i in known_ids}


def aggregate_carryover(out: Path, known_ids: Sequence[Any], t2t_dir: Path, s2t_dir: Path,
                        subsets: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """carryover/carryover.json (`carryover_document`) and facts.sha256 (the files it was computed from); returns the
    document."""
    from artifact.core.digests import write_digest_list

    folder = Path(out) / CARRYOVER_DIR
    document = carryover_document(out, known_ids, t2t_dir, s2t_dir, subsets)
    write_json_atomic(folder / RESULTS_FILE, document)
    write_digest_list(folder / DIGESTS_FILE, fact_digests(out, [str(i) for i in known_ids]))
    return document


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
    from artifact.analysis.carryover import _ci

    if not patching:
        return []
    lines = ["| donor -> receiver | state | position | cross-modal peak IE [95% CI] (layer) | receiver's own peak "
             "(layer) | share of own |", "|---|---|---|---|---|---|"]
    for entry in patching.values():
        cross, own = entry["cross_peak"], entry.get("own_peak") or {}
        lines.append(f"| {entry['direction'].replace('_to_', ' -> ')} | {entry['kind']} | {entry['position']} | "
                     f"{_ci(cross)} ({cross.get('layer')}) | {_ci(own) if own else '-'} "
                     f"({own.get('layer') if own else '-'}) | "
                     f"{_ci(entry['share_of_own_peak'], 2) if 'share_of_own_peak' in entry else '-'} |")
    return lines + ["", f"Layers 0-{layers - 1}; for mlp and attn the layer is the centre of the patched window.", ""]


def write_summaries(out: Path, document: dict[str, Any], comparison_summary: Path | None) -> None:
    """carryover/summary.md, and the same section in the comparison's summary.md (replacing an earlier one)."""
    from artifact.core.fileio import write_atomic

    section = summary_section(document)
    write_atomic(Path(out) / CARRYOVER_DIR / "summary.md", lambda h: h.write(section.encode()))
    if comparison_summary is not None and comparison_summary.is_file():
        text = comparison_summary.read_text()
        head = text.split(SUMMARY_SECTION)[0].rstrip("\n")
        merged = head + "\n\n" + section
        write_atomic(comparison_summary, lambda h: h.write(merged.encode()))
