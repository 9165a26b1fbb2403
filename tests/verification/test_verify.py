"""verify.py and artifact.verification on synthetic results folders in run_all.sh's layout.

A generative model stands in for real runs: per arm and kind a true AIE curve over layers per token group (T->T
strong and peaked, S->T weaker and broader), per-fact amplitudes and fact-specific shapes (so facts are
distinguishable), and per-run noise drawn from the run's noise seed (its size too varies by +/-20% with the
seed; the batch size is only a label, as real batch sizes change results in the last bits only). Tolerances are
calibrated from five seed replicates; a fresh replicate (another seed, another batch size) must PASS, and each
corruption must FAIL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from artifact import verification as v
from artifact.core.names import GROUPS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LAYERS = 12
POOL = 80  # facts in the fact file
KINDS = ("hidden", "mlp", "attn")

# (peak layer, amplitude, width) per arm and kind at the last subject token; the last token peaks late.
TRUTH = {
    "t2t": {"hidden": (4, 0.20, 2.0), "mlp": (5, 0.12, 1.5), "attn": (7, 0.05, 1.5)},
    "s2t": {"hidden": (5, 0.06, 3.0), "mlp": (6, 0.04, 3.0), "attn": (7, 0.03, 3.0)},
}
KNOWN = {"t2t": list(range(0, 60, 2)), "s2t": list(range(20, 66, 2))}  # 30 and 23 facts, 10 in common
KNOWN_UNTRACED = {"t2t": [71, 73], "s2t": [75, 77]}  # also known, not traced (the profile's sample left them out)


def truth_maps(arm: str, kind: str) -> tuple[list[int], np.ndarray]:
    """Noise-free per-fact [fact, group, layer] effects of one arm and kind (fixed: independent of the run)."""
    peak, amp, width = TRUTH[arm][kind]
    ids = KNOWN[arm]
    layers = np.arange(LAYERS)
    maps = np.zeros((len(ids), len(GROUPS), LAYERS))
    for f, fact in enumerate(ids):
        frng = np.random.default_rng(1000 + fact)  # a fact's own shape, shared by its kinds
        a = amp * frng.lognormal(0.0, 0.4)
        shift = frng.integers(-2, 3)
        texture = frng.normal(0, 0.35, (len(GROUPS), LAYERS))
        for g, group in enumerate(GROUPS):
            p = peak + shift + (4 if group == "last" else 0)
            scale = {"last_subject": 1.0, "last": 0.8, "first_subject": 0.4, "middle_subject": 0.5,
                     "first_subsequent": 0.3, "further": 0.2}[group]
            maps[f, g] = a * scale * (np.exp(-0.5 * ((layers - p) / width) ** 2) + texture[g])
        if fact % 3 == 0:  # one-token subject: no middle subject tokens
            maps[f, GROUPS.index("middle_subject")] = np.nan
    return ids, maps


def claims_of(effects: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Toy claims in comparison.json's format (claims.evaluate_claims: id -> {"claim", "verdict", ...}), computed
    from the data: T->T MLP peak at the last subject token above S->T's; S->T's peak positive."""
    peak = {arm: float(np.nanmax(np.nanmean(effects[arm]["mlp_prob"][:, GROUPS.index("last_subject")], axis=0)))
            for arm in effects}
    yes = lambda ok: "supported" if ok else "not supported"  # noqa: E731
    ratio = peak["s2t"] / peak["t2t"]
    condition = {"kind": "mlp", "name": "overall_peak_ratio", "statistic": "overall peak ratio S->T / T->T",
                 "value": ratio, "ci_low": ratio - 0.1, "ci_high": ratio + 0.1, "operator": "<", "thresholds": [1.0],
                 "margin": 0.9 - ratio}
    return {"C2": {"set": "both", "claim": "S->T: the AIE is lower than in T->T.", "rule": "toy",
                   "verdict": yes(peak["t2t"] > peak["s2t"]), "conditions": [condition]},
            "C3": {"set": "own", "claim": "S->T: some localisation near the subject tokens remains.", "rule": "toy",
                   "verdict": yes(peak["s2t"] > 0.0), "conditions": []}}


