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
    SELECTION_FILE,
    SETTINGS_FILE,
    TOLERANCES_FILE,
)
from artifact.core.names import ARMS, GROUPS, KINDS
from artifact.verification.records import MATCHED_SETTINGS, VerifyError


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

    def kinds(self) -> list[str]:
        return [k for k in KINDS if k in self.fact_ids]

    def num_layers(self) -> int | None:
        shapes = {a.shape[2] for a in self.effects.values() if a.ndim == 3}
        return shapes.pop() if len(shapes) == 1 else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise VerifyError(f"missing file: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise VerifyError(f"unreadable JSON {path}: {error}") from None


def _read_effects(path: Path) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """`<kind>_<metric>` arrays [fact, group, layer] and `<kind>_known_ids` of a group_effects.npz."""
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
    return effects, ids


def find_run_dir(results: Path, arm: str, settings_hint: dict[str, Any] | None = None) -> Path:
    """The run folder of `arm` in a results folder: the one selection.json names, else the only `runs/<arm>-*` (or
    `<arm>-*`) folder, else the one whose settings match `settings_hint` on MATCHED_SETTINGS; a VerifyError naming
    the candidates otherwise."""
    results = Path(results)
    selection = results / SELECTION_FILE
    if selection.is_file():  # the pipeline names the run folder it used for each arm
        try:
            name = json.loads(selection.read_text()).get(f"{arm}_run")
        except (OSError, ValueError, AttributeError):
            name = None
        if name:
            for root in (results / "runs", results):
                if (root / name).is_dir():
                    return root / name
            raise VerifyError(f"missing run folder: {results / 'runs' / name} (named by {selection})")
    roots = [results / "runs", results]
    candidates = sorted({p for root in roots if root.is_dir() for p in root.glob(f"{arm}-*") if p.is_dir()})
    if not candidates:
        raise VerifyError(f"missing run folder: no {results / 'runs' / (arm + '-*')}")
    if len(candidates) > 1 and settings_hint:
        def matches(p: Path) -> bool:
            try:
                s = json.loads((p / SETTINGS_FILE).read_text())
            except (OSError, ValueError):
                return False
            return all(s.get(k) == settings_hint.get(k) for k in MATCHED_SETTINGS if k in settings_hint)
        matching = [p for p in candidates if matches(p)]
        candidates = matching or candidates
    if len(candidates) > 1:
        raise VerifyError(f"several {arm} run folders in {results}: {', '.join(p.name for p in candidates)}; "
                          "keep one per arm (or pass a results folder holding one per arm)")
    return candidates[0]


def load_run_arm(results: Path, arm: str, settings_hint: dict[str, Any] | None = None) -> ArmData:
    """One arm of a results folder: settings.json, known.json and aggregate/group_effects.npz of its run folder."""
    run_dir = find_run_dir(results, arm, settings_hint)
    settings = _read_json(run_dir / SETTINGS_FILE)
    if settings.get("arm", arm) != arm:
        raise VerifyError(f"{run_dir / SETTINGS_FILE} says arm {settings.get('arm')!r}, the folder name {arm!r}")
    known_doc = _read_json(run_dir / "known.json")
    known = [str(r["known_id"]) for r in known_doc.get("checks", []) if r.get("known")]
    margins = {str(r["known_id"]): float(r["margin"]) for r in known_doc.get("checks", [])
               if isinstance(r.get("margin"), (int, float))}
    effects, ids = _read_effects(run_dir / "aggregate" / EFFECTS_FILE)
    untraced = None
    if (run_dir / "aggregate" / "aie.json").is_file():
        missing = _read_json(run_dir / "aggregate" / "aie.json").get("missing") or {}
        untraced = {str(kind): [str(i) for i in ids_] for kind, ids_ in missing.items()}
    return ArmData(arm, run_dir, settings, known, effects, ids, margins or None, untraced)


def load_expected_arm(profile: Path, arm: str) -> ArmData:
    """One arm of an expected profile: `<profile>/<arm>/{group_effects.npz, known_ids.json, settings.json}`."""
    folder = Path(profile) / arm
    settings = _read_json(folder / SETTINGS_FILE)
    known_doc = _read_json(folder / KNOWN_IDS_FILE)
    known = [str(i) for i in known_doc["known"]]
    effects, ids = _read_effects(folder / EFFECTS_FILE)
    return ArmData(arm, folder, settings, known, effects, ids, known_doc.get("margins") or None)


def expected_arms(profile: Path) -> list[str]:
    """Arms with curves in an expected profile (a claims-only profile has none)."""
    return [arm for arm in ARMS if (Path(profile) / arm).is_dir()]


def load_tolerances(profile: Path) -> dict[str, Any]:
    return _read_json(Path(profile) / TOLERANCES_FILE)


def _run_settings(results: Path, hints: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """{arm: settings.json} of the run folders a results folder holds (arms without one left out)."""
    out = {}
    for arm in ARMS:
        try:
            out[arm] = _read_json(find_run_dir(results, arm, (hints or {}).get(arm)) / SETTINGS_FILE)
        except VerifyError:
            continue
    return out


def profile_format_problem(profile: Path) -> str | None:
    """Why this version of the artifact cannot read an expected profile (recorded in another format, or with an
    unreadable manifest), or None when it can. A profile without a manifest is left to the checks."""
    from artifact.core.layout import MANIFEST_FILE
    from artifact.verification.records import FORMAT_VERSION

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
