"""verify.py's checks of the carry-over analyses (issue 18), like the causal-tracing curves': recompute, don't trust,
then compare with the expected profile fact by fact.

- carryover_files / carryover_fresh: every per-fact file against carryover/facts.sha256, and carryover.json
  recomputed from them (statistics, CIs, sentences) with the artifact's own code.
- carryover_facts: the facts measured are the expected ones (a missing fact would change every curve).
- carryover_cells: per fact and layer, the knockout and logit-lens probabilities (noise-free: a rerun differs only by
  float rounding, whatever the seed) in either tier, and the patching IEs (prob and log-prob; they depend on the
  noise draw) in the same-seed tier, each within the same-seed tolerance.
- carryover_band: in the other-seed tier, each patching curve (mean IE over facts per layer, set 'all') within its
  per-layer band, when the profile was calibrated with carry-over replicates; otherwise said as not possible.

Recorded by `record_carryover`: expected/<profile>/carryover/{carryover.json, facts.npz}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.analysis.carryover_document import carryover_document, load_fact_files
from artifact.core.digests import read_digest_list
from artifact.core.fileio import sha256_file
from artifact.core.layout import CARRYOVER_FACTS_DIR, CARRYOVER_RESULTS_FILE, ResultsFolderError
from artifact.core.results import ResultsFolder
from artifact.verification.records import FAIL, PASS, Check, metric_of
from artifact.verification.recompute import digest_problems, json_differences, stale_detail
from artifact.verification.statistics import band_multiplier, band_scale, band_statistic

EXPECTED_DIR = "carryover"
STACKED_FILE = "facts.npz"  # the per-fact arrays of set 'all', stacked along the first axis
NOISE_FREE = ("knockout_prob", "knockout_clean", "lens_prob")  # no corruption: the seed does not enter
SHOWN = 3


def carryover_results(results: ResultsFolder | Path) -> dict[str, Any] | None:
    """The results folder's carryover.json, or None when it has none (no carry-over step ran)."""
    path = ResultsFolder.of(results).carryover_file
    return json.loads(path.read_text()) if path.is_file() else None


