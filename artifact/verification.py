"""Statistical comparison of regenerated results with a stored expected profile (what `verify.py` runs).

Every check is a pure function returning `Check` records {check, arm, kind, metric, group, observed, expected,
tolerance, verdict, detail}; `verify()` runs them all and never raises on bad input: a missing file, a NaN or a
layer-count mismatch becomes a FAIL record naming it.

Layouts (see expected/README.md):

    results/<profile>/runs/<arm>-<model>-<key>/{settings.json, known.json, aggregate/group_effects.npz}
    results/<profile>/selection.json                       which run folder of each arm (when several)
    results/<profile>/comparison/comparison.json          claims section (regenerated claim verdicts)
    expected/<profile>/<arm>/{group_effects.npz, known_ids.json, settings.json}
    expected/<profile>/{claims.json, tolerances.json, manifest.json}

Checks, per arm (t2t, s2t), kind (hidden, mlp, attn) and metric (default prob):

- paired_equivalence (per group last_subject, last): facts paired by known_id; per layer the percentile bootstrap CI
  (scipy.stats.bootstrap, fixed seed) of the mean over facts of (regenerated - expected) IE at level 1 - 0.05/L
  (Bonferroni over the L layers, so the L intervals hold jointly with >= 95%); every interval must lie in
  [-delta, +delta]. Observed = max over layers of the larger |CI end|. Catches scaled or shifted curves.
- fact_correlation: per fact, Pearson r between its regenerated and expected [group, layer] IE map, each side
  centred on its mean map over the paired facts (NaN cells dropped); the fraction of facts with r >= bound must be
  >= fact_fraction. Catches results attached to wrong facts.
- curve_correlation / peak_layer (per group): Pearson r of the two AIE curves (mean over paired facts) >= bound;
  argmax layers within +/- k. Catches moved peaks and changed shapes.
- known_set (per arm): Jaccard index of the regenerated and expected Known sets >= bound; differences listed.
- claims: each regenerated claim verdict equals the expected one (claims unstable across calibration seeds: INFO).
- settings / files / nan / empty_groups / layers: the comparison is meaningful (same model, facts, noise rule,
  samples...; every file present; no NaN where a value belongs; the same token groups empty; same layer count).

A profile holding only claims.json (SpiritLM, whose curves need the gated weights and a GPU) gets the claims and the
run settings checked; the report lists every check that was not possible and why.

Tolerances come from `calibrate_tolerances` (replicate runs with other noise seeds and batch sizes against the
reference run), each stored with how it was chosen.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from artifact.core.fileio import sha256_file

# ROME's six token groups in the order of groups.GROUPS (the order of the [fact, group, layer] arrays). Repeated here
# so that verify.py imports neither torch nor the experiment package (tests check the two agree).
GROUPS: tuple[str, ...] = ("first_subject", "middle_subject", "last_subject", "first_subsequent", "further", "last")

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "SKIP", "INFO"
ARMS: tuple[str, ...] = ("t2t", "s2t")
KINDS: tuple[str, ...] = ("hidden", "mlp", "attn")
DEFAULT_METRICS: tuple[str, ...] = ("prob",)
CHECK_GROUPS: tuple[str, ...] = ("last_subject", "last")
ALWAYS_PRESENT_GROUPS: tuple[str, ...] = ("first_subject", "last_subject", "last")  # never empty for a fact
FORMAT_VERSION = 1

EFFECTS_FILE = "group_effects.npz"
KNOWN_IDS_FILE = "known_ids.json"
SETTINGS_FILE = "settings.json"
CLAIMS_FILE = "claims.json"
TOLERANCES_FILE = "tolerances.json"
MANIFEST_FILE = "manifest.json"
COMPARISON_FILE = Path("comparison") / "comparison.json"
SELECTION_FILE = "selection.json"  # written by the pipeline: {"t2t_run": folder name, "s2t_run": ...}

# Settings that must agree for the comparison to mean anything; the rest (seed, batch_size, device) may differ.
MATCHED_SETTINGS: tuple[str, ...] = ("arm", "model", "dtype", "facts_fingerprint", "noise_spec", "samples", "window",
                                     "positions")
NOISE_RTOL = 1e-4

# Calibration defaults (documented in expected/README.md).
SAFETY = 1.5  # multiplicative margin on every measured spread
ALPHA = 0.05  # family-wise error of the per-layer band
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
SIMULATED_RERUNS = 1000  # resampled run-to-run differences per replicate for the curve-shape tolerances
NULL_PERMUTATIONS = 20  # derangements of facts used to measure the "wrong facts" correlation distribution

ClaimsFn = Callable[[Path], dict[str, Any]]


class VerifyError(Exception):
    """Input that makes a check impossible (missing file, bad format); turned into a FAIL record, never a traceback."""


@dataclass
class Check:
    """One line of the report."""

    check: str
    verdict: str
    arm: str | None = None
    kind: str | None = None
    metric: str | None = None
    group: str | None = None
    observed: Any = None
    expected: Any = None
    tolerance: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


# ---------------------------------------------------------------------------------------------------- loading


@dataclass
class ArmData:
    """One arm's per-fact effects and identity, from a results run folder or an expected profile."""

    arm: str
    source: Path
    settings: dict[str, Any] | None
    known: list[str] | None  # ids of the facts the Known filter kept (None: not recorded)
    effects: dict[str, np.ndarray] = field(default_factory=dict)  # "<kind>_<metric>" -> [fact, group, layer]
    fact_ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> [fact] ids (as strings)

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
    effects, ids = _read_effects(run_dir / "aggregate" / EFFECTS_FILE)
    return ArmData(arm, run_dir, settings, known, effects, ids)


def load_expected_arm(profile: Path, arm: str) -> ArmData:
    """One arm of an expected profile: `<profile>/<arm>/{group_effects.npz, known_ids.json, settings.json}`."""
    folder = Path(profile) / arm
    settings = _read_json(folder / SETTINGS_FILE)
    known = [str(i) for i in _read_json(folder / KNOWN_IDS_FILE)["known"]]
    effects, ids = _read_effects(folder / EFFECTS_FILE)
    return ArmData(arm, folder, settings, known, effects, ids)


def expected_arms(profile: Path) -> list[str]:
    """Arms with curves in an expected profile (a claims-only profile has none)."""
    return [arm for arm in ARMS if (Path(profile) / arm).is_dir()]


# ------------------------------------------------------------------------------------------------- statistics