def make_results(root: Path, seed: int, batch_size: int, noise: float = 0.25) -> Path:
    """A results folder (results/<profile> layout) of one synthetic run with noise seed `seed`."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    size = noise * rng.uniform(0.8, 1.2)  # the run's noise level varies with the seed too
    all_effects = {}
    for arm in ("t2t", "s2t"):
        run = root / "runs" / f"{arm}-synthetic-{seed:04d}{batch_size:04d}"
        (run / "aggregate").mkdir(parents=True)
        settings = {"arm": arm, "model": "synthetic", "dtype": "torch.float32", "device": "cpu",
                    "facts_fingerprint": "f" * 64, "noise_spec": "3sigma", "noise": 0.35, "samples": 10,
                    "window": 10, "seed": seed, "batch_size": batch_size, "positions": "all"}
        (run / "settings.json").write_text(json.dumps(settings))
        known = set(KNOWN[arm]) | set(KNOWN_UNTRACED[arm])
        # margins as known.json records them: > 0 exactly when known; fact 71/75 is a near tie
        checks = [{"known_id": i, "known": i in known,
                   "margin": (2e-05 if i in KNOWN_UNTRACED[arm][:1] else 1.0 + i / 10) * (1 if i in known else -1)}
                  for i in range(POOL)]
        (run / "known.json").write_text(json.dumps({"rule": "synthetic", "checks": checks}))
        arrays = {"groups": np.asarray(GROUPS)}
        for kind in KINDS:
            ids, maps = truth_maps(arm, kind)
            amp = TRUTH[arm][kind][1]
            noisy = maps + rng.normal(0, size * amp, maps.shape)  # the run's noise: drawn from its seed
            arrays[f"{kind}_prob"] = noisy
            arrays[f"{kind}_logprob"] = 5 * noisy
            arrays[f"{kind}_known_ids"] = np.asarray(ids)
        np.savez(run / "aggregate" / "group_effects.npz", **arrays)
        all_effects[arm] = arrays
    (root / "comparison").mkdir()
    (root / "comparison" / "comparison.json").write_text(json.dumps({"claims": claims_of(all_effects)}))
    (root / "manifest.json").write_text(json.dumps({  # manifest.json's identity fields (see artifact.manifest)
        "model_name": "synthetic", "profile": "smoke", "facts_fingerprint": "f" * 64,
        "settings": {"profile": {"name": "smoke", "facts": "own", "samples": 10, "window": 10, "count": 12,
                                 "seed": seed, "batch_size": batch_size}},
        "model": {arm: {"spec": "synthetic", "weights": {"path": f"/tmp/{seed}", "sha256": "ab" * 32}}
                  for arm in ("t2t", "s2t")}}))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Reference run, five calibration replicates, the recorded profile and a fresh replicate."""
    base = tmp_path_factory.mktemp("verify")
    ref = make_results(base / "ref", seed=1, batch_size=128)
    reps = [make_results(base / f"rep{s}", seed=s, batch_size=b)
            for s, b in ((2, 128), (3, 64), (4, 128), (5, 96), (6, 48))]
    tolerances = v.calibrate_tolerances(reps, ref)
    profile = base / "expected" / "synthetic"
    v.record_profile(ref, profile, tolerances)
    fresh = make_results(base / "fresh", seed=7, batch_size=32)
    return {"base": base, "ref": ref, "reps": reps, "tolerances": tolerances, "profile": profile, "fresh": fresh}


def corrupted(world, name: str) -> Path:
    """A copy of the fresh replicate to corrupt."""
    target = world["base"] / name
    shutil.copytree(world["fresh"], target)
    return target


def edit_effects(results: Path, arm: str, fn) -> None:
    """Rewrite every per-fact array of one arm's group_effects.npz through fn(array [fact, group, layer])."""
    edit_effects_in(next((results / "runs").glob(f"{arm}-*")), fn)


def edit_effects_in(run: Path, fn) -> None:
    path = run / "aggregate" / "group_effects.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    for k in list(arrays):
        if arrays[k].ndim == 3:
            arrays[k] = fn(arrays[k])
    np.savez(path, **arrays)


def failed(report: v.Report) -> set[str]:
    return {c.check for c in report.checks if c.verdict == v.FAIL}


def verify_synthetic(results, expected, **options):
    """verify() on a synthetic folder: it has aggregates but no traces, so nothing can be recomputed (the traces'
    digests and the recomputation are tested on real runs in test_recompute.py)."""
    return v.verify(results, expected, recompute=False, **options)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    if "--record" not in args and "--calibrate-from" not in args and "--bogus" not in args:
        args = (*args, "--no-recompute")  # synthetic folders hold no traces (see verify_synthetic)
    return subprocess.run([sys.executable, str(REPO / "verify.py"), *args], capture_output=True, text=True,
                          timeout=120)


# ----------------------------------------------------------------------------------------------------- tests


def test_calibration_records_how_and_has_power(world):
    tol = world["tolerances"]
    assert tol["verdict"] == "ok", tol["power"]
    assert {"scale_0.5", "peak_moved_3_layers", "facts_shuffled", "arms_swapped"} <= set(tol["power"])
    assert all(p["detected"] for p in tol["power"].values())
    assert tol["replicates_failing"] == []
    entry = tol["entries"]["t2t/mlp/prob/last_subject"]
    for name in ("band", "curve_correlation", "peak_shift"):
        assert entry[name]["how_chosen"] and len(entry[name]["observed"]) == 5
    assert "seed 3 batch 64" in entry["band"]["how_chosen"]
    # the band's spread comes from all 15 pairs of the 6 runs; its multiplier is Student t with 5 degrees of freedom
    band = entry["band"]
    assert band["runs"] == 6 and "15 pairs" in band["how_chosen"]
    assert band["value"] == pytest.approx(scipy.stats.t.ppf(1 - 0.05 / (2 * LAYERS), 5))
    assert len(band["scale"]) == LAYERS and min(band["scale"]) >= np.median(band["scale"]) / 2 ** 0.5 - 1e-12
    assert max(band["observed"]) <= band["value"]  # in-sample replicates lie inside their own band
    loo = tol["leave_one_out"]  # each replicate judged by a calibration without it
    assert loo["replicates"] == 5 and len(band["leave_one_out_ratio"]) == 5
    assert loo["replicates_failing"] == 0, loo  # honest replicates held out of the calibration pass
    assert loo["replicates_failing"] == sum(bool(r["failed"]) for r in loo["per_replicate"])
    assert [r["arms"]["t2t"]["seed"] for r in tol["runs"]] == [2, 3, 4, 5, 6]
    saved = json.loads((world["profile"] / "tolerances.json").read_text())
    assert saved["entries"].keys() == tol["entries"].keys()
    claims = json.loads((world["profile"] / "claims.json").read_text())["claims"]
    assert claims["C3"] == {"verdict": "supported",
                            "statement": "S->T: some localisation near the subject tokens remains."}
    manifest = json.loads((world["profile"] / "manifest.json").read_text())
    assert "t2t/group_effects.npz" in manifest["files"]


