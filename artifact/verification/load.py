"""Loading what verify compares: an arm's per-fact effects, Known set and settings, from a regenerated results
folder (run_all.sh's layout) or from an expected profile (expected/README.md's layout); errors become VerifyError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artifact.core.layout import (
    EFFECTS_FILE,
    KNOWN_IDS_FILE,
    MANIFEST_FILE,
    SETTINGS_FILE,
    TOLERANCES_FILE,
    ResultsFolderError,
)
from artifact.core.names import ARMS, GROUPS, KINDS
from artifact.core.results import MissingRunFolderError, ResultsFolder
from artifact.verification.records import DEFAULT_METRICS, FORMAT_VERSION, VerifyError


class MissingRunFolder(VerifyError):
    """The results folder holds no run folder of an arm (other errors of the folder are plain VerifyErrors)."""


@dataclass
class ArmData:
    """One arm's per-fact effects and identity, from a results run folder or an expected profile."""

    arm: str
    source: Path
    settings: dict[str, Any] | None
    known: list[str] | None  # ids of the facts the Known filter kept (None: not recorded)
    effects: dict[str, np.ndarray] = field(default_factory=dict)  # "<kind>_<metric>" -> [fact, group, layer]
    fact_ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> [fact] ids (as strings)
    # fact id -> the Known check's margin (answer logit minus the best other one; None: not recorded by the run)
    margins: dict[str, float] | None = None
    # kind -> facts the run planned but had not traced when it aggregated (aggregate/aie.json; None: not recorded)
    untraced: dict[str, list[str]] | None = None
    # "<kind>_<metric>" -> [fact, noise sample, group, layer] (aggregate's "_per_sample" arrays; absent in older runs)
    samples: dict[str, np.ndarray] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        return [k for k in KINDS if k in self.fact_ids]

    def num_layers(self) -> int | None:
        shapes = {a.shape[2] for a in self.effects.values() if a.ndim == 3}
        return shapes.pop() if len(shapes) == 1 else None


