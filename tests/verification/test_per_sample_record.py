"""Recording a profile from its reference's own noise samples (issue 28, part 7): `verify.py --record ...
--other-seed-from-samples --same-seed-tier-from PROFILE` stores no replicate calibration, carries the same-seed tier
over from PROFILE (saying so), and verify then judges another seed by the noise_band checks alone; a reference
without usable per-sample effects is refused with one line naming what is missing.

Synthetic results folders as in test_verify.py, with per-sample effects: sample s of a run is one noise draw shared
by every fact (as a per-sample stream is), plus per-fact noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact import verification as v
from artifact.core.names import GROUPS
from artifact.verification.per_sample import fewest_samples
from tests.verification.test_verify import KINDS, KNOWN, TRUTH, claims_of, truth_maps

REPO = Path(__file__).resolve().parents[2]
SAMPLES = 5


def make_run(root: Path, seed: int, samples: int = SAMPLES, streams: str = "per_sample",
             shift: float = 0.0, run_effect: float = 0.0) -> Path:
    """A results folder whose aggregates keep per-sample effects [fact, sample, group, layer] (their means are the
    per-fact effects); `shift` adds to the T->T MLP curve at the last subject token, layer 5, in every sample;
    `run_effect` (x the kind's amplitude) is the size of a per-run offset of every cell that the run's own samples
    cannot see (what would make the within-run variance under-predict another seed's)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    effects_of = {}
    for arm in ("t2t", "s2t"):
        run = root / "runs" / f"{arm}-synthetic-{seed:04d}"
        (run / "aggregate").mkdir(parents=True)
        settings = {"arm": arm, "model": "synthetic", "dtype": "torch.float32", "device": "cpu",
                    "facts_fingerprint": "f" * 64, "noise_spec": "3sigma", "noise": 0.35, "samples": samples,
                    "window": 10, "seed": seed, "batch_size": 128, "noise_streams": streams, "positions": "all"}
        (run / "settings.json").write_text(json.dumps(settings))
        checks = [{"known_id": i, "known": i in KNOWN[arm], "margin": 1.0 if i in KNOWN[arm] else -1.0}
                  for i in range(80)]
        (run / "known.json").write_text(json.dumps({"rule": "synthetic", "checks": checks}))
        arrays: dict[str, np.ndarray] = {}
        for kind in KINDS:
            ids, maps = truth_maps(arm, kind)
            amp = TRUTH[arm][kind][1]
            shared = rng.normal(0, 0.3 * amp, (1, samples, *maps.shape[1:]))  # one draw per sample, every fact
            per_sample = maps[:, None] + shared + rng.normal(0, 0.3 * amp, (maps.shape[0], samples, *maps.shape[1:]))
            per_sample += rng.normal(0, run_effect * amp + 1e-300, (1, 1, *maps.shape[1:]))
            if arm == "t2t" and kind == "mlp":
                per_sample[:, :, GROUPS.index("last_subject"), 5] += shift
            for metric, scale in (("prob", 1.0), ("logprob", 5.0)):
                arrays[f"{kind}_{metric}_per_sample"] = scale * per_sample
                arrays[f"{kind}_{metric}"] = scale * per_sample.mean(axis=1)
            arrays[f"{kind}_known_ids"] = np.asarray(ids)
        np.savez(run / "aggregate" / "group_effects.npz", **arrays)
        effects_of[arm] = arrays
    (root / "comparison").mkdir()
    (root / "comparison" / "comparison.json").write_text(json.dumps({"claims": claims_of(effects_of)}))
    (root / "manifest.json").write_text(json.dumps({
        "model_name": "synthetic", "profile": "smoke", "facts_fingerprint": "f" * 64,
        "command": [str(REPO / "artifact" / "__main__.py"), "pipeline", "--out", str(root)],
        "settings": {"profile": {"name": "smoke", "facts": "own", "samples": samples, "window": 10, "count": 12}},
        "model": {arm: {"spec": "synthetic", "weights": {"path": "/tmp/w", "sha256": "ab" * 32}}
                  for arm in ("t2t", "s2t")}}))
    return root


def old_profile(root: Path) -> Path:
    """An earlier recording of the profile (2 samples, ROME's stream) with a float64-based same-seed tier."""
    root.mkdir(parents=True)
    (root / "t2t").mkdir()
    (root / "t2t" / "settings.json").write_text(json.dumps({"arm": "t2t", "seed": 1, "samples": 2}))
    (root / "manifest.json").write_text(json.dumps({"recorded_at": "2026-11-30T10:00:00+00:00"}))
    same_seed = {"value": 4.4e-4, "metrics": {"prob": 4.2e-5, "logprob": 4.4e-4},
                 "float64": {"bound": {"prob": 1.04e-5, "logprob": 1.09e-4}}, "how_chosen": "the float64 bound"}
    known = {f"{arm}/known_set": {"changed": {"value": 1, "how_chosen": "the floor of 1"}} for arm in ("t2t", "s2t")}
    (root / "tolerances.json").write_text(json.dumps({
        "format": 1, "metrics": ["prob", "logprob"], "groups": ["last_subject", "last"], "same_seed": same_seed,
        "entries": {**known, "t2t/mlp/prob/last": {"band": {"value": 6.1}}}}))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("per-sample")
    ref = make_run(base / "ref", seed=1)
    source = old_profile(base / "old")
    tolerances = v.per_sample_tolerances(ref, source)
    profile = base / "expected" / "synthetic-smoke"
    v.record_profile(ref, profile, tolerances)
    return {"base": base, "ref": ref, "source": source, "profile": profile, "tolerances": tolerances}


def test_the_same_seed_tier_is_carried_over_and_said_so(world):
    tolerances = json.loads((world["profile"] / "tolerances.json").read_text())
    same_seed = tolerances["same_seed"]
    assert same_seed["metrics"] == {"prob": 4.2e-5, "logprob": 4.4e-4}  # not re-measured, not invented
    assert same_seed["how_chosen"].startswith("carried over, not re-measured, from old as recorded "
                                              "2026-11-30T10:00:00+00:00 (reference seed 1, 2 noise samples, 'rome'")
    assert "not of the noise draw" in same_seed["how_chosen"] and "the float64 bound" in same_seed["how_chosen"]
    known = tolerances["entries"]["t2t/known_set"]["changed"]
    assert known["value"] == 1 and known["how_chosen"].startswith("carried over from old")
    assert set(tolerances["entries"]) == {"t2t/known_set", "s2t/known_set"}  # no replicate bands carried over
    assert tolerances["known_margins"]["float32"]["bound"] == 8.77e-05
    assert tolerances["other_seed"]["method"] == "noise_band" and tolerances["other_seed"]["samples"] == SAMPLES
    assert "other-seed tier from the reference's own 5 per-sample noise streams" in tolerances["verdict"]


def test_the_reference_passes_the_same_seed_tier(world):
    report = v.verify(world["ref"], world["profile"], recompute=False)
    assert report.verdict == v.PASS, v.render_table(report)
    assert any(c.check == "same_seed_cells" for c in report.checks)
    assert report.possible[0].startswith("tier: same-seed")
    # the profile does judge another seed (from its noise samples): said so, not "no other-seed calibration"
    assert "other-seed tier, from its noise samples, is for runs with another seed" in report.possible[0]
    assert "comes from its own noise samples" in report.skipped["other-seed statistics"]


def test_another_seed_is_judged_by_the_noise_samples_and_a_shift_fails(world):
    report = v.verify(make_run(world["base"] / "seed2", seed=2), world["profile"], recompute=False)
    bands = [c for c in report.checks if c.check == "noise_band"]
    assert report.verdict == v.PASS, v.render_table(report)
    assert len(bands) == 2 * 3 * 2 * 2 and all(c.verdict == v.PASS for c in bands)  # arms x kinds x metrics x groups
    assert not any(c.check == "tier" for c in report.checks)
    # every statistical check, the claims' statistics too, is judged in the family from the runs' own samples
    statistics = [c for c in report.checks if c.check == "claim_statistic"]
    assert statistics and all(c.verdict == v.PASS for c in statistics)
    assert "no double judging" in report.skipped["replicate-calibrated statistics"]
    assert report.possible[0].startswith("tier: other-seed (the run used another noise seed than the reference): "
                                         "every statistical check judged together from the runs' own noise samples")
    shifted = v.verify(make_run(world["base"] / "shifted", seed=3, shift=0.1), world["profile"], recompute=False)
    failed = [(c.arm, c.kind, c.metric, c.group) for c in shifted.checks if c.verdict == v.FAIL]
    assert shifted.verdict == v.FAIL and ("t2t", "mlp", "prob", "last_subject") in failed


def test_fewest_samples_is_where_the_exact_test_can_reject():
    assert fewest_samples(0.05) == 4  # 2 / C(8, 4) = 0.029; at 3 samples 2 / C(6, 3) = 0.1


@pytest.mark.parametrize("kwargs, needle", [
    (dict(streams="rome"), "its t2t run drew its noise from 'rome' streams, so its noise samples are not independent "
                           "draws: trace the profile with --noise-streams per_sample"),
    (dict(samples=3), "its t2t hidden effects have 3 noise samples; the exact test between two runs needs at least "
                      "4 to be able to reject at 0.05"),
])
def test_a_reference_without_usable_noise_samples_is_refused(world, kwargs, needle, tmp_path):
    ref = make_run(tmp_path / "ref", seed=1, **kwargs)
    done = subprocess.run([sys.executable, str(REPO / "verify.py"), "--record", str(tmp_path / "profile"),
                           "--results", str(ref), "--other-seed-from-samples", "--same-seed-tier-from",
                           str(world["source"])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and needle in done.stderr and "--calibrate-from" in done.stderr
    assert not (tmp_path / "profile").exists()


def test_a_reference_aggregated_without_per_sample_effects_is_refused(tmp_path):
    ref = make_run(tmp_path / "ref", seed=1)
    for path in ref.glob("runs/*/aggregate/group_effects.npz"):
        with np.load(path) as data:
            kept = {k: data[k] for k in data.files if not k.endswith("_per_sample")}
        np.savez(path, **kept)
    with pytest.raises(v.VerifyError, match="keeps no per-sample hidden prob effects"):
        v.per_sample_tolerances(ref, old_profile(tmp_path / "old"))


def test_the_cli_needs_a_profile_to_carry_the_same_seed_tier_from(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "verify.py"), "--record", str(tmp_path / "p"), "--results",
                           str(tmp_path), "--other-seed-from-samples"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--other-seed-from-samples needs --same-seed-tier-from PROFILE" in done.stderr


def test_a_run_made_outside_the_checkout_leaves_no_machine_path_in_the_profile(world):
    """The reference lies under a temporary folder (as a run in /scratch would): its path, as given and as the
    manifest's command names it after --out, becomes "<results>"; the checkout's own paths become "."."""
    texts = {p.name: p.read_text() for p in world["profile"].rglob("*.json")}
    assert not [name for name, text in texts.items() if str(world["base"]) in text or str(REPO) in text]
    manifest = json.loads(texts["manifest.json"])
    assert manifest["source"] == "<results>"
    assert manifest["run_manifest"]["command"] == ["./artifact/__main__.py", "pipeline", "--out", "<results>"]