def test_calibration_says_when_the_profile_is_too_small(tmp_path):
    """Seed noise 8x larger: a 0.5 scaling hides in it, and the calibration says to grow the profile."""
    ref = make_results(tmp_path / "ref", seed=1, batch_size=128, noise=2.0)
    reps = [make_results(tmp_path / f"rep{s}", seed=s, batch_size=64, noise=2.0) for s in (2, 3)]
    tol = v.calibrate_tolerances(reps, ref, leave_one_out=False)
    assert not tol["power"]["scale_0.5"]["detected"]
    assert tol["verdict"] == "profile too small: grow it (scale_0.5 not detected)"


def test_fresh_replicate_passes_cli(world):
    """Another noise seed and batch size: exit 0, report files with every check."""
    proc = run_cli("--results", str(world["fresh"]), "--expected", str(world["profile"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify: PASS" in proc.stdout
    report = json.loads((world["fresh"] / "verify" / "report.json").read_text())
    assert report["verdict"] == "PASS"
    checks = {c["check"] for c in report["checks"]}
    assert {"curve_band", "fact_correlation", "curve_correlation", "peak_layer", "known_set", "claim",
            "settings"} <= checks
    row = next(c for c in report["checks"] if c["check"] == "curve_band")
    assert set(row) >= {"check", "arm", "kind", "group", "observed", "expected", "tolerance", "verdict", "detail"}
    md = (world["fresh"] / "verify" / "report.md").read_text()
    assert md.startswith("# verify.py: PASS") and "| curve_band |" in md
    assert "batch_size 32" in md  # differing seed/batch noted, allowed
    # the first lines say which tier judged and which passed checks came closest to their tolerances
    used = [c["used"] for c in report["closest"]]
    assert len(used) == 3 and used == sorted(used, reverse=True) and 0 < used[-1] <= used[0] <= 1
    head = md.split("## Checks possible")[0]
    assert "- tier: other-seed" in head and f"{report['closest'][0]['check']} {used[0]:.2f}" in head
    assert "closest to their tolerances" in proc.stdout


def test_default_expected_from_manifest(world, tmp_path):
    """Without --expected: expected/<model>-<profile> from the results' manifest (as the pipeline names folders)."""
    proc = run_cli("--results", str(world["fresh"]), "--report", str(tmp_path))
    assert proc.returncode == 2  # expected/synthetic-smoke does not exist at the repo: no verdict, not a FAIL
    assert f"no expected profile applies to {world['fresh']}: {REPO / 'expected' / 'synthetic-smoke'} does not exist" \
        in proc.stdout
    stored = sorted(p.name for p in (REPO / "expected").iterdir() if p.is_dir())
    assert f"Stored profiles: {', '.join(stored)}." in proc.stdout and "embedded-smoke" in stored


@pytest.mark.parametrize("case", ["peak_moved", "scaled", "facts_shuffled", "arms_swapped"])
def test_corruptions_fail(world, case):
    results = corrupted(world, case)
    if case == "peak_moved":
        edit_effects(results, "t2t", lambda a: np.roll(a, 3, axis=2))
        expect = {"peak_layer"}
    elif case == "scaled":
        for arm in ("t2t", "s2t"):
            edit_effects(results, arm, lambda a: 0.5 * a)
        expect = {"curve_band"}
    elif case == "facts_shuffled":
        perm = np.roll(np.arange(30), 1)
        edit_effects(results, "t2t", lambda a: a[perm] if a.shape[0] == 30 else a)
        expect = {"fact_correlation"}
    else:
        t2t, s2t = next((results / "runs").glob("t2t-*")), next((results / "runs").glob("s2t-*"))
        for name in ("aggregate/group_effects.npz", "known.json"):
            tmp = results / "swap.tmp"
            shutil.move(t2t / name, tmp)
            shutil.move(s2t / name, t2t / name)
            shutil.move(tmp, s2t / name)
        expect = {"known_set", "curve_band"}
    report = verify_synthetic(results, world["profile"])
    assert report.verdict == v.FAIL
    assert expect <= failed(report), v.render_table(report)


def test_missing_file_fails_cli_without_traceback(world):
    results = corrupted(world, "missing")
    path = next((results / "runs").glob("s2t-*")) / "aggregate" / "group_effects.npz"
    path.unlink()
    proc = run_cli("--results", str(results), "--expected", str(world["profile"]))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"missing file: {path}" in proc.stdout
    report = json.loads((results / "verify" / "report.json").read_text())
    assert report["verdict"] == "FAIL" and any(c["check"] == "files" for c in report["checks"])
    # the other arm is still checked
    assert any(c["arm"] == "t2t" and c["check"] == "curve_band" and c["verdict"] == "PASS"
               for c in report["checks"])


def test_nan_fails(world):
    results = corrupted(world, "nan")

    def poke(a):
        a = a.copy()
        a[4, GROUPS.index("last"), 6] = np.nan
        return a

    edit_effects(results, "s2t", poke)
    report = verify_synthetic(results, world["profile"])
    assert report.verdict == v.FAIL
    nan = [c for c in report.checks if c.check == "nan" and c.verdict == v.FAIL]
    assert nan and nan[0].detail.startswith("NaN in regenerated") and "layer 6" in nan[0].detail


def test_empty_group_nan_is_not_a_failure(world):
    """Whole NaN rows of an empty group (middle of a one-token subject) are legitimate."""
    report = verify_synthetic(world["fresh"], world["profile"])
    assert report.verdict == v.PASS
    assert all(c.verdict == v.PASS for c in report.checks if c.check == "nan")


def test_layer_count_mismatch_says_so(world):
    results = corrupted(world, "layers")
    edit_effects(results, "t2t", lambda a: a[:, :, :10])
    report = verify_synthetic(results, world["profile"])
    bad = [c for c in report.checks if c.check == "layers"]
    assert report.verdict == v.FAIL and bad and "10 layers, expected 12" in bad[0].detail


def test_known_set_mismatch_is_reported(world):
    results = corrupted(world, "known")
    path = next((results / "runs").glob("t2t-*")) / "known.json"
    doc = json.loads(path.read_text())
    for row in doc["checks"][:20]:
        row["known"] = False
    path.write_text(json.dumps(doc))
    report = verify_synthetic(results, world["profile"])
    known = next(c for c in report.checks if c.check == "known_set" and c.arm == "t2t")
    assert known.verdict == v.FAIL and "only expected" in known.detail
    # 10 of the first 20 facts were known, each with a wide margin (1 + id/10): all above the float32 bound
    assert "0 free, 10 at or above" in known.detail and known.observed == pytest.approx(2.8)


@pytest.mark.parametrize("flips, verdict", [(["71"], v.PASS), (["73"], v.FAIL), (["71", "73"], v.FAIL)])
def test_known_flips_are_judged_by_their_margins(world, flips, verdict):
    """A fact leaving the Known set with its margin under the float32 bound (fact 71: +2e-05 -> -1e-05, a near tie
    flipping on other numerics) is free; a fact with a wide margin (73: +8.3 in the reference) flipping FAILs, even
    alone (the old rule allowed one flip of any margin) (issue 28, part 6). The report names each flip with its
    margins and the facts closest to flipping."""
    from artifact.verification.known_margins import margin_bound

    bound = margin_bound({"dtype": "torch.float32"})
    assert bound is not None and 2e-05 < bound < 8.3
    results = corrupted(world, "flip" + "-".join(flips))
    path = next((results / "runs").glob("t2t-*")) / "known.json"
    doc = json.loads(path.read_text())
    for row in doc["checks"]:
        if str(row["known_id"]) in flips:
            row["known"], row["margin"] = False, -1e-05
    path.write_text(json.dumps(doc))
    report = verify_synthetic(results, world["profile"])
    known = next(c for c in report.checks if c.check == "known_set" and c.arm == "t2t")
    assert known.verdict == verdict and known.tolerance == bound
    assert known.observed == pytest.approx(2e-05 if verdict == v.PASS else 8.3)
    if "71" in flips:
        assert "71 (margin +2e-05 -> -1e-05)" in known.detail
    assert "closest to flipping" in known.detail
    free = len(flips) - (verdict == v.FAIL)  # one wide flip (73) alone FAILs: the old count rule allowed it
    assert (f"{free} free, 0 at or above" if verdict == v.PASS else f"{free} free, 1 at or above it ['73']") \
        in known.detail
    assert all(c.verdict == v.PASS for c in report.checks if c.check == "traced_set")
    assert report.verdict == verdict


def test_known_flips_without_margins_fall_back_to_the_old_rule(world):
    """A profile recorded before margins were (no "margins" in known_ids.json) still loads: the regenerated margins
    judge the flips (two near ties: both free, beyond the old allowance of one); a run that recorded no margins
    either falls back to the old count rule, and the report says so."""
    profile = world["base"] / "expected-without-margins"
    if not profile.exists():
        shutil.copytree(world["profile"], profile)
        for arm in ("t2t", "s2t"):
            path = profile / arm / "known_ids.json"
            path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "margins"}))
    results = corrupted(world, "two-near-ties")
    path = next((results / "runs").glob("t2t-*")) / "known.json"
    doc = json.loads(path.read_text())
    for row in doc["checks"]:
        if row["known_id"] in (71, 73):
            row["known"], row["margin"] = False, -1e-05
    path.write_text(json.dumps(doc))
    known = next(c for c in verify_synthetic(results, profile).checks if c.check == "known_set" and c.arm == "t2t")
    assert known.verdict == v.PASS and "2 free, 0 at or above" in known.detail
    for row in doc["checks"]:
        row.pop("margin")
    path.write_text(json.dumps(doc))
    known = next(c for c in verify_synthetic(results, profile).checks if c.check == "known_set" and c.arm == "t2t")
    assert known.verdict == v.FAIL and known.observed == 2 and known.tolerance == 1
    assert "2 flip(s) without a recorded margin (runs from before margins were recorded): old rule" in known.detail