def read_json(path: Path) -> Any:
    """A JSON file's content; a VerifyError naming the file when it is missing or unreadable."""
    if not path.is_file():
        raise VerifyError(f"missing file: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise VerifyError(f"unreadable JSON {path}: {error}") from None


def _read_effects(path: Path) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict[str, np.ndarray]]:
    """`<kind>_<metric>` arrays [fact, group, layer], `<kind>_known_ids`, and the `<kind>_<metric>_per_sample`
    arrays [fact, sample, group, layer] (when the run kept them) of a group_effects.npz."""
    if not path.is_file():
        raise VerifyError(f"missing file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as error:  # a truncated or foreign file: say which
        raise VerifyError(f"unreadable {path}: {error}") from None
    if "groups" in arrays and tuple(str(g) for g in arrays["groups"]) != GROUPS:
        raise VerifyError(f"{path}: groups {arrays['groups'].tolist()} differ from {list(GROUPS)}")
    effects, ids = {}, {}
    for kind in KINDS:
        if f"{kind}_known_ids" not in arrays:
            continue
        ids[kind] = [str(i) for i in arrays[f"{kind}_known_ids"].tolist()]
        for name, value in arrays.items():
            if name.startswith(kind + "_") and name != f"{kind}_known_ids" and value.ndim == 3:
                if value.shape[0] != len(ids[kind]) or value.shape[1] != len(GROUPS):
                    raise VerifyError(f"{path}: {name} has shape {value.shape}, expected "
                                      f"[{len(ids[kind])} facts, {len(GROUPS)} groups, layers]")
                effects[name] = np.asarray(value, dtype=np.float64)
    samples = {}
    for name, value in arrays.items():
        base = name[: -len("_per_sample")]
        if name.endswith("_per_sample") and base in effects and value.ndim == 4:
            if value.shape[0] != effects[base].shape[0] or value.shape[2:] != effects[base].shape[1:]:
                raise VerifyError(f"{path}: {name} has shape {value.shape}, expected [{effects[base].shape[0]} "
                                  f"facts, samples, {len(GROUPS)} groups, layers]")
            samples[base] = np.asarray(value, dtype=np.float64)
    return effects, ids, samples


def find_run_dir(results: ResultsFolder | Path, arm: str) -> Path:
    """The arm's run folder by the results folder's one rule (`ResultsFolder.run_dir`); its error as a VerifyError
    (MissingRunFolder when the folder holds no run of the arm)."""
    try:
        return ResultsFolder.of(results).run_dir(arm)
    except MissingRunFolderError as error:
        raise MissingRunFolder(str(error)) from None
    except ResultsFolderError as error:
        raise VerifyError(str(error)) from None


def load_run_arm(results: ResultsFolder | Path, arm: str) -> ArmData:
    """One arm of a results folder: settings.json, known.json and aggregate/group_effects.npz of its run folder."""
    run_dir = find_run_dir(results, arm)
    settings = read_json(run_dir / SETTINGS_FILE)
    if settings.get("arm", arm) != arm:
        raise VerifyError(f"{run_dir / SETTINGS_FILE} says arm {settings.get('arm')!r}, the folder name {arm!r}")
    known_doc = read_json(run_dir / "known.json")
    known = [str(r["known_id"]) for r in known_doc.get("checks", []) if r.get("known")]
    margins = {str(r["known_id"]): float(r["margin"]) for r in known_doc.get("checks", [])
               if isinstance(r.get("margin"), (int, float))}
    effects, ids, samples = _read_effects(run_dir / "aggregate" / EFFECTS_FILE)
    untraced = None
    if (run_dir / "aggregate" / "aie.json").is_file():
        missing = read_json(run_dir / "aggregate" / "aie.json").get("missing") or {}
        untraced = {str(kind): [str(i) for i in ids_] for kind, ids_ in missing.items()}
    return ArmData(arm, run_dir, settings, known, effects, ids, margins or None, untraced, samples)


def load_arm_from_traces(results: ResultsFolder | Path, arm: str, metrics: tuple[str, ...] = DEFAULT_METRICS,
                         kinds: tuple[str, ...] = KINDS) -> ArmData:
    """One arm of a results folder computed from its finished trace files by the aggregate's own code
    (`effects.fact_effects`): for a run that has not aggregated yet (a float64 bound or a seed replicate measured
    while it runs). Each of `kinds` with at least one finished trace (the others' files are not read); per-sample
    effects where the traces keep them."""
    from artifact.analysis.effects import fact_effects  # lazy: only the readers of unaggregated runs need it

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown trace kind(s) {', '.join(map(repr, unknown))}; the kinds are {', '.join(KINDS)}")
    run_dir = find_run_dir(results, arm)
    data = ArmData(arm, run_dir, read_json(run_dir / SETTINGS_FILE), None)
    for kind in (k for k in KINDS if k in kinds):
        for metric in metrics:
            effects = fact_effects(run_dir, kind, metric)
            if not len(effects.known_ids):
                continue
            data.fact_ids[kind] = [str(i) for i in effects.known_ids]
            data.effects[f"{kind}_{metric}"] = effects.effects
            if effects.samples is not None:
                data.samples[f"{kind}_{metric}"] = effects.samples
    return data


def load_expected_arm(profile: Path, arm: str) -> ArmData:
    """One arm of an expected profile: `<profile>/<arm>/{group_effects.npz, known_ids.json, settings.json}`."""
    folder = Path(profile) / arm
    settings = read_json(folder / SETTINGS_FILE)
    known_doc = read_json(folder / KNOWN_IDS_FILE)
    known = [str(i) for i in known_doc["known"]]
    effects, ids, samples = _read_effects(folder / EFFECTS_FILE)
    return ArmData(arm, folder, settings, known, effects, ids, known_doc.get("margins") or None, samples=samples)


def expected_arms(profile: Path) -> list[str]:
    """Arms with curves in an expected profile (a claims-only profile has none)."""
    return [arm for arm in ARMS if (Path(profile) / arm).is_dir()]


def load_tolerances(profile: Path) -> dict[str, Any]:
    return read_json(Path(profile) / TOLERANCES_FILE)


def load_run_arms(results: ResultsFolder | Path) -> dict[str, ArmData]:
    """Every arm with a run folder in a results folder (a VerifyError when none, or when one is ambiguous)."""
    results = ResultsFolder.of(results)
    arms = {}
    for arm in ARMS:
        try:
            arms[arm] = load_run_arm(results, arm)
        except MissingRunFolder:
            continue
    if not arms:
        raise VerifyError(f"no run folders (runs/t2t-*, runs/s2t-*) in {results.path}")
    return arms


def run_settings(results: ResultsFolder | Path) -> dict[str, dict[str, Any]]:
    """{arm: settings.json} of the run folders a results folder holds (arms without one left out; a VerifyError
    when an arm's run folder is ambiguous)."""
    results = ResultsFolder.of(results)
    out = {}
    for arm in ARMS:
        try:
            out[arm] = read_json(find_run_dir(results, arm) / SETTINGS_FILE)
        except MissingRunFolder:
            continue
    return out


def profile_format_problem(profile: Path) -> str | None:
    """Why this version of the artifact cannot read an expected profile (recorded in another format, or with an
    unreadable manifest), or None when it can. A profile without a manifest is left to the checks."""
    path = Path(profile) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        found = manifest.get("format") if isinstance(manifest, dict) else None
    except (OSError, ValueError) as error:
        return f"its {path.name} is unreadable ({error}); restore the profile from the repository"
    if found != FORMAT_VERSION:
        return (f"it was recorded in format {found!r} by another version of the artifact; this version reads format "
                f"{FORMAT_VERSION}. Use the artifact version that recorded it, or record the profile again with "
                "this one (verify.py --record)")
    return None
