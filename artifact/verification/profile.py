"""Recording an expected profile: a results folder's per-fact effects, Known sets, settings, claims and
tolerances copied into expected/<profile>/ with a manifest of sha256s (portable paths).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from artifact.core.fileio import sha256_file
from artifact.core.jsonable import jsonable
from artifact.core.layout import (
    CLAIMS_FILE,
    EFFECTS_FILE,
    KNOWN_IDS_FILE,
    MANIFEST_FILE,
    SETTINGS_FILE,
    TOLERANCES_FILE,
    comparison_file,
)
from artifact.core.names import ARMS
from artifact.verification.carryover import EXPECTED_DIR as CARRYOVER_EXPECTED
from artifact.verification.beyond import ANALYSES as BEYOND_ANALYSES
from artifact.verification.beyond import record_beyond
from artifact.verification.carryover import record_carryover
from artifact.verification.checks import claims_from_comparison
from artifact.verification.claim_statistics import condition_values
from artifact.verification.identity import identity_of
from artifact.verification.load import load_run_arms, run_settings
from artifact.verification.records import FORMAT_VERSION, ClaimsFn, VerifyError


def _claims_document(results: Path, claims_fn: ClaimsFn) -> dict[str, Any]:
    """claims.json content from a run: claim id -> {"verdict", "statement"} (statements from comparison.json)."""
    verdicts = claims_fn(results)
    statements: dict[str, str] = {}
    path = comparison_file(results)
    if path.is_file():
        section = json.loads(path.read_text()).get("claims", {})
        section = section.get("claims", section) if isinstance(section, dict) else section
        items = section.items() if isinstance(section, dict) else ((d.get("id"), d) for d in section or []
                                                                     if isinstance(d, dict))
        for cid, entry in items:
            if isinstance(entry, dict):
                for key in ("statement", "claim", "text", "description"):
                    if isinstance(entry.get(key), str):
                        statements[str(cid)] = entry[key]
                        break
    document = {"source": str(path), "claims": {c: {"verdict": v, "statement": statements.get(c, "")}
                                                for c, v in verdicts.items()}}
    if path.is_file():  # each condition's statistic and margin, for the other-seed band (claim_statistics.py)
        conditions = condition_values(json.loads(path.read_text()).get("claims") or {})
        if conditions:
            document["conditions"] = conditions
    return document


_REPO_ROOT = str(Path(__file__).resolve().parents[2])


def _checkout_of(results: Path) -> str | None:
    """The checkout a results folder lies in (the nearest ancestor holding artifact/ and expected/), if any: a
    profile may be recorded by another checkout of the code than the one that ran the results."""
    for folder in Path(results).resolve().parents:
        if (folder / "artifact").is_dir() and (folder / "expected").is_dir():
            return str(folder)
    return None


def code_root_of(results: Path) -> str | None:
    """The checkout whose code last ran on a results folder (from its manifest's command, `<root>/artifact/
    __main__.py ...`): its paths (the command, the model files in its .venv) must not be committed either."""
    path = Path(results) / MANIFEST_FILE
    if not path.is_file():
        return None
    command = (json.loads(path.read_text()).get("command") or [None])[0]
    if isinstance(command, str) and command.endswith("artifact/__main__.py"):
        return str(Path(command).parents[1])
    return None


RESULTS_PLACEHOLDER = "<results>"


def results_paths(results: Path, roots: tuple[str, ...]) -> tuple[str, ...]:
    """The absolute paths of a results folder outside every checkout in `roots` (as given, resolved, and as its
    manifest's command names it after --out): a run made elsewhere (e.g. /scratch/runs/smoke-s1) must not put that
    machine path into a committed profile either; `portable` writes RESULTS_PLACEHOLDER for them."""
    found = {str(Path(results).absolute()), str(Path(results).resolve())}
    path = Path(results) / MANIFEST_FILE
    command = (json.loads(path.read_text()).get("command") or []) if path.is_file() else []
    found |= {str(command[i + 1]) for i, arg in enumerate(command[:-1]) if arg == "--out"
              and isinstance(command[i + 1], str) and Path(command[i + 1]).is_absolute()}
    inside = (*roots, _REPO_ROOT)
    return tuple(sorted((p for p in found if not any(p == r or p.startswith(r + "/") for r in inside)),
                        key=len, reverse=True))


def portable(value: Any, roots: tuple[str, ...] = (), elsewhere: tuple[str, ...] = ()) -> Any:
    """`value` with this machine's paths made portable (a results folder outside the checkouts, `elsewhere` ->
    RESULTS_PLACEHOLDER; repo root and `roots` -> '.', home -> '~'): a recorded profile is committed to the
    repository and must not carry the recording machine's paths."""
    if isinstance(value, str):
        for path in elsewhere:
            value = value.replace(path, RESULTS_PLACEHOLDER)
        for root in (*roots, _REPO_ROOT):
            value = value.replace(root, ".")
        home = str(Path.home())
        return value.replace(home, "~") if home not in ("/", "") else value
    if isinstance(value, dict):
        return {portable(k, roots, elsewhere): portable(v, roots, elsewhere) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, roots, elsewhere) for v in value]
    return value


def record_profile(results: Path, profile: Path, tolerances: dict[str, Any] | None,
                   claims_fn: ClaimsFn = claims_from_comparison, claims_only: bool = False,
                   force: bool = False) -> list[str]:
    """Store a results folder as the expected profile `profile`: per arm group_effects.npz, known_ids.json and
    settings.json (unless `claims_only`), claims.json from the run's claims, tolerances.json (when given) and
    manifest.json (source, time, sha256 of every file). Returns notes on what was (not) recorded."""
    results, profile = Path(results), Path(profile)
    if profile.exists() and any(profile.iterdir()) and not force:
        raise VerifyError(f"{profile} already holds a profile; pass --force to overwrite it")
    if not claims_only and tolerances is None:
        raise VerifyError("recording curves needs tolerances: pass --calibrate-from with replicate results "
                          "folders (other noise seeds / batch sizes), or --tolerances FILE, or --claims-only")
    notes: list[str] = []
    arms_info: dict[str, Any] = {}
    roots = tuple(r for r in (_checkout_of(results), code_root_of(results)) if r)
    elsewhere = results_paths(results, roots)
    if profile.exists() and force:  # replace the profile's own files (a README or other files stay)
        for arm in (*ARMS, CARRYOVER_EXPECTED, *(a.folder for a in BEYOND_ANALYSES)):
            shutil.rmtree(profile / arm, ignore_errors=True)
        for name in (CLAIMS_FILE, TOLERANCES_FILE, MANIFEST_FILE):
            (profile / name).unlink(missing_ok=True)
    profile.mkdir(parents=True, exist_ok=True)
    if not claims_only:
        arms = load_run_arms(results)
        for arm, data in arms.items():
            folder = profile / arm
            folder.mkdir(exist_ok=True)
            shutil.copyfile(data.source / "aggregate" / EFFECTS_FILE, folder / EFFECTS_FILE)
            (folder / SETTINGS_FILE).write_text(json.dumps(portable(data.settings, roots, elsewhere), indent=2)
                                                + "\n")
            known_doc = json.loads((data.source / "known.json").read_text())
            (folder / KNOWN_IDS_FILE).write_text(json.dumps(
                {"run": data.source.name, "rule": known_doc.get("rule", ""), "n_facts": known_doc.get("n_facts"),
                 "known": data.known, "margins": data.margins}, indent=2) + "\n")
            arms_info[arm] = {"run": data.source.name, "layers": data.num_layers(),
                              "facts": {k: len(v) for k, v in data.fact_ids.items()}}
            notes.append(f"recorded {arm} curves from {data.source}")
        (profile / TOLERANCES_FILE).write_text(json.dumps(portable(jsonable(tolerances), roots, elsewhere),
                                                          indent=2) + "\n")
        note = record_carryover(results, profile)
        if note:
            notes.append(note)
        notes += record_beyond(results, profile)
        notes.append(f"tolerances: {tolerances.get('verdict', 'given')}")
    try:
        claims_document = portable(jsonable(_claims_document(results, claims_fn)), roots, elsewhere)
        (profile / CLAIMS_FILE).write_text(json.dumps(claims_document, indent=2) + "\n")
        notes.append("recorded claims")
    except VerifyError as error:
        notes.append(f"no claims recorded: {error}")
    settings = run_settings(results)
    if not settings:
        notes.append("no run settings found: a claims-only verify cannot check the model")
    run_manifest = json.loads((results / MANIFEST_FILE).read_text()) if (results / MANIFEST_FILE).is_file() else None
    files = {str(p.relative_to(profile)): sha256_file(p) for p in sorted(profile.rglob("*"))
             if p.is_file() and p.name not in (MANIFEST_FILE, "README.md")}
    if run_manifest is None:
        notes.append(f"no {results / MANIFEST_FILE}: no identity recorded, so verify cannot check the model, facts "
                     "and profile settings")
    identity = identity_of(run_manifest, weights=not claims_only) if run_manifest is not None else None
    manifest = {"format": FORMAT_VERSION, "profile": profile.name, "source": str(results), "identity": identity,
                "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "contents": "claims only" if claims_only else "curves, Known sets, claims, tolerances",
                "arms": arms_info, "settings": settings, "files": files, "run_manifest": run_manifest}
    (profile / MANIFEST_FILE).write_text(json.dumps(portable(jsonable(manifest), roots, elsewhere), indent=2) + "\n")
    return notes