def test_incomplete_run_fails(world):
    """A run with a third of its traces missing: the traced-set check fails, the rest still compares."""
    results = corrupted(world, "incomplete")
    path = next((results / "runs").glob("t2t-*")) / "aggregate" / "group_effects.npz"
    with np.load(path) as data:
        arrays = {k: (data[k][:20] if data[k].ndim and data[k].shape[0] == 30 else data[k]) for k in data.files}
    np.savez(path, **arrays)
    report = verify_synthetic(results, world["profile"])
    traced = [c for c in report.checks if c.check == "traced_set" and c.arm == "t2t"]
    assert report.verdict == v.FAIL and traced and all(c.verdict == v.FAIL for c in traced)
    assert "missing" in traced[0].detail and "20 paired facts" in " ".join(c.detail for c in report.checks)


def test_other_model_settings_fail(world):
    results = corrupted(world, "model")
    path = next((results / "runs").glob("t2t-*")) / "settings.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": "spiritlm"}))
    report = verify_synthetic(results, world["profile"])
    settings = next(c for c in report.checks if c.check == "settings" and c.arm == "t2t")
    assert settings.verdict == v.FAIL and "another model" in settings.detail


def test_claims(world):
    results = corrupted(world, "claims")
    path = results / "comparison" / "comparison.json"
    doc = json.loads(path.read_text())
    want = doc["claims"]["C3"]["verdict"]
    assert want in ("supported", "not supported")
    opposite = "not supported" if want == "supported" else "supported"
    doc["claims"]["C3"]["verdict"] = opposite
    path.write_text(json.dumps(doc))
    report = verify_synthetic(results, world["profile"])
    claim = next(c for c in report.checks if c.group == "C3")
    assert report.verdict == v.FAIL and claim.verdict == v.FAIL and claim.observed == opposite
    assert "opposite verdicts" in claim.detail
    # ... even for a claim that flipped between calibration runs
    unstable = {**world["tolerances"], "claims": {"unstable": ["C3"]}}
    assert verify_synthetic(results, world["profile"], tolerances=unstable).verdict == v.FAIL
    # decided <-> inconclusive: reported (INFO), not judged
    doc["claims"]["C3"]["verdict"] = "inconclusive"
    path.write_text(json.dumps(doc))
    report = verify_synthetic(results, world["profile"])
    claim = next(c for c in report.checks if c.group == "C3")
    assert report.verdict == v.PASS and claim.verdict == v.INFO and "inconclusive" in claim.detail
    # the verdict function is a parameter
    report = verify_synthetic(world["fresh"], world["profile"], claims_fn=lambda _: {"C2": "supported"})
    assert {c.group for c in report.checks if c.check == "claim" and c.verdict == v.FAIL} == {"C3"}