def pair(regen: ArmData, expected: ArmData, kind: str, metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Facts present on both sides (expected order) and their [fact, group, layer] arrays (regenerated, expected)."""
    name = f"{kind}_{metric}"
    r_index = {i: n for n, i in enumerate(regen.fact_ids[kind])}
    ids = [i for i in expected.fact_ids[kind] if i in r_index]
    e_index = {i: n for n, i in enumerate(expected.fact_ids[kind])}
    r = regen.effects[name][[r_index[i] for i in ids]]
    e = expected.effects[name][[e_index[i] for i in ids]]
    return ids, r, e


def bonferroni_band(diff: np.ndarray, alpha: float = ALPHA, n_resamples: int = N_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over facts of `diff` [fact, layer] and its percentile bootstrap CI per layer at level 1 - alpha/L
    (Bonferroni: all L intervals cover jointly with probability >= 1 - alpha). NaN facts of a layer are dropped;
    a layer with < 2 facts gets a NaN interval; a constant layer gets that constant. Returns (mean, low, high) [layer].
    """
    from scipy import stats

    diff = np.asarray(diff, dtype=np.float64)
    L = diff.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(diff, axis=0) if diff.shape[0] else np.full(L, np.nan)
    low, high = np.full(L, np.nan), np.full(L, np.nan)
    level = 1 - alpha / max(L, 1)
    by_mask: dict[bytes, list[int]] = {}
    for c in range(L):
        finite = np.isfinite(diff[:, c])
        if finite.sum() < 2:
            continue
        values = diff[finite, c]
        if np.all(values == values[0]):
            low[c] = high[c] = values[0]
            continue
        by_mask.setdefault(finite.tobytes(), []).append(c)
    for key, cols in by_mask.items():
        finite = np.frombuffer(key, dtype=bool)
        sample = diff[finite][:, cols]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((sample,), np.mean, axis=0, vectorized=True, n_resamples=n_resamples,
                                  confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
                                  batch=max(1, int(2e7 // max(1, sample.size))))  # ~160 MB per batch
        low[cols] = np.atleast_1d(res.confidence_interval.low)
        high[cols] = np.atleast_1d(res.confidence_interval.high)
    return mean, low, high


def band_statistic(low: np.ndarray, high: np.ndarray) -> float:
    """max over layers of max(|low|, |high|): the smallest delta with every interval inside [-delta, delta]."""
    if not len(low) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return math.nan
    return float(np.max(np.maximum(np.abs(low), np.abs(high))))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over cells finite in both (NaN when fewer than 3 or either side is constant)."""
    x, y = np.ravel(np.asarray(x, dtype=np.float64)), np.ravel(np.asarray(y, dtype=np.float64))
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3:
        return math.nan
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denom if denom > 0 else math.nan


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[row] Pearson r of each row of x [row, cell] with the same row of y (broadcast), over cells finite in both;
    NaN for rows with fewer than 3 such cells or a constant side. Same numbers as `pearson`, vectorised."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    keep = np.isfinite(x) & np.isfinite(y)
    n = keep.sum(axis=1)
    x0, y0 = np.where(keep, x, 0.0), np.where(keep, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(keep, x0 - (x0.sum(axis=1) / n)[:, None], 0.0)
        yc = np.where(keep, y0 - (y0.sum(axis=1) / n)[:, None], 0.0)
        denom = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
        r = (xc * yc).sum(axis=1) / denom
    r[(n < 3) | ~(denom > 0)] = np.nan
    return r


def fact_correlations(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """[fact] Pearson r between each fact's regenerated and expected [group, layer] maps (NaN cells dropped)."""
    return pearson_rows(r.reshape(r.shape[0], -1), e.reshape(e.shape[0], -1))


def centred(maps: np.ndarray) -> np.ndarray:
    """[fact, group, layer] maps minus their mean over facts (NaN-mean per cell): each fact's own part."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return maps - np.nanmean(maps, axis=0, keepdims=True)


def fact_map_correlations(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """[fact] Pearson r between each paired fact's regenerated and expected map, each side centred on its own mean
    map over the paired facts. Centring removes the structure all facts share (on the embedded model's 40 T->T facts,
    raw maps of *different* facts correlate at median r 0.4-0.8 by kind; centred, at about 0), so the statistic
    tells a fact's own map from another fact's."""
    return fact_correlations(centred(r), centred(e))


def aie_curve(effects: np.ndarray, group: str) -> np.ndarray:
    """[layer] AIE of one group: NaN-mean over facts of [fact, group, layer]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(effects[:, GROUPS.index(group), :], axis=0)


def peak_layer(curve: np.ndarray) -> int | None:
    return int(np.nanargmax(curve)) if np.any(np.isfinite(curve)) else None


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def bad_cells(regen: np.ndarray) -> list[tuple[int, int, int]]:
    """(fact, group, layer) cells of a regenerated [fact, group, layer] array that should be finite but are not:
    any non-finite cell of an always-present group or of a partly finite (fact, group) row. (A whole NaN row of a
    group that can be empty, e.g. the middle of a one-token subject, is legitimate.)"""
    bad = ~np.isfinite(regen)
    if not bad.any():
        return []
    row_partial = bad.any(axis=2, keepdims=True) & ~bad.all(axis=2, keepdims=True)
    always = np.zeros_like(bad)
    for g in ALWAYS_PRESENT_GROUPS:
        always[:, GROUPS.index(g), :] = True
    return [tuple(int(v) for v in cell) for cell in np.argwhere(bad & (row_partial | always))]


def empty_group_mismatches(regen: np.ndarray, expected: np.ndarray) -> list[tuple[int, int]]:
    """(fact, group) pairs of paired [fact, group, layer] arrays where one side's group is empty (all NaN) and the
    other's is not. Token groups follow from tokenisation alone, so they never differ between reruns."""
    r_empty = ~np.isfinite(regen).any(axis=2)
    e_empty = ~np.isfinite(expected).any(axis=2)
    return [tuple(int(v) for v in cell) for cell in np.argwhere(r_empty != e_empty)]


# ------------------------------------------------------------------------------------------------------ checks


def _tol(tolerances: dict[str, Any], arm: str, kind: str, metric: str, name: str, group: str | None = None) -> Any:
    """A tolerance value from tolerances.json; VerifyError naming the missing entry."""
    key = f"{arm}/{kind}/{metric}" + (f"/{group}" if group else "")
    try:
        value = tolerances["entries"][key][name]["value"]
    except (KeyError, TypeError):
        raise VerifyError(f"tolerances.json has no {name} for {key}: recalibrate the profile") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise VerifyError(f"tolerances.json: {name} for {key} is {value!r}, not a number (the calibration could not "
                          "measure it; see its how_chosen): recalibrate with more facts or replicates")
    return value


def compare_arm_kind(regen: ArmData, expected: ArmData, kind: str, metric: str, tolerances: dict[str, Any],
                     groups: Sequence[str] = CHECK_GROUPS) -> list[Check]:
    """Every statistical check of one arm, kind and metric (paired equivalence, per-fact maps, curve shape)."""
    arm, out = regen.arm, []
    base = {"arm": arm, "kind": kind, "metric": metric}
    name = f"{kind}_{metric}"
    for side, data in (("regenerated", regen), ("expected", expected)):
        if name not in data.effects:
            return [Check("data", FAIL, **base, detail=f"{side} {data.source} has no {name} array")]
    L_r, L_e = regen.effects[name].shape[2], expected.effects[name].shape[2]
    if L_r != L_e:
        return [Check("layers", FAIL, **base, observed=L_r, expected=L_e,
                      detail=f"regenerated results have {L_r} layers, expected {L_e}: the two come from different "
                             f"models (regenerated model {(regen.settings or {}).get('model')!r}, expected "
                             f"{(expected.settings or {}).get('model')!r}); curves cannot be compared")]
    ids, r, e = pair(regen, expected, kind, metric)
    only_r = sorted(set(regen.fact_ids[kind]) - set(ids))
    only_e = sorted(set(expected.fact_ids[kind]) - set(ids))
    pairing = f"{len(ids)} paired facts" + (f"; {len(only_r)} only regenerated" if only_r else "") + \
              (f"; {len(only_e)} only expected" if only_e else "")
    out.append(check_traced(regen, expected, kind, tolerances, base))
    bad = bad_cells(r) if ids else bad_cells(regen.effects[name])
    if bad:
        f, g, layer = bad[0]
        fact = ids[f] if ids else regen.fact_ids[kind][f]
        return out + [Check("nan", FAIL, **base, observed=len(bad), expected=0,
                      detail=f"NaN in regenerated {name} of {regen.source}: {len(bad)} cell(s), first at fact "
                             f"{fact}, group {GROUPS[g]}, layer {layer}")]
    out.append(Check("nan", PASS, **base, observed=0, expected=0, detail=f"no NaN where values belong; {pairing}"))
    mismatched = empty_group_mismatches(r, e) if ids else []
    out.append(Check("empty_groups", FAIL if mismatched else PASS, **base, observed=len(mismatched), expected=0,
                     detail=(f"{len(mismatched)} (fact, group) pairs empty on one side only, first fact "
                             f"{ids[mismatched[0][0]]} group {GROUPS[mismatched[0][1]]}: token groups differ (another "
                             "tokenisation, or results attached to the wrong facts)") if mismatched
                     else "the same token groups are empty (one-token subjects etc.) on both sides"))
    if len(ids) < 2:
        out.append(Check("paired_facts", FAIL, **base, observed=len(ids), expected=">= 2",
                         detail=f"too few facts on both sides to compare ({pairing})"))
        return out
    boot = tolerances.get("bootstrap", {})
    for group in groups:
        g = GROUPS.index(group)
        delta = _tol(tolerances, arm, kind, metric, "delta", group)
        mean, low, high = bonferroni_band(r[:, g, :] - e[:, g, :], boot.get("alpha", ALPHA),
                                          boot.get("n_resamples", N_RESAMPLES), boot.get("seed", BOOTSTRAP_SEED))
        stat = band_statistic(low, high)
        worst = int(np.nanargmax(np.maximum(np.abs(low), np.abs(high)))) if np.isfinite(stat) else None
        ok = math.isfinite(stat) and stat <= delta
        out.append(Check("paired_equivalence", PASS if ok else FAIL, **base, group=group, observed=stat,
                         expected=0.0, tolerance=delta,
                         detail=f"max |CI end| of mean(regenerated - expected) over {L_r} layers (Bonferroni "
                                f"{1 - boot.get('alpha', ALPHA) / L_r:.4f} percentile bootstrap), worst layer "
                                f"{worst} (mean diff {mean[worst] if worst is not None else math.nan:+.4g}); "
                                f"{pairing}"))
        rc, ec = aie_curve(r, group), aie_curve(e, group)
        corr = pearson(rc, ec)
        bound = _tol(tolerances, arm, kind, metric, "curve_correlation", group)
        ok = math.isfinite(corr) and corr >= bound
        out.append(Check("curve_correlation", PASS if ok else FAIL, **base, group=group, observed=corr,
                         expected=1.0, tolerance=bound, detail="Pearson r of the AIE curves over layers (paired facts)"
                                                               + ("" if math.isfinite(corr) else "; undefined")))
        pr, pe = peak_layer(rc), peak_layer(ec)
        k = _tol(tolerances, arm, kind, metric, "peak_shift", group)
        ok = pr is not None and pe is not None and abs(pr - pe) <= k
        out.append(Check("peak_layer", PASS if ok else FAIL, **base, group=group, observed=pr, expected=pe,
                         tolerance=k, detail=f"argmax layer of the AIE curve; allowed shift +/- {k}"))
    rs = fact_map_correlations(r, e)
    bound = _tol(tolerances, arm, kind, metric, "fact_correlation")
    q = _tol(tolerances, arm, kind, metric, "fact_fraction")
    frac = float(np.mean(np.nan_to_num(rs, nan=-np.inf) >= bound))
    worst = [ids[i] for i in np.argsort(np.nan_to_num(rs, nan=-2))[:3]]
    out.append(Check("fact_correlation", PASS if frac >= q else FAIL, **base, observed=frac, expected=1.0,
                     tolerance=q, detail=f"fraction of {len(ids)} facts whose centred [group, layer] map correlates "
                                         f"with its expected one at r >= {bound:.3f} (median r {np.nanmedian(rs):.3f}; "
                                         f"lowest: {', '.join(worst)})"))
    return out


def known_bound(tolerances: dict[str, Any] | None, arm: str) -> float | None:
    """The calibrated Jaccard bound of an arm's Known set, or None when not calibrated."""
    try:
        value = (tolerances or {})["entries"][f"{arm}/known_set"]["jaccard"]["value"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def check_traced(regen: ArmData, expected: ArmData, kind: str, tolerances: dict[str, Any] | None,
                 labels: dict[str, Any]) -> Check:
    """The traced facts of a kind agree as the Known sets must (an incomplete or truncated run fails here)."""
    r, e = set(regen.fact_ids[kind]), set(expected.fact_ids[kind])
    j = jaccard(r, e)
    bound = known_bound(tolerances, regen.arm)
    bound = 1.0 if bound is None else bound
    return Check("traced_set", PASS if j >= bound else FAIL, **labels, observed=j, expected=1.0, tolerance=bound,
                 detail=f"Jaccard of the traced facts: {len(r)} regenerated, {len(e)} expected, {len(r & e)} both; "
                        f"missing {sorted(e - r)[:10]}, extra {sorted(r - e)[:10]} (bound: the Known-set one)")


def check_known(regen: ArmData, expected: ArmData, tolerances: dict[str, Any] | None) -> Check:
    """The Known sets agree within the Jaccard bound; every difference is listed (not a crash)."""
    if regen.known is None or expected.known is None:
        return Check("known_set", SKIP, arm=regen.arm, detail="Known set not recorded on one side")
    j = jaccard(regen.known, expected.known)
    extra, lost = sorted(set(regen.known) - set(expected.known)), sorted(set(expected.known) - set(regen.known))
    bound = known_bound(tolerances, regen.arm)
    detail = (f"{len(regen.known)} regenerated vs {len(expected.known)} expected known facts; "
              f"{len(extra)} only regenerated {extra[:10]}, {len(lost)} only expected {lost[:10]}")
    if bound is None:
        return Check("known_set", PASS if j == 1.0 else FAIL, arm=regen.arm, observed=j, expected=1.0, tolerance=1.0,
                     detail=detail + " (no calibrated bound: exact agreement required)")
    return Check("known_set", PASS if j >= bound else FAIL, arm=regen.arm, observed=j, expected=1.0, tolerance=bound,
                 detail=detail)


def check_settings(regen: ArmData, expected: ArmData) -> Check:
    """The runs compared used the same model, facts, noise rule, samples, window and positions."""
    r, e = regen.settings or {}, expected.settings or {}
    diff = {k: (r.get(k), e.get(k)) for k in MATCHED_SETTINGS if k in e and r.get(k) != e.get(k)}
    notes = []
    if isinstance(r.get("noise"), (int, float)) and isinstance(e.get("noise"), (int, float)) and not diff:
        if not math.isclose(r["noise"], e["noise"], rel_tol=NOISE_RTOL):
            diff["noise"] = (r["noise"], e["noise"])
    for k in ("seed", "batch_size", "device"):
        if r.get(k) != e.get(k):
            notes.append(f"{k} {r.get(k)!r} (expected run {e.get(k)!r}; allowed to differ)")
    if diff:
        hint = " (are these results of another model than the profile's?)" if "model" in diff else ""
        return Check("settings", FAIL, arm=regen.arm, observed={k: v[0] for k, v in diff.items()},
                     expected={k: v[1] for k, v in diff.items()},
                     detail=f"settings differ from the expected run's: {diff}{hint}")
    return Check("settings", PASS, arm=regen.arm, detail="; ".join(notes) or "same settings")


def check_claims(regenerated: dict[str, Any] | None, expected: dict[str, Any],
                 unstable: Iterable[str] = ()) -> list[Check]:
    """Each expected claim verdict against the regenerated one. `expected`: claim id -> {"verdict", "statement"}
    (or a bare verdict); claims listed in `unstable` (verdict flipped between calibration runs) are INFO only."""
    unstable = set(unstable)
    out = []
    for cid, entry in expected.items():
        want = entry.get("verdict") if isinstance(entry, dict) else entry
        statement = entry.get("statement", "") if isinstance(entry, dict) else ""
        if regenerated is None:
            out.append(Check("claim", FAIL, group=cid, expected=want, detail="no regenerated claims (see above)"))
            continue
        if cid not in regenerated:
            out.append(Check("claim", FAIL, group=cid, expected=want,
                             detail=f"claim {cid!r} missing from the regenerated claims: {statement}"))
            continue
        got = regenerated[cid]
        verdict = PASS if got == want else (INFO if cid in unstable else FAIL)
        note = " (verdict unstable across calibration seeds: reported, not judged)" if verdict == INFO else ""
        out.append(Check("claim", verdict, group=cid, observed=got, expected=want, tolerance="equal",
                         detail=statement + note))
    return out


def claim_verdicts(doc: Any) -> dict[str, Any]:
    """Claim id -> verdict from a claims section: {id: verdict}, {id: {"verdict"|"holds"|"pass": v}} or a list of
    {"id": ..., "verdict"|"holds"|"pass": ...}."""
    if isinstance(doc, dict) and "claims" in doc:
        doc = doc["claims"]
    items = doc.items() if isinstance(doc, dict) else ((d.get("id"), d) for d in doc or [] if isinstance(d, dict))
    out = {}
    for cid, entry in items:
        if isinstance(entry, dict):
            for key in ("verdict", "holds", "pass", "passed"):
                if key in entry:
                    out[str(cid)] = entry[key]
                    break
        else:
            out[str(cid)] = entry
    return out


def claims_from_comparison(results: Path) -> dict[str, Any]:
    """The regenerated claim verdicts of a results folder (comparison/comparison.json, its claims section)."""
    doc = _read_json(Path(results) / COMPARISON_FILE)
    if "claims" not in doc:
        raise VerifyError(f"{Path(results) / COMPARISON_FILE} has no 'claims' section")
    return claim_verdicts(doc["claims"])


# ----------------------------------------------------------------------------------------------------- verify


@dataclass
class Report:
    """Everything verify found: the checks, what was possible, and the verdict."""

    results: str
    expected: str
    checks: list[Check]
    possible: list[str]
    skipped: dict[str, str]
    verdict: str = FAIL

    def to_dict(self) -> dict[str, Any]:
        counts = {v: sum(c.verdict == v for c in self.checks) for v in (PASS, FAIL, SKIP, INFO)}
        return {"verdict": self.verdict, "results": self.results, "expected": self.expected, "counts": counts,
                "possible": self.possible, "skipped": self.skipped, "checks": [c.to_dict() for c in self.checks]}


def _guard(out: list[Check], what: str, fn: Callable[[], Any], **labels) -> Any:
    """Run fn; a VerifyError becomes a FAIL record (`what` names the check), other errors too, with their type."""
    try:
        return fn()
    except VerifyError as error:
        out.append(Check(what, FAIL, detail=str(error), **labels))
    except Exception as error:  # never a traceback in the reviewer's face, but say what broke
        out.append(Check(what, FAIL, detail=f"{type(error).__name__}: {error}", **labels))
    return None


def load_tolerances(profile: Path) -> dict[str, Any]:
    return _read_json(Path(profile) / TOLERANCES_FILE)


def verify(results: Path, expected: Path, claims_fn: ClaimsFn = claims_from_comparison,
           tolerances: dict[str, Any] | None = None) -> Report:
    """Compare a results folder with an expected profile; never raises on bad data (FAIL records instead)."""
    results, expected = Path(results), Path(expected)
    checks: list[Check] = []
    possible: list[str] = []
    skipped: dict[str, str] = {}
    if not results.is_dir():
        checks.append(Check("files", FAIL, detail=f"missing results folder: {results} (run ./run_all.sh first)"))
    if not expected.is_dir():
        checks.append(Check("files", FAIL, detail=f"missing expected profile folder: {expected}"))
    if checks:
        return _finish(Report(str(results), str(expected), checks, possible, skipped))
    arms = expected_arms(expected)
    if arms:
        if tolerances is None:
            tolerances = _guard(checks, "tolerances", lambda: load_tolerances(expected))
        if tolerances is None:
            skipped["curve statistics"] = (f"no usable {expected / TOLERANCES_FILE}: only settings and Known sets "
                                           "(exact) were compared; record the profile with --calibrate-from")
        metrics = tuple((tolerances or {}).get("metrics", DEFAULT_METRICS))
        groups = tuple((tolerances or {}).get("groups", CHECK_GROUPS))
        possible.append(f"curves ({', '.join(arms)}: paired equivalence, per-fact map correlation, curve shape, "
                        f"Known sets; metric {', '.join(metrics)})")
        for arm in ARMS:
            if arm not in arms:
                skipped[f"curves {arm}"] = f"the expected profile has no {arm}/ folder"
        for arm in arms:
            exp = _guard(checks, "files", lambda: load_expected_arm(expected, arm), arm=arm)
            reg = _guard(checks, "files", lambda: load_run_arm(results, arm, exp.settings if exp else None), arm=arm)
            if exp is None or reg is None:
                continue
            checks.append(check_settings(reg, exp))
            checks.append(check_known(reg, exp, tolerances))
            if tolerances is None:
                continue
            for kind in exp.kinds():
                if kind not in reg.fact_ids:
                    checks.append(Check("data", FAIL, arm=arm, kind=kind,
                                        detail=f"regenerated {reg.source} has no {kind} effects"))
                    continue
                for metric in metrics:
                    checks += _guard(checks, "statistics", lambda: compare_arm_kind(reg, exp, kind, metric,
                                                                                  tolerances, groups),
                                     arm=arm, kind=kind, metric=metric) or []
    else:
        skipped["curves"] = ("the expected profile holds no recorded curves (claims only), so paired equivalence, "
                             "per-fact correlation, curve shape and Known-set checks were not possible")
        recorded = {}
        if (expected / MANIFEST_FILE).is_file():
            recorded = (_guard(checks, "files", lambda: _read_json(expected / MANIFEST_FILE)) or {}).get("settings")
        if recorded:  # at least check that the claims come from the same model, facts and noise rule
            regenerated = _run_settings(results, recorded)
            for arm, exp_settings in recorded.items():
                if arm not in regenerated:
                    checks.append(Check("files", FAIL, arm=arm, detail=f"missing run folder: no {arm} run in "
                                                                       f"{results}"))
                    continue
                checks.append(check_settings(ArmData(arm, results, regenerated[arm], None),
                                             ArmData(arm, expected, exp_settings, None)))
            possible.append("run settings (model, facts, noise rule) against the recorded ones")
    claims_path = expected / CLAIMS_FILE
    if claims_path.is_file():
        doc = _guard(checks, "files", lambda: _read_json(claims_path))
        if doc is not None:
            expected_claims = doc.get("claims", doc)
            regenerated = _guard(checks, "claims", lambda: claims_fn(results))
            unstable = (tolerances or {}).get("claims", {}).get("unstable", []) if tolerances else []
            checks += check_claims(regenerated, expected_claims, unstable)
            possible.append(f"claims ({len(expected_claims)} from {claims_path.name})")
    else:
        skipped["claims"] = f"no {claims_path}"
    if not possible:
        checks.append(Check("profile", FAIL, detail=f"{expected} holds neither curves nor claims: nothing to check"))
    return _finish(Report(str(results), str(expected), checks, possible, skipped))


def _finish(report: Report) -> Report:
    judged = [c for c in report.checks if c.verdict in (PASS, FAIL)]
    report.verdict = PASS if judged and all(c.verdict == PASS for c in judged) else FAIL
    return report


# ------------------------------------------------------------------------------------------------- calibration


def _run_labels(arms: dict[str, ArmData]) -> dict[str, Any]:
    return {arm: {k: (d.settings or {}).get(k) for k in ("seed", "batch_size", "model", "device")}
            for arm, d in arms.items()}


def _load_run_arms(results: Path) -> dict[str, ArmData]:
    """Every arm with a run folder in a results folder (VerifyError when none)."""
    arms = {}
    for arm in ARMS:
        try:
            arms[arm] = load_run_arm(results, arm)
        except VerifyError as error:
            if not str(error).startswith("missing run folder"):
                raise
    if not arms:
        raise VerifyError(f"no run folders (runs/t2t-*, runs/s2t-*) in {results}")
    return arms


def _derangements(n: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` random permutations of range(n) without fixed points (fixed seed)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count and n > 1:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            out.append(p)
    return out


def _fact_threshold(same: list[np.ndarray], null: list[np.ndarray]) -> tuple[float, float, float, float, float]:
    """Pick the per-fact correlation bound r0 that best separates same-fact from wrong-fact correlations, and the
    required fraction q halfway between them. Returns (r0, q, min same fraction, 95th pct wrong fraction, gap)."""
    grid = np.round(np.arange(-1.0, 1.0001, 0.01), 2)
    best = None
    for r0 in grid:
        s = min(float(np.mean(np.nan_to_num(x, nan=-np.inf) >= r0)) for x in same)
        n = float(np.quantile([np.mean(np.nan_to_num(x, nan=-np.inf) >= r0) for x in null], 0.95)) if null else 0.0
        if best is None or s - n > best[4] + 1e-12:
            best = (float(r0), 0.0, s, n, s - n)
    r0, _, s, n, gap = best
    q = math.floor(1000 * (s + n) / 2) / 1000 if gap > 0 else max(0.0, s - 0.05)
    return r0, q, s, n, gap


def simulated_reruns(rep: np.ndarray, ref: np.ndarray, n: int | None = None, seed: int = BOOTSTRAP_SEED
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Curve correlation and |peak shift| of simulated reruns against the reference, from one replicate.

    A rerun's AIE curve differs from the reference's by the mean over facts of the per-fact run-to-run differences
    d = rep - ref [fact, layer]. Resampling facts of d (centred on its mean) draws such differences, so
    ref_curve + mean(d*) - mean(d) is a plausible rerun's curve. Three replicates alone under-sample the argmax of a
    flat-topped curve; these draws measure its spread. Returns ([n] Pearson r, [n] |argmax shift|)."""
    n = SIMULATED_RERUNS if n is None else n
    d = np.asarray(rep, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    keep = np.all(np.isfinite(d), axis=1)
    d, ref = d[keep], np.asarray(ref, dtype=np.float64)[keep]
    if d.shape[0] < 2:
        return np.empty(0), np.empty(0)
    ref_curve = ref.mean(axis=0)
    rng = np.random.default_rng(seed)
    draws = d[rng.integers(0, d.shape[0], (n, d.shape[0]))].mean(axis=1) - d.mean(axis=0)  # [n, layer]
    sims = ref_curve + draws
    shifts = np.abs(np.argmax(sims, axis=1) - int(np.argmax(ref_curve)))
    corrs = pearson_rows(sims, ref_curve[None, :])
    return corrs, shifts


def _group_tolerances(per_run: list[tuple[list[str], np.ndarray, np.ndarray]], group: str, runs_text: str,
                      safety: float, alpha: float, n_resamples: int, seed: int,
                      between_replicates: Sequence[tuple[list[str], np.ndarray, np.ndarray]] = ()
                      ) -> dict[str, Any]:
    """delta, curve_correlation and peak_shift of one group from the paired (ids, replicate, reference) arrays of
    every replicate, and for delta also the (ids, replicate j, replicate i) pairs (see calibrate_tolerances)."""
    g = GROUPS.index(group)
    between = [band_statistic(*bonferroni_band(a[:, g, :] - b[:, g, :], alpha, n_resamples, seed)[1:])
               for _, a, b in between_replicates]
    stats_, corrs, shifts, sim_corrs, sim_shifts = [], [], [], [], []
    for n_run, (_, rr, ee) in enumerate(per_run):
        _, lo, hi = bonferroni_band(rr[:, g, :] - ee[:, g, :], alpha, n_resamples, seed)
        stats_.append(band_statistic(lo, hi))
        rc, ec = aie_curve(rr, group), aie_curve(ee, group)
        corrs.append(pearson(rc, ec))
        pr, pe = peak_layer(rc), peak_layer(ec)
        shifts.append(abs(pr - pe) if pr is not None and pe is not None else math.nan)
        c_sim, s_sim = simulated_reruns(rr[:, g, :], ee[:, g, :], seed=seed + n_run)
        sim_corrs.append(c_sim)
        sim_shifts.append(s_sim)
    L = per_run[0][2].shape[2]
    finite_stats = [x for x in stats_ + between if math.isfinite(x)]
    delta = max(safety * max(finite_stats), 1e-12) if finite_stats else math.nan
    sim_c, sim_s = np.concatenate(sim_corrs), np.concatenate(sim_shifts)
    sim_c = sim_c[np.isfinite(sim_c)]
    q_corr = float(np.quantile(sim_c, 0.01)) if sim_c.size else math.nan
    candidates = [c for c in corrs if math.isfinite(c)] + ([q_corr] if sim_c.size else [])
    r_min = min(candidates) if candidates else math.nan
    c_bound = float(np.clip(1 - safety * (1 - r_min), -1, 1)) if candidates else math.nan
    q_shift = int(np.quantile(sim_s, 0.99)) if sim_s.size else 0
    m_obs = int(max((x for x in shifts if math.isfinite(x)), default=0))
    return {
        "delta": {"value": delta, "observed": stats_, "observed_between_replicates": between,
                  "how_chosen": f"{safety} x the max over every pair of runs (each replicate against the reference, "
                                f"and each pair of replicates: any two independent runs are as far apart as a fresh "
                                f"run and the reference) of (max over layers of |end of the {1 - alpha / L:.4f} "
                                f"Bonferroni percentile bootstrap CI| of the mean over facts of their difference); "
                                f"{runs_text}"},
        "curve_correlation": {"value": c_bound, "observed": corrs, "simulated_q01": q_corr,
                              "how_chosen": f"1 - {safety} x (1 - r_min), clipped to [-1, 1]; r_min = the smaller of "
                                            f"the min Pearson r of the AIE curves over replicates and the 1st "
                                            f"percentile over {SIMULATED_RERUNS} simulated reruns per replicate "
                                            f"(simulated_reruns); {runs_text}"},
        "peak_shift": {"value": max(m_obs, q_shift) + 1, "observed": shifts, "simulated_q99": q_shift,
                       "how_chosen": f"1 + max(max observed |peak shift| over replicates = {m_obs}, 99th percentile "
                                     f"over {SIMULATED_RERUNS} simulated reruns per replicate = {q_shift}); "
                                     f"{runs_text}"},
    }


def calibrate_tolerances(
    result_dirs: Sequence[Path],
    reference: Path,
    metrics: Sequence[str] = DEFAULT_METRICS,
    groups: Sequence[str] = CHECK_GROUPS,
    safety: float = SAFETY,
    alpha: float = ALPHA,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    claims_fn: ClaimsFn | None = claims_from_comparison,
) -> dict[str, Any]:
    """Tolerances for an expected profile recorded from `reference`, from replicate results folders of the same
    profile run with other noise seeds (and batch sizes). Each statistic verify computes is measured for every
    replicate against the reference, and the tolerance set from its spread with margin `safety`:

    - delta = safety x max over every pair of runs, each replicate against the reference and each pair of
      replicates, of (max over layers of |end of the Bonferroni CI| of the mean paired difference): k replicates
      give k(k+1)/2 such distances instead of k (with 3, a fresh seed failed one of 67 checks on the embedded smoke
      profile);
    - curve_correlation bound = 1 - safety x (1 - r_min), clipped to [-1, 1], r_min = the smaller of the min over
      replicates of r and the 1st percentile of r over simulated reruns (`simulated_reruns`);
    - peak_shift k = 1 + max(max observed |argmax shift|, 99th percentile over simulated reruns);
    - fact_correlation r0 and fact_fraction q: r0 maximises (min over replicates of the fraction of facts with
      r >= r0) - (95th percentile of the same fraction when facts are deranged, i.e. attached to wrong facts);
      q is halfway between those two fractions;
    - known_set Jaccard bound = min observed - max(0.02, safety x (1 - min observed));
    - claims whose verdict differs between a replicate and the reference are marked unstable (reported, not judged).

    Then the power: with these tolerances, does verify FAIL a replicate scaled by 0.5, its layers rolled by 3, its
    facts deranged, and (both arms present) the two arms swapped? `verdict` says "ok" or "profile too small: grow it"
    naming what went undetected. Returns the tolerances.json document.
    """
    if not result_dirs:
        raise ValueError("calibrate_tolerances needs at least one replicate results folder (other noise seed).")
    ref = _load_run_arms(Path(reference))
    runs = [_load_run_arms(Path(d)) for d in result_dirs]
    for d, arms in zip(result_dirs, runs):
        same = [arm for arm in ref if arm in arms and arms[arm].source.resolve() == ref[arm].source.resolve()]
        same += [arm for arm in ref if arm in arms and arm not in same and all(
            (arms[arm].settings or {}).get(k) == (ref[arm].settings or {}).get(k) for k in ("seed", "batch_size"))]
        if same:
            raise VerifyError(f"replicate {d} repeats the reference's {', '.join(same)} run (same folder, or same "
                              "noise seed and batch size, hence bitwise the same numbers): it measures no variation. "
                              "Rerun with another --seed (and --batch-size) into another results folder.")
    n_runs = len(runs)
    for d, arms in zip(result_dirs, runs):
        missing = set(ref) - set(arms)
        if missing:
            raise VerifyError(f"replicate {d} lacks arm(s) {sorted(missing)} that the reference {reference} has")
    labels = [_run_labels(a) for a in runs]
    which = (f"runs: {n_runs} replicate(s) against the reference {Path(reference).name}: "
             + "; ".join(f"{Path(d).name} " + ", ".join(f"{arm} seed {v['seed']} batch {v['batch_size']}"
                                                    for arm, v in lab.items())
                         for d, lab in zip(result_dirs, labels)))
    entries: dict[str, Any] = {}
    boot = {"alpha": alpha, "n_resamples": n_resamples, "seed": seed}
    for arm, ref_arm in ref.items():
        js = [jaccard(r[arm].known or [], ref_arm.known or []) for r in runs]
        bound = max(0.0, min(js) - max(0.02, safety * (1 - min(js))))
        entries[f"{arm}/known_set"] = {"jaccard": {
            "value": round(bound, 6), "observed": js,
            "how_chosen": f"min Jaccard of the Known sets over replicates ({min(js):.4f}) minus "
                          f"max(0.02, {safety} x (1 - it)); {which}"}}
        for kind in ref_arm.kinds():
            for metric in metrics:
                per_run = []
                for r in runs:
                    if kind not in r[arm].fact_ids:
                        raise VerifyError(f"replicate {r[arm].source} has no {kind} effects")
                    per_run.append(pair(r[arm], ref_arm, kind, metric))
                between = [pair(runs[j][arm], runs[i][arm], kind, metric)
                           for i in range(n_runs) for j in range(i + 1, n_runs)]
                for group in groups:
                    entries[f"{arm}/{kind}/{metric}/{group}"] = _group_tolerances(
                        per_run, group, which, safety, alpha, n_resamples, seed, between)
                same = [fact_map_correlations(rr, ee) for _, rr, ee in per_run]
                null = []
                for n_run, (_, rr, ee) in enumerate(per_run):
                    cr, ce = centred(rr), centred(ee)  # the centring mean does not depend on the fact order
                    for perm in _derangements(rr.shape[0], NULL_PERMUTATIONS, seed + n_run):
                        null.append(fact_correlations(cr[perm], ce))
                r0, q, s, nq, gap = _fact_threshold(same, null)
                how = (f"r0 maximises (min over replicates of the fraction of facts with r >= r0 = "
                       f"{s:.3f}) - (95th percentile over {len(null)} derangements of facts of that fraction = "
                       f"{nq:.3f}); q halfway between; {which}")
                entries[f"{arm}/{kind}/{metric}"] = {
                    "fact_correlation": {"value": r0, "observed_median": [float(np.nanmedian(x)) for x in same],
                                         "how_chosen": how},
                    "fact_fraction": {"value": q, "observed_same": s, "observed_wrong_facts": nq,
                                      "how_chosen": how + ("" if gap > 0 else "; NO separation: per-fact maps of "
                                                           "different facts correlate as well as a fact's own")},
                }
    claims: dict[str, Any] = {"unstable": [], "how_chosen": "not calibrated (no claims_fn)"}
    if claims_fn is not None:
        try:
            ref_claims = claims_fn(Path(reference))
            unstable = set()
            for d in result_dirs:
                other = claims_fn(Path(d))
                unstable |= {c for c in ref_claims if other.get(c) != ref_claims[c]}
            claims = {"unstable": sorted(unstable),
                      "how_chosen": f"claims whose verdict differs between the reference and a replicate; {which}"}
        except VerifyError as error:
            claims["how_chosen"] = f"not calibrated: {error}"
    doc = {
        "format": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": list(metrics),
        "groups": list(groups),
        "bootstrap": {**boot, "method": "percentile", "correction": "Bonferroni over layers",
                      "unit": "fact (paired by known_id)"},
        "safety": safety,
        "reference": {"path": str(reference), "arms": _run_labels(ref)},
        "runs": [{"path": str(d), "arms": lab} for d, lab in zip(result_dirs, labels)],
        "entries": _jsonable(entries),
        "claims": claims,
    }
    doc["power"] = detection_power(ref, runs, doc)
    # Sanity: the unperturbed replicates pass the tolerances they set (they must, by construction).
    doc["replicates_failing"] = sorted({f for r in runs for arm in ref for f in _fails(r[arm], ref[arm], doc)})
    undetected = [name for name, p in doc["power"].items() if not p["detected"]]
    doc["verdict"] = "ok" if not undetected else f"profile too small: grow it ({', '.join(undetected)} not detected)"
    return doc


def _perturbed(data: ArmData, fn: Callable[[np.ndarray], np.ndarray]) -> ArmData:
    return ArmData(data.arm, data.source, data.settings, data.known,
                   {k: fn(v) for k, v in data.effects.items()}, data.fact_ids)


def _fails(regen: ArmData, expected: ArmData, tolerances: dict[str, Any]) -> list[str]:
    """Names of the checks that FAIL comparing `regen` with `expected` under `tolerances` (all kinds, metrics)."""
    failed = []
    known = check_known(regen, expected, tolerances)
    if known.verdict == FAIL:
        failed.append(f"{regen.arm}/known_set")
    for kind in expected.kinds():
        for metric in tolerances["metrics"]:
            for c in compare_arm_kind(regen, expected, kind, metric, tolerances, tolerances["groups"]):
                if c.verdict == FAIL:
                    failed.append("/".join(x for x in (c.arm, c.kind, c.metric, c.group, c.check) if x))
    return failed


def detection_power(ref: dict[str, ArmData], runs: list[dict[str, ArmData]], tolerances: dict[str, Any]
                    ) -> dict[str, Any]:
    """Does verify FAIL each perturbation of each replicate (all must), and which checks catch it?"""
    perturbations: dict[str, Callable[[ArmData], ArmData]] = {
        "scale_0.5": lambda d: _perturbed(d, lambda a: 0.5 * a),
        "peak_moved_3_layers": lambda d: _perturbed(d, lambda a: np.roll(a, 3, axis=2)),
        "facts_shuffled": lambda d: _perturbed(d, lambda a: a[_derangements(a.shape[0], 1, 12345)[0]]
                                               if a.shape[0] > 1 else a),
    }
    out: dict[str, Any] = {}
    for name, perturb in perturbations.items():
        caught = []
        for r in runs:
            failed = []
            for arm in ref:
                failed += _fails(perturb(r[arm]), ref[arm], tolerances)
            caught.append(failed)
        out[name] = {"detected": all(caught), "caught_by": sorted({f for c in caught for f in c})[:20],
                     "replicates_detected": sum(bool(c) for c in caught), "replicates": len(runs)}
    if set(ARMS) <= set(ref):
        caught = []
        for r in runs:
            failed = []
            for a, b in (("t2t", "s2t"), ("s2t", "t2t")):
                swapped = ArmData(a, r[b].source, r[b].settings, r[b].known, r[b].effects, r[b].fact_ids)
                failed += _fails(swapped, ref[a], tolerances)
            caught.append(failed)
        out["arms_swapped"] = {"detected": all(caught), "caught_by": sorted({f for c in caught for f in c})[:20],
                               "replicates_detected": sum(bool(c) for c in caught), "replicates": len(runs)}
    return out


# ------------------------------------------------------------------------------------------------- recording


def _claims_document(results: Path, claims_fn: ClaimsFn) -> dict[str, Any]:
    """claims.json content from a run: claim id -> {"verdict", "statement"} (statements from comparison.json)."""
    verdicts = claims_fn(results)
    statements: dict[str, str] = {}
    path = Path(results) / COMPARISON_FILE
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
    return {"source": str(path), "claims": {c: {"verdict": v, "statement": statements.get(c, "")}
                                            for c, v in verdicts.items()}}


def _run_settings(results: Path, hints: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """{arm: settings.json} of the run folders a results folder holds (arms without one left out)."""
    out = {}
    for arm in ARMS:
        try:
            out[arm] = _read_json(find_run_dir(results, arm, (hints or {}).get(arm)) / SETTINGS_FILE)
        except VerifyError:
            continue
    return out



_REPO_ROOT = str(Path(__file__).resolve().parents[1])


def _portable(value: Any) -> Any:
    """`value` with this machine's paths made portable (repo root -> '.', home -> '~'): a recorded profile is
    committed to the repository and must not carry the recording machine's paths."""
    if isinstance(value, str):
        value = value.replace(_REPO_ROOT, ".")
        home = str(Path.home())
        return value.replace(home, "~") if home not in ("/", "") else value
    if isinstance(value, dict):
        return {_portable(k): _portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v) for v in value]
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
    if profile.exists() and force:  # replace the profile's own files (a README or other files stay)
        for arm in ARMS:
            shutil.rmtree(profile / arm, ignore_errors=True)
        for name in (CLAIMS_FILE, TOLERANCES_FILE, MANIFEST_FILE):
            (profile / name).unlink(missing_ok=True)
    profile.mkdir(parents=True, exist_ok=True)
    if not claims_only:
        arms = _load_run_arms(results)
        for arm, data in arms.items():
            folder = profile / arm
            folder.mkdir(exist_ok=True)
            shutil.copyfile(data.source / "aggregate" / EFFECTS_FILE, folder / EFFECTS_FILE)
            (folder / SETTINGS_FILE).write_text(json.dumps(_portable(data.settings), indent=2) + "\n")
            known_doc = json.loads((data.source / "known.json").read_text())
            (folder / KNOWN_IDS_FILE).write_text(json.dumps(
                {"run": data.source.name, "rule": known_doc.get("rule", ""), "n_facts": known_doc.get("n_facts"),
                 "known": data.known}, indent=2) + "\n")
            arms_info[arm] = {"run": data.source.name, "layers": data.num_layers(),
                              "facts": {k: len(v) for k, v in data.fact_ids.items()}}
            notes.append(f"recorded {arm} curves from {data.source}")
        (profile / TOLERANCES_FILE).write_text(json.dumps(_portable(_jsonable(tolerances)), indent=2) + "\n")
        notes.append(f"tolerances: {tolerances.get('verdict', 'given')}")
    try:
        claims_document = _portable(_jsonable(_claims_document(results, claims_fn)))
        (profile / CLAIMS_FILE).write_text(json.dumps(claims_document, indent=2) + "\n")
        notes.append("recorded claims")
    except VerifyError as error:
        notes.append(f"no claims recorded: {error}")
    settings = _run_settings(results)
    if not settings:
        notes.append("no run settings found: a claims-only verify cannot check the model")
    run_manifest = json.loads((results / MANIFEST_FILE).read_text()) if (results / MANIFEST_FILE).is_file() else None
    files = {str(p.relative_to(profile)): sha256_file(p) for p in sorted(profile.rglob("*"))
             if p.is_file() and p.name not in (MANIFEST_FILE, "README.md")}
    manifest = {"format": FORMAT_VERSION, "profile": profile.name, "source": str(results),
                "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "contents": "claims only" if claims_only else "curves, Known sets, claims, tolerances",
                "arms": arms_info, "settings": settings, "files": files, "run_manifest": run_manifest}
    (profile / MANIFEST_FILE).write_text(json.dumps(_portable(_jsonable(manifest)), indent=2) + "\n")
    return notes


# --------------------------------------------------------------------------------------------------- report


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(_jsonable(value))
    return str(value)


def render_markdown(report: Report) -> str:
    """report.md: verdict, which checks were possible and which were skipped (why), and every check."""
    doc = report.to_dict()
    lines = [f"# verify.py: {report.verdict}", "",
             f"- results: `{report.results}`", f"- expected: `{report.expected}`",
             f"- checks: " + ", ".join(f"{n} {v}" for v, n in doc["counts"].items() if n), "",
             "## Checks possible", ""]
    lines += [f"- {p}" for p in report.possible] or ["- none"]
    lines += ["", "## Checks skipped", ""]
    lines += [f"- {k}: {v}" for k, v in report.skipped.items()] or ["- none"]
    lines += ["", "## Every check", "",
              "| verdict | check | arm | kind | metric | group | observed | expected | tolerance | detail |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in report.checks:
        cells = [c.verdict, c.check, c.arm, c.kind, c.metric, c.group, c.observed, c.expected, c.tolerance,
                 c.detail]
        lines.append("| " + " | ".join(_fmt(x).replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def render_table(report: Report, width: int = 110) -> str:
    """A short per-check table for the terminal, then the verdict."""
    lines = []
    for c in report.checks:
        where = "/".join(x for x in (c.arm, c.kind, c.metric, c.group) if x)
        obs = f"{_fmt(c.observed)} (tol {_fmt(c.tolerance)})" if c.tolerance is not None else _fmt(c.observed)
        line = f"{c.verdict:4}  {c.check:19} {where:28} {obs}"
        if c.verdict != PASS and c.detail:
            line += f"  {c.detail}"
        lines.append(line[:width] if c.verdict == PASS else line)
    for k, v in report.skipped.items():
        lines.append(f"SKIP  {k}: {v}")
    lines.append(f"verify: {report.verdict} ({', '.join(report.possible) or 'no check possible'})")
    return "\n".join(lines)


def write_report(report: Report, folder: Path) -> tuple[Path, Path]:
    """Write report.json and report.md into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