def stacked_arrays(results: ResultsFolder | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """(known_ids, per-fact arrays) of a run's carry-over set 'all', with the patching IEs derived."""
    document = carryover_results(results)
    if document is None:
        raise FileNotFoundError(f"{results} has no carry-over results (carryover/carryover.json)")
    ids = document["sets"]["all"]["known_ids"]
    arrays = load_fact_files(results, ids)
    return ids, with_effects(arrays)


def with_effects(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` plus patch_ie_prob / patch_ie_logprob = patched - corrupted score of the receiving prompt."""
    out = dict(arrays)
    if arrays["patch_prob"].shape[1]:
        out["patch_ie_prob"] = arrays["patch_prob"] - arrays["low_prob"][:, :, None, None, None]
        out["patch_ie_logprob"] = arrays["patch_logprob"] - arrays["low_logprob"][:, :, None, None, None]
    return out


def record_carryover(results: ResultsFolder | Path, profile: Path) -> str | None:
    """Copy a run's carry-over statistics and stacked per-fact arrays into the profile; a note, or None when the
    run has none."""
    document = carryover_results(results)
    folder = Path(profile) / EXPECTED_DIR
    if document is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    ids, arrays = stacked_arrays(results)
    keep = {k: v for k, v in arrays.items() if v.dtype.kind in "fiu" or k == "known_id"}
    np.savez_compressed(folder / STACKED_FILE, **keep)
    (folder / CARRYOVER_RESULTS_FILE).write_text(ResultsFolder.of(results).carryover_file.read_text())
    return f"recorded carry-over results of {len(ids)} facts"


def check_carryover_recomputed(results: ResultsFolder | Path) -> list[Check]:
    """carryover_files and carryover_fresh for a run that has carry-over results (none: no checks)."""
    results = ResultsFolder.of(results)
    document = carryover_results(results)
    if document is None:
        return []
    folder = results.carryover_dir
    ids = document["sets"]["all"]["known_ids"]
    listing = results.carryover_digests
    if not listing.is_file():
        return [Check("carryover_files", FAIL, detail=f"missing {listing}: the carry-over step writes it beside "
                                                      "carryover.json; rerun that step")]
    listed = read_digest_list(listing)
    present = {path.relative_to(folder).as_posix(): sha256_file(path)
               for path in sorted(folder.glob(f"{CARRYOVER_FACTS_DIR}/*.npz"))}
    problems = digest_problems(listed, present)
    if problems:
        return [Check("carryover_files", FAIL, observed=len(present), expected=len(listed),
                      detail=f"carry-over fact files do not match {listing.name}: " + "; ".join(problems))]
    checks = [Check("carryover_files", PASS, observed=len(present), expected=len(listed),
                    detail=f"{len(listed)} carry-over fact files match their sha256 in {listing.name}")]
    try:
        run_dirs, subsets = results.run_dirs(), results.subsets()
    except ResultsFolderError as error:  # the same words as every other reader of the folder
        return checks + [Check("carryover_fresh", FAIL, detail=str(error))]
    try:
        fresh = json.loads(json.dumps(carryover_document(results, ids, run_dirs, subsets)))
    except Exception as error:  # a damaged file: one FAIL line naming it
        return checks + [Check("carryover_fresh", FAIL, detail=f"recomputation failed: {type(error).__name__}: "
                                                               f"{error}")]
    differ = list(json_differences(document, fresh))
    if differ:
        checks.append(Check("carryover_fresh", FAIL, observed=len(differ),
                            detail=stale_detail(results.carryover_file, differ, "fact files", "carry-over")))
    else:
        checks.append(Check("carryover_fresh", PASS, detail="carryover.json (curves, CIs, peaks, sentences) "
                                                            "recomputed from the fact files: identical"))
    return checks


def _expected_arrays(profile: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with np.load(Path(profile) / EXPECTED_DIR / STACKED_FILE, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return [str(i) for i in arrays["known_id"]], arrays


def _cells(name: str, regen: np.ndarray, expected: np.ndarray, tolerance: float, what: str) -> Check:
    """Largest |difference| over every fact and cell of one array, within `tolerance`."""
    if regen.shape != expected.shape:
        return Check("carryover_cells", FAIL, group=name, detail=f"{name}: shape {regen.shape} != expected "
                                                                 f"{expected.shape} (another plan or model)")
    diff = np.abs(regen.astype(np.float64) - expected.astype(np.float64))
    bad = np.isnan(regen) != np.isnan(expected)
    worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
    verdict = PASS if worst <= tolerance and not bad.any() else FAIL
    where = ""
    if verdict == FAIL and np.isfinite(diff).any():
        index = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
        where = f"; largest at {index} (fact axis first)"
    return Check("carryover_cells", verdict, group=name, observed=worst, tolerance=tolerance,
                 detail=f"{name} ({what}): largest |difference| {worst:.3g} of {tolerance:.3g} over {diff.size} "
                        f"cells{where}" + (f"; {int(bad.sum())} cells NaN on one side only" if bad.any() else ""))


def check_carryover(results: Path, profile: Path, same_seed: bool, tolerance: float | dict[str, float] | None,
                    bands: dict[str, Any] | None = None) -> tuple[list[Check], dict[str, str]]:
    """The run's carry-over results against the profile's: (checks, things not possible and why). `tolerance`: the
    same-seed tolerance, one value or per metric ('prob', 'logprob'; log-prob arrays are judged by 'logprob')."""
    skipped: dict[str, str] = {}
    try:
        ids, regen = stacked_arrays(results)
    except FileNotFoundError as error:
        return [Check("carryover_facts", FAIL, detail=f"{error}: the profile records them; rerun the same "
                                                      "./run_all.sh command (it resumes and adds the step)")], skipped
    exp_ids, expected = _expected_arrays(profile)
    if ids != exp_ids:
        lost, new = sorted(set(exp_ids) - set(ids)), sorted(set(ids) - set(exp_ids))
        return [Check("carryover_facts", FAIL, observed=len(ids), expected=len(exp_ids),
                      detail=f"the carry-over facts differ from the profile's (missing {lost[:SHOWN]}, extra "
                             f"{new[:SHOWN]}, or another order): the traced set changed")], skipped
    checks = [Check("carryover_facts", PASS, observed=len(ids), expected=len(exp_ids),
                    detail=f"the same {len(ids)} facts as the profile")]
    if tolerance is None:
        skipped["carry-over cells"] = "the profile has no same-seed tolerance"
        return checks, skipped

    def within(name: str) -> float:  # a metric the profile did not calibrate: its largest tolerance
        if not isinstance(tolerance, dict):
            return tolerance
        return tolerance.get(metric_of(name), max(tolerance.values()))

    for name in NOISE_FREE:
        if name in expected:
            checks.append(_cells(name, regen[name], expected[name], within(name), "noise-free: any seed"))
    patched = [k for k in ("patch_ie_prob", "patch_ie_logprob") if k in expected]
    if same_seed:
        for name in patched:
            checks.append(_cells(name, regen[name], expected[name], within(name), "same noise seed"))
    elif bands:
        checks += [check_band(key, regen["patch_ie_prob"], expected["patch_ie_prob"], band)
                   for key, band in bands.items()]
    elif patched:
        skipped["carry-over patching (other seed)"] = (
            "the profile records no other-seed spread of the patching curves: they were not compared (knockout and "
            "logit lens, which draw no noise, were)")
    return checks, skipped


def curve_of(ie: np.ndarray, key: str, plan: dict[str, Sequence[str]]) -> np.ndarray:
    """The mean patching IE curve [layer] of `key` = 'direction/kind/position' from per-fact IEs [fact, d, k, p, L]."""
    direction, kind, position = key.split("/")
    d, k, p = (plan["directions"].index(direction), plan["patch_kinds"].index(kind),
               plan["positions"].index(position))
    with np.errstate(invalid="ignore"):
        return np.nanmean(ie[:, d, k, p], axis=0)


def check_band(key: str, regen_ie: np.ndarray, expected_ie: np.ndarray, band: dict[str, Any]) -> Check:
    """|regenerated - expected mean curve| <= multiplier x per-layer scale, every layer."""
    plan = band["plan"]
    diff = curve_of(regen_ie, key, plan) - curve_of(expected_ie, key, plan)
    statistic, layer = band_statistic(diff, np.asarray(band["scale"], dtype=np.float64))
    if band.get("multiplier") is None:
        return Check("carryover_band", FAIL, group=key, detail=f"patching {key}: the profile's band has no "
                                                                "multiplier (calibrated from a single run?)")
    ok = statistic <= band["multiplier"]
    return Check("carryover_band", PASS if ok else FAIL, group=key, observed=statistic,
                 tolerance=band["multiplier"],
                 detail=f"patching {key}: largest |curve difference| / spread {statistic:.3g} (layer {layer}) of "
                        f"{band['multiplier']:.3g}")


def calibrate_bands(reference: Path, replicates: Sequence[Path]) -> dict[str, Any] | None:
    """Per patching curve (set 'all', metric prob): the per-layer spread of the reference and replicates (every
    pair, `statistics.band_scale`) and the Student t multiplier for one more run; None when any run lacks
    carry-over results."""
    runs = []
    for folder in (reference, *replicates):
        document = carryover_results(folder)
        if document is None:
            return None
        runs.append((document["settings"]["plan"], stacked_arrays(folder)[1]))
    plan = runs[0][0]
    if "patching" not in plan["analyses"] or len(runs) < 2:
        return None
    out = {}
    for direction in plan["directions"]:
        for kind in plan["patch_kinds"]:
            for position in plan["positions"]:
                key = f"{direction}/{kind}/{position}"
                curves = [curve_of(arrays["patch_ie_prob"], key, plan) for _, arrays in runs]
                pairs = [curves[i] - curves[j] for i in range(len(curves)) for j in range(i + 1, len(curves))]
                scale = band_scale(pairs)
                multiplier = band_multiplier(len(runs), len(curves[0]))
                out[key] = {"scale": [float(x) for x in scale], "multiplier": multiplier, "runs": len(runs),
                            "observed": [band_statistic(c - curves[0], scale)[0] for c in curves[1:]],
                            "plan": plan,
                            "how_chosen": "as the trace curves' bands (tolerances.json 'band'): per layer "
                                          "|mean IE curve difference| <= multiplier x scale[layer], scale from every "
                                          f"pair of the {len(runs)} runs (reference and replicates), multiplier the "
                                          f"Student t prediction bound with {len(runs) - 1} degrees of freedom"}
    return out


def carryover_verdicts(results: Path, profile: Path, same_seed: bool, tolerance: float | dict[str, float] | None,
                       tolerances: dict[str, Any] | None, recompute: bool = True
                       ) -> tuple[list[Check], dict[str, str]]:
    """What verify() adds for carry-over: recomputation when the run has it (unless `recompute` is off), comparison
    when the profile has it."""
    checks = check_carryover_recomputed(results) if recompute else []
    skipped: dict[str, str] = {}
    if (Path(profile) / EXPECTED_DIR / STACKED_FILE).is_file():
        more, skipped = check_carryover(results, profile, same_seed, tolerance,
                                        (tolerances or {}).get("carryover_bands"))
        checks += more
    elif carryover_results(results) is not None:
        skipped["carry-over"] = ("the expected profile records no carry-over results: only their recomputation "
                                 "was checked")
    return checks, skipped


def rerun_differences(rerun: Path, reference: Path) -> dict[str, float]:
    """Largest |rerun - reference| of each carry-over array compared in the same-seed tier (both runs need
    carry-over results; else nothing): they count towards the same-seed tolerance like the trace cells."""
    if carryover_results(rerun) is None or carryover_results(reference) is None:
        return {}
    _, a = stacked_arrays(rerun)
    _, b = stacked_arrays(reference)
    out = {}
    for name in (*NOISE_FREE, "patch_ie_prob", "patch_ie_logprob"):
        if name in a and name in b and a[name].shape == b[name].shape and a[name].size:
            diff = np.abs(a[name] - b[name])
            out[f"carryover/{name}"] = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
    return out