def test_claim_statistics_are_banded_across_seeds(world, tmp_path):
    """issue 28 part 5: a claim condition's statistic is checked against a band calibrated from the replicates (a
    tolerance on the number, not only the verdict); profiles recorded before still load and say what they lack."""
    key = "C2/mlp/overall_peak_ratio"
    band = world["tolerances"]["claim_statistics"][key]
    assert band["value"] > 1 and band["scale"] > 0 and len(band["observed"]) == 6  # reference + 5 replicates
    recorded = json.loads((world["profile"] / "claims.json").read_text())["conditions"][key]
    assert recorded["operator"] == "<" and recorded["thresholds"] == [1.0]
    check = next(c for c in verify_synthetic(world["fresh"], world["profile"]).checks
                 if c.check == "claim_statistic")
    assert check.verdict == v.PASS and check.group == key and 0 <= check.observed <= check.tolerance
    # the statistic moves by 3 run-to-run spreads beyond its band, the verdict stays: FAIL on the number
    results = corrupted(world, "claim-statistic")
    path = results / "comparison" / "comparison.json"
    doc = json.loads(path.read_text())
    doc["claims"]["C2"]["conditions"][0]["value"] = recorded["value"] + (band["value"] + 3) * band["scale"]
    path.write_text(json.dumps(doc))
    report = verify_synthetic(results, world["profile"])
    assert failed(report) == {"claim_statistic"}
    assert next(c for c in report.checks if c.group == "C2" and c.check == "claim").verdict == v.PASS
    # an old profile: claims.json without conditions, tolerances without claim_statistics
    old = {k: val for k, val in world["tolerances"].items() if k != "claim_statistics"}
    report = verify_synthetic(world["fresh"], world["profile"], tolerances=old)
    assert report.verdict == v.PASS and "claim statistics" in report.skipped
    assert not any(c.check == "claim_statistic" for c in report.checks)


def test_unstable_claims_are_reported_not_judged(world):
    tolerances = {**world["tolerances"], "claims": {"unstable": ["C3"]}}
    report = verify_synthetic(world["fresh"], world["profile"],
                              claims_fn=lambda _: {"C2": "supported", "C3": "inconclusive"},
                              tolerances=tolerances)
    assert report.verdict == v.PASS
    assert next(c for c in report.checks if c.group == "C3").verdict == v.INFO


def test_selection_picks_the_run_folder(world):
    """Several run folders per arm: the one the pipeline's selection.json names is compared."""
    results = corrupted(world, "selection")
    t2t = next((results / "runs").glob("t2t-*"))
    stale = results / "runs" / "t2t-synthetic-old"
    shutil.copytree(t2t, stale)
    edit_effects_in(stale, lambda a: 0.5 * a)
    assert "several t2t run folders" in " ".join(c.detail for c in verify_synthetic(results, world["profile"]).checks)
    s2t = next((results / "runs").glob("s2t-*"))
    (results / "selection.json").write_text(json.dumps({"t2t_run": t2t.name, "s2t_run": s2t.name}))
    assert verify_synthetic(results, world["profile"]).verdict == v.PASS
    (results / "selection.json").write_text(json.dumps({"t2t_run": stale.name, "s2t_run": s2t.name}))
    assert "curve_band" in failed(verify_synthetic(results, world["profile"]))


def test_claims_only_profile_says_what_was_possible(world, tmp_path):
    """SpiritLM: a profile with only claims.json; the report names the skipped checks and why."""
    proc = run_cli("--record", str(tmp_path / "spiritlm"), "--results", str(world["ref"]), "--claims-only")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "spiritlm").iterdir()) == ["claims.json", "manifest.json"]
    assert run_cli("--record", str(tmp_path / "spiritlm"), "--results", str(world["ref"]),
                   "--claims-only").returncode == 2  # exists: --force needed
    proc = run_cli("--results", str(world["fresh"]), "--expected", str(tmp_path / "spiritlm"),
                   "--report", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stdout
    md = (tmp_path / "report" / "report.md").read_text()
    assert "claims (2 from claims.json)" in md and "holds no recorded curves" in md
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert set(report["skipped"]) == {"curves", "recomputation"}
    assert [c["verdict"] for c in report["checks"] if c["check"] == "settings"] == ["PASS", "PASS"]
    # the claims of another model's run are not taken for SpiritLM's
    results = corrupted(world, "claims-only-other-model")
    for path in (results / "runs").glob("*/settings.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "model": "embedded"}))
    report = verify_synthetic(results, tmp_path / "spiritlm")
    settings = next(c for c in report.checks if c.check == "settings")
    assert report.verdict == v.FAIL and "another model" in settings.detail


def test_record_refuses_without_tolerances(world, tmp_path):
    proc = run_cli("--record", str(tmp_path / "p"), "--results", str(world["ref"]))
    assert proc.returncode == 2 and "--calibrate-from" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_record_with_calibration_cli(world, tmp_path):
    """The one-liner: record a profile and calibrate it from replicates; then the fresh run passes it."""
    proc = run_cli("--record", str(tmp_path / "p"), "--results", str(world["ref"]),
                   "--calibrate-from", *map(str, world["reps"][:2]))
    assert proc.returncode == 0, proc.stderr
    assert "calibration verdict" in proc.stdout
    tol = json.loads((tmp_path / "p" / "tolerances.json").read_text())
    assert len(tol["runs"]) == 2 and tol["band"]["alpha"] == 0.05 and tol["leave_one_out"]["replicates"] == 2
    # --force replaces the profile: claims-only now, no stale curves left behind
    v.record_profile(world["ref"], tmp_path / "p", None, claims_only=True, force=True)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["claims.json", "manifest.json"]
    v.record_profile(world["ref"], tmp_path / "p", tol, force=True)
    proc = run_cli("--results", str(world["fresh"]), "--expected", str(tmp_path / "p"), "--report", str(tmp_path))
    assert proc.returncode == 0, proc.stdout


def test_usage_errors_exit_2(tmp_path):
    assert run_cli("--calibrate-from", str(tmp_path)).returncode == 2
    assert run_cli("--bogus").returncode == 2


def test_missing_results_and_tolerances(world, tmp_path):
    report = verify_synthetic(tmp_path / "nothing", world["profile"])
    assert report.verdict == v.FAIL and "missing results folder" in report.checks[0].detail
    profile = tmp_path / "p"
    shutil.copytree(world["profile"], profile)
    (profile / "tolerances.json").unlink()
    report = verify_synthetic(world["fresh"], profile)
    assert report.verdict == v.FAIL
    assert any(c.check == "tolerances" and "tolerances.json" in c.detail for c in report.checks)


def test_verification_imports_no_torch():
    code = "import sys, verify; import artifact.verification; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_statistics_units():
    assert v.known_changes({"1", "2"}, {"2", "3"}) == 2 and v.known_changes({"1"}, {"1"}) == 0
    assert np.isnan(v.pearson(np.ones(5), np.arange(5.0)))
    x, y = np.random.default_rng(1).normal(size=(2, 7, 9))
    x[2, :4] = np.nan
    assert np.allclose(v.pearson_rows(x, y), [v.pearson(a, b) for a, b in zip(x, y)])
    # the band: spread from pairs of runs (sqrt(2) x SD) moderated with its median over layers; a t multiplier that
    # shrinks with more runs
    pairs = [np.array([0.1, 0.0, 0.3]), np.array([-0.1, 0.0, 0.3])]
    assert np.allclose(v.band_scale(pairs) ** 2, [0.01, 0.005, (0.09 + 0.01) / 2])  # the agreeing layer: half prior
    assert np.allclose(v.band_scale([np.zeros(3)]), 1e-4)  # all runs agree everywhere: the numerics floor
    assert v.band_multiplier(6, 30) < v.band_multiplier(4, 30) and np.isnan(v.band_multiplier(1, 30))
    assert v.band_statistic(np.array([0.05, -0.01, 0.6]), np.array([0.1, 0.025, 0.3])) == (2.0, 2)


def test_recorded_profile_carries_no_machine_paths(world, tmp_path, monkeypatch):
    """A profile is committed: paths under the repository or the home folder are written portably."""
    import artifact.verification.profile

    # the synthetic runs live here, as results/ would
    monkeypatch.setattr(artifact.verification.profile, "_REPO_ROOT", str(world["base"]))
    v.record_profile(world["ref"], tmp_path / "p", world["tolerances"], force=True)
    text = "".join(p.read_text() for p in (tmp_path / "p").rglob("*.json"))
    assert str(world["base"]) not in text and "./ref" in text


def test_a_profile_recorded_from_another_checkout_carries_no_machine_paths(world, tmp_path):
    """Results run by another checkout of the code (a worktree): its root is written as '.' too."""
    other = tmp_path / "other-checkout"
    (other / "artifact").mkdir(parents=True)
    (other / "expected").mkdir()
    shutil.copytree(world["ref"], other / "results" / "ref")
    v.record_profile(other / "results" / "ref", tmp_path / "p", world["tolerances"], force=True)
    text = "".join(p.read_text() for p in (tmp_path / "p").rglob("*.json"))
    assert str(other) not in text and "./results/ref" in text


def _edit_manifest(results: Path, **changes) -> None:
    path = results / "manifest.json"
    doc = json.loads(path.read_text())
    for dotted, value in changes.items():
        target = doc
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("change, named", [
    ({"model_name": "embedded"}, "another model"),
    ({"facts_fingerprint": "e" * 64}, "facts_fingerprint"),
    ({"settings__profile__samples": 2}, "profile.samples"),
    ({"settings__profile__name": "standard"}, "profile.name"),
    ({"model__s2t__weights__sha256": "cd" * 32}, "weights_sha256"),
])
def test_identity_is_checked_first(world, change, named):
    """Another model, fact file, profile or weights: FAIL, whatever the curves say; seed and batch size may differ."""
    results = corrupted(world, "identity-" + "-".join(change))
    _edit_manifest(results, **change)
    report = verify_synthetic(results, world["profile"])
    assert report.checks[0].check == "identity"
    assert report.verdict == v.FAIL and report.checks[0].verdict == v.FAIL and named in report.checks[0].detail


def test_identity_passes_for_a_replicate_and_fails_for_a_profile_without_one(world, tmp_path):
    report = verify_synthetic(world["fresh"], world["profile"])  # seed 7, batch 32: another replicate
    assert report.checks[0].check == "identity" and report.checks[0].verdict == v.PASS
    old = tmp_path / "old-profile"
    shutil.copytree(world["profile"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["identity"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    report = verify_synthetic(world["fresh"], old)
    assert report.verdict == v.FAIL and "records no identity" in report.checks[0].detail


def _edit_array(results: Path, arm: str, key: str, fn) -> None:
    path = next((results / "runs").glob(f"{arm}-*")) / "aggregate" / "group_effects.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = fn(arrays[key].copy())
    np.savez(path, **arrays)


def _shift_group(group: str, by: float):
    def fn(a):
        a[:, GROUPS.index(group), :] += by
        return a
    return fn


@pytest.mark.parametrize("arm, key, fn, group", [
    ("s2t", "mlp_prob", _shift_group("last_subject", 0.1), "last_subject"),
    ("t2t", "mlp_logprob", lambda a: 0.5 * a, None),  # log-prob effects halved: prob alone never saw it
])
def test_both_metrics_are_banded(world, arm, key, fn, group):
    results = corrupted(world, f"banded-{arm}-{key}-{group}")
    _edit_array(results, arm, key, fn)
    report = verify_synthetic(results, world["profile"])
    kind, metric = key.split("_")
    bad = [c for c in report.checks if c.verdict == v.FAIL and c.check == "curve_band"]
    assert report.verdict == v.FAIL and bad
    assert all((c.arm, c.kind, c.metric) == (arm, kind, metric) for c in bad)
    if group is not None:
        assert {c.group for c in bad} == {group}


@pytest.mark.parametrize("group", ["further", "first_subsequent", "middle_subject"])
def test_a_moved_weak_group_fails_a_same_seed_rerun(world, tmp_path, group):
    """The weak groups are checked cell by cell in the same-seed tier (a reviewer's default rerun)."""
    rerun = make_results(tmp_path / "same", seed=1, batch_size=128)  # the reference's noise
    tolerances = {**world["tolerances"], "same_seed": {"value": 1e-4}}
    assert verify_synthetic(rerun, world["profile"], tolerances=tolerances).verdict == v.PASS
    _edit_array(rerun, "s2t", "mlp_prob", _shift_group(group, 0.1))
    report = verify_synthetic(rerun, world["profile"], tolerances=tolerances)
    bad = [c for c in report.checks if c.verdict == v.FAIL]
    assert report.verdict == v.FAIL and {(c.check, c.arm, c.kind, c.metric) for c in bad} == {
        ("same_seed_cells", "s2t", "mlp", "prob")} and f"group {group}" in bad[0].detail


def _float_noise(scale: float, seed: int):
    """What another thread count or device does to a same-seed rerun: last-digit differences."""
    rng = np.random.default_rng(seed)
    return lambda a: a + rng.uniform(-scale, scale, a.shape)


def test_same_seed_tier_judges_every_cell(world, tmp_path):
    """A rerun with the reference's seed drew the same noise, whatever its batch size: judged cell by cell (1e-4
    here, the floor), so a 0.01 change of one fact's cell FAILs although the other-seed tolerances would let it
    pass."""
    same = make_results(tmp_path / "same-a", seed=1, batch_size=128)  # the reference's seed and batch
    for arm in ("t2t", "s2t"):
        edit_effects(same, arm, _float_noise(2e-7, 1))
    tolerances = {**world["tolerances"], "same_seed": v.calibrate_same_seed([same], world["ref"], ("prob",))}
    assert tolerances["same_seed"]["value"] == 1e-4  # 1.5 x 2e-7 is below the floor
    assert 0 < max(tolerances["same_seed"]["observed"].values()) <= 2e-7
    rerun = make_results(tmp_path / "same-b", seed=1, batch_size=48)  # another batch size: the same noise
    for arm in ("t2t", "s2t"):
        edit_effects(rerun, arm, _float_noise(3e-6, 2))
    report = verify_synthetic(rerun, world["profile"], tolerances=tolerances)
    assert report.verdict == v.PASS and report.possible[0].startswith("tier: same-seed")
    cells = [c for c in report.checks if c.check == "same_seed_cells"]
    assert len(cells) == 2 * 3 * len(tolerances["metrics"]) and all(c.verdict == v.PASS for c in cells)

    def one_cell(a):
        a[0, GROUPS.index("last_subject"), 5] += 0.01
        return a
    edit_effects(rerun, "t2t", one_cell)
    report = verify_synthetic(rerun, world["profile"], tolerances=tolerances)
    bad = [c for c in report.checks if c.verdict == v.FAIL]
    assert report.verdict == v.FAIL and {c.check for c in bad} == {"same_seed_cells"}
    assert "group last_subject, layer 5" in bad[0].detail
    # another seed: the other-seed tier, and the report says why
    report = verify_synthetic(world["fresh"], world["profile"], tolerances=tolerances)
    assert report.possible[0].startswith("tier: other-seed (the run used another noise seed")
    assert not [c for c in report.checks if c.check == "same_seed_cells"]


def test_same_seed_tolerance_is_per_metric(world, tmp_path):
    """With a float64 bound the same-seed tolerance is per metric (issue 25, finding 8): log P rounds worse than P
    (numerics.py), so P's cells are held to their own, tighter bound. A rerun whose prob cells moved by 5e-5 FAILs
    on prob alone, though 5e-5 is within the log-prob tolerance; the log-prob cells moved as much PASS."""
    rerun = make_results(tmp_path / "same", seed=1, batch_size=128)
    tolerances = {**world["tolerances"], "same_seed": {"value": 4e-4, "metrics": {"prob": 3e-5, "logprob": 4e-4}}}
    assert verify_synthetic(rerun, world["profile"], tolerances=tolerances).verdict == v.PASS
    for key in ("mlp_prob", "mlp_logprob"):
        _edit_array(rerun, "t2t", key, lambda a: a + 5e-5)
    report = verify_synthetic(rerun, world["profile"], tolerances=tolerances)
    bad = [c for c in report.checks if c.verdict == v.FAIL]
    assert report.verdict == v.FAIL and {(c.check, c.arm, c.kind, c.metric) for c in bad} == {
        ("same_seed_cells", "t2t", "mlp", "prob")}, v.render_table(report)
    assert bad[0].tolerance == 3e-5
    assert "3e-05 (prob), 0.0004 (logprob)" in report.possible[0]


def test_same_seed_calibration_refuses_another_seed(world):
    with pytest.raises(v.VerifyError, match="not a same-seed rerun"):
        v.calibrate_same_seed([world["fresh"]], world["ref"], ("prob",))


def test_a_same_seed_only_profile_judges_cells_and_refuses_other_seeds(world, tmp_path):
    """A profile too costly to replicate borrows the same-seed tier of another profile: a same-seed rerun PASSes
    cell by cell (the other-seed statistics are listed as not possible), another seed FAILs with what to do."""
    rerun = make_results(tmp_path / "rerun", seed=1, batch_size=128)  # the synthetic noise depends on the seed only
    donor = tmp_path / "expected" / "donor"
    v.record_profile(world["ref"], donor, {**world["tolerances"],
                                           "same_seed": v.calibrate_same_seed([rerun], world["ref"], ("prob",))})
    borrowed = v.borrow_same_seed_tier(donor)
    assert "borrowed from donor" in borrowed["same_seed"]["how_chosen"]
    assert set(borrowed["entries"]) == {"t2t/known_set", "s2t/known_set"}
    proc = run_cli("--record", str(tmp_path / "expected" / "bigger"), "--results", str(world["ref"]),
                   "--same-seed-tier-from", str(donor))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = verify_synthetic(rerun, tmp_path / "expected" / "bigger")
    assert report.verdict == v.PASS, v.render_table(report)
    assert "no other-seed calibration" in report.possible[0] and "other-seed statistics" in report.skipped
    assert not any(c.check == "curve_band" for c in report.checks)
    other = verify_synthetic(world["fresh"], tmp_path / "expected" / "bigger")
    tier = [c for c in other.checks if c.check == "tier"]
    assert other.verdict == v.FAIL and tier and "rerun without --seed" in tier[0].detail
    no_tier = run_cli("--record", str(tmp_path / "expected" / "none"), "--results", str(world["ref"]),
                      "--same-seed-tier-from", str(world["profile"]))
    assert no_tier.returncode == 2 and "no same-seed tier to borrow" in no_tier.stderr


def test_recorded_profiles_carry_no_machine_paths(tmp_path):
    """A run made from another checkout than the recording one: its paths (command, model files in that checkout's
    .venv) become relative too."""
    import json

    from artifact.verification.profile import code_root_of, portable

    (tmp_path / "manifest.json").write_text(json.dumps({"command": ["/elsewhere/co/artifact/__main__.py", "pipeline"]}))
    root = code_root_of(tmp_path)
    assert root == "/elsewhere/co"
    assert portable({"model": "/elsewhere/co/.venv/lib/m.gguf", "argv": ["/elsewhere/co/artifact/__main__.py"]},
                     (root,)) == {"model": "./.venv/lib/m.gguf", "argv": ["./artifact/__main__.py"]}
    (tmp_path / "manifest.json").write_text(json.dumps({"command": ["python"]}))
    assert code_root_of(tmp_path) is None
