"""One family-wise false-FAIL rate over every other-seed statistical check (family.py, issue 28 part 4).

Synthetic runs stand in for real ones: fixed per-fact maps per arm and kind, and per noise sample a shared draw that
moves every fact, kind, metric and group of that sample together (smooth over layers), plus per-fact noise, as one
noise stream per sample does in a real run. Honest pairs (two independent runs of the same facts) must FAIL the whole
family at most at its 5% rate; a curve scaled by 0.5, a peak moved by 3 layers, facts attached to the wrong ids and a
flipped claim must each FAIL; verify() uses the family end to end when both sides kept per-sample effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from artifact import verification as v
from artifact.core.names import GROUPS
from artifact.verification.family import Statistic, judge, merge_claims
from artifact.verification.family_inputs import family_checks, family_samples
from artifact.verification.load import ArmData
from artifact.verification.records import FAIL, INFO, PASS, SKIP, Check

LAYERS, FACTS = 12, 10
KINDS = ("hidden", "mlp", "attn")
METRICS = ("prob", "logprob")
BAND_GROUPS = ("last_subject", "last")
AMPLITUDE = {"t2t": 0.30, "s2t": 0.10}
PEAK = {"hidden": 4, "mlp": 5, "attn": 7}


def truth(arm: str, kind: str) -> np.ndarray:
    """[fact, group, layer] noise-free effects of one arm and kind (the same in every run)."""
    rng = np.random.default_rng(100 + KINDS.index(kind) + 10 * (arm == "s2t"))
    layers = np.arange(LAYERS)
    shape = np.exp(-0.5 * ((layers - PEAK[kind]) / (1.5 if arm == "t2t" else 2.5)) ** 2)
    weights = np.array([0.3, 0.4, 1.0, 0.6, 0.2, 0.8])[:, None]
    maps = AMPLITUDE[arm] * weights * shape * rng.lognormal(0, 0.3, (FACTS, 1, 1))
    maps = maps + 0.05 * AMPLITUDE[arm] * rng.normal(size=maps.shape) * 3  # each fact's own texture
    maps[::3, GROUPS.index("middle_subject")] = np.nan  # one-token subjects
    return maps


def run_samples(rng: np.random.Generator, S: int = 5) -> dict[str, dict[str, np.ndarray]]:
    """{arm: {"<kind>_<metric>": [fact, sample, group, layer]}} of one run with noise correlated over layers, facts,
    kinds, metrics and groups through one shared draw per sample."""
    shared = np.cumsum(rng.normal(size=(S, len(GROUPS), LAYERS)), axis=-1) / np.sqrt(LAYERS)  # smooth over layers
    out: dict[str, dict[str, np.ndarray]] = {}
    for arm in ("t2t", "s2t"):
        out[arm] = {}
        for kind in KINDS:
            base = truth(arm, kind)
            for m, metric in enumerate(METRICS):
                noise = 0.15 * AMPLITUDE[arm] * (shared[None] * (1 + 0.3 * m)
                                                 + rng.normal(size=(FACTS, S, len(GROUPS), LAYERS)))
                x = (base[:, None] + noise) * (1 if metric == "prob" else 4)
                out[arm][f"{kind}_{metric}"] = x
    return out


def arm_data(arm: str, samples: dict[str, np.ndarray], seed: int = 1) -> ArmData:
    ids = [str(i) for i in range(FACTS)]
    effects = {name: np.nanmean(x, axis=1) if np.isfinite(x).any() else x[:, 0] for name, x in samples.items()}
    return ArmData(arm, Path("."), {"seed": seed, "noise_streams": "per_sample"}, ids, effects,
                   {k: ids for k in KINDS}, samples=samples)


def judged(regen: dict, expected: dict, claims: bool = True) -> list[Check]:
    arms = {arm: (arm_data(arm, regen[arm], 2), arm_data(arm, expected[arm], 1)) for arm in ("t2t", "s2t")}
    samples, why = family_samples(arms)
    assert samples is not None, why
    return family_checks(arms, METRICS, BAND_GROUPS, BAND_GROUPS, samples, claims=claims)


def fails(checks: list[Check]) -> list[tuple]:
    return [(c.check, c.arm, c.kind, c.metric, c.group) for c in checks if c.verdict == FAIL]


@pytest.mark.slow
def test_honest_pairs_fail_the_whole_family_at_most_at_its_rate():
    rng = np.random.default_rng(28)
    runs = 200
    failing = sum(bool(fails(judged(run_samples(rng), run_samples(rng)))) for _ in range(runs))
    # nominal at most 12/252 = 4.8% over every check together (96 checks); binomial sd at 200 pairs is 1.5%: allow
    # 2 sd (measured: 9 of these 200 pairs FAIL, 4.5%; 13 of 300 with the same seed, expected/README.md)
    assert failing / runs <= 0.08, failing


def test_every_kind_of_check_is_in_the_family_and_each_shows_its_p_values():
    checks = judged(run_samples(np.random.default_rng(1)), run_samples(np.random.default_rng(2)))
    kinds = {c.check for c in checks}
    assert kinds == {"noise_band", "curve_correlation", "peak_layer", "fact_correlation", "claim_statistic"}
    # 2 arms x 3 kinds x 2 metrics x (2 bands, 2 correlations, 2 peaks, 1 fact map) + 12 claim conditions
    assert len(checks) == 12 * 7 + 12
    in_family = [c for c in checks if "critical z " in c.detail]
    critical = {c.detail.split("critical z ")[1].split(" ")[0] for c in in_family}
    assert len(critical) == 1  # one critical value for the whole family
    assert len([c for c in in_family if c.verdict in (PASS, FAIL)]) >= 0.75 * len(checks)
    assert all("(own)" in c.detail and "(family-adjusted)" in c.detail for c in in_family if c.verdict != SKIP)
    # a sharp peak that no split of the samples moves PASSes, saying so (not in the family's maximum)
    assert all(c.verdict == PASS for c in checks if c not in in_family)


def _mutated(mutate) -> list[Check]:
    rng = np.random.default_rng(5)
    expected, regen = run_samples(rng), run_samples(rng)
    mutate(regen)
    return judged(regen, expected)


def test_a_curve_scaled_by_half_fails():
    def scale(run):
        for metric in METRICS:
            run["t2t"][f"mlp_{metric}"] *= 0.5
    failed = fails(_mutated(scale))
    assert ("noise_band", "t2t", "mlp", "prob", "last_subject") in failed, failed


def test_a_peak_moved_by_three_layers_fails():
    def roll(run):
        for metric in METRICS:
            run["t2t"][f"mlp_{metric}"] = np.roll(run["t2t"][f"mlp_{metric}"], 3, axis=-1)
    failed = fails(_mutated(roll))
    assert failed and {f[1:3] for f in failed} == {("t2t", "mlp")}, failed  # the moved curves' checks, no other
    assert ("noise_band", "t2t", "mlp", "prob", "last_subject") in failed, failed


def test_facts_attached_to_the_wrong_ids_fail():
    def derange(run):
        for kind in KINDS:
            for metric in METRICS:
                run["t2t"][f"{kind}_{metric}"] = np.roll(run["t2t"][f"{kind}_{metric}"], 1, axis=0)
    failed = fails(_mutated(derange))
    assert failed and {f[0] for f in failed} == {"fact_correlation"}, failed  # AIE curves and claims do not move
    assert all(f[1] == "t2t" for f in failed), failed


def test_a_flipped_claim_fails_and_a_flip_within_the_noise_is_info():
    def louder_speech(run):  # S->T's peak above T->T's: C2's "lower" flips
        for name in run["s2t"]:
            run["s2t"][name] *= 4
    checks = _mutated(louder_speech)
    failed = fails(checks)
    assert ("claim_statistic", None, None, None, "C2/mlp/overall_peak_ratio") in failed, failed
    verdicts = [Check("claim", FAIL, group="C2", observed="not supported", expected="supported", tolerance="equal",
                      detail="opposite verdicts")]
    assert merge_claims(verdicts, checks)[0].verdict == FAIL
    honest = judged(run_samples(np.random.default_rng(8)), run_samples(np.random.default_rng(9)))
    merged = merge_claims(verdicts, honest)[0]
    assert merged.verdict == INFO and "within the noise" in merged.detail


def test_a_check_that_cannot_fail_says_skip():
    flat = Statistic("peak_layer", {"group": "last"}, np.zeros(70), "argmax", shown="peak",
                     layers=np.zeros((70, 2), dtype=int), bound=11)
    bounded = Statistic("curve_correlation", {"group": "last_subject"}, np.r_[0.0, np.linspace(0, 1.9, 69)],
                        "r", shown="correlation", bound=2.0)
    rng = np.random.default_rng(0)
    moving = Statistic("noise_band", {"group": "last"}, rng.normal(size=70) ** 2, "t")
    undefined = Statistic("curve_correlation", {"group": "last"}, np.full(70, np.nan), "r", shown="correlation",
                          bound=2.0)
    checks = judge([flat, bounded, moving, undefined])
    assert [c.verdict for c in checks] == [PASS, SKIP, PASS, SKIP]
    assert "the same value 0 under every one of the 70 splits" in checks[0].detail  # a peak no split moves
    assert "largest value the statistic can take (2)" in checks[1].detail
    assert "undefined" in checks[3].detail


def test_too_few_samples_keep_the_replicate_checks_with_the_reason():
    rng = np.random.default_rng(3)
    regen, expected = run_samples(rng, S=3), run_samples(rng, S=3)
    arms = {arm: (arm_data(arm, regen[arm]), arm_data(arm, expected[arm])) for arm in ("t2t", "s2t")}
    samples, why = family_samples(arms)
    assert samples is None and "smallest p-value of the exact test is 0.1" in why


# ------------------------------------------------------------------------------------------ verify, end to end


def _write_run(root: Path, seed: int, samples: dict[str, dict[str, np.ndarray]], verdict: str = "supported") -> Path:
    """A results folder in run_all.sh's layout holding the synthetic per-sample effects."""
    for arm in ("t2t", "s2t"):
        run = root / "runs" / f"{arm}-synthetic-{seed:04d}"
        (run / "aggregate").mkdir(parents=True)
        settings = {"arm": arm, "model": "synthetic", "dtype": "torch.float32", "device": "cpu",
                    "facts_fingerprint": "f" * 64, "noise_spec": "3sigma", "noise": 0.35, "samples": 5,
                    "window": 10, "seed": seed, "batch_size": 64, "positions": "all", "noise_streams": "per_sample"}
        (run / "settings.json").write_text(json.dumps(settings))
        (run / "known.json").write_text(json.dumps({"rule": "synthetic", "checks": [
            {"known_id": i, "known": True, "margin": 1.0} for i in range(FACTS)]}))
        arrays = {"groups": np.asarray(GROUPS)}
        for kind in KINDS:
            arrays[f"{kind}_known_ids"] = np.arange(FACTS)
            for metric in METRICS:
                x = samples[arm][f"{kind}_{metric}"]
                arrays[f"{kind}_{metric}"] = np.mean(x, axis=1)
                arrays[f"{kind}_{metric}_per_sample"] = x
        np.savez(run / "aggregate" / "group_effects.npz", **arrays)
    (root / "comparison").mkdir()
    (root / "comparison" / "comparison.json").write_text(json.dumps({"metric": "prob", "claims": {
        "C2": {"set": "both", "claim": "S->T: lower.", "rule": "toy", "verdict": verdict, "conditions": []}}}))
    (root / "manifest.json").write_text(json.dumps({
        "model_name": "synthetic", "profile": "smoke", "facts_fingerprint": "f" * 64,
        "settings": {"profile": {"name": "smoke", "facts": "own", "samples": 5, "window": 10, "count": 12,
                                 "seed": seed, "batch_size": 64}},
        "model": {arm: {"spec": "synthetic", "weights": {"path": f"/tmp/{seed}", "sha256": "ab" * 32}}
                  for arm in ("t2t", "s2t")}}))
    return root


def test_verify_judges_an_other_seed_run_with_the_family_alone(tmp_path):
    rng = np.random.default_rng(12)
    reference = _write_run(tmp_path / "ref", 1, run_samples(rng))
    profile = tmp_path / "expected"
    v.record_profile(reference, profile, {})
    honest = v.verify(_write_run(tmp_path / "other", 2, run_samples(rng)), profile, recompute=False)
    assert honest.verdict == PASS, [c.to_dict() for c in honest.checks if c.verdict == FAIL]
    names = {c.check for c in honest.checks}
    assert {"noise_band", "peak_layer", "fact_correlation", "claim_statistic", "known_set", "traced_set"} <= names
    assert "curve_band" not in names  # the replicate-calibrated checks are not run beside the family
    assert "replicate-calibrated statistics" in honest.skipped
    assert "every statistical check judged together" in honest.possible[0]
    louder = run_samples(rng)
    for name in louder["s2t"]:
        louder["s2t"][name] *= 4
    flipped = v.verify(_write_run(tmp_path / "flipped", 3, louder, verdict="not supported"), profile,
                       recompute=False)
    claim = next(c for c in flipped.checks if c.check == "claim")
    assert flipped.verdict == FAIL and claim.verdict == FAIL and "beyond the runs' own noise" in claim.detail


def test_the_claims_conditions_are_computed_as_the_comparison_computes_them():
    from artifact.analysis.claims import condition_key, verdicts_for_set
    from artifact.analysis.compare import compare_arrays
    from artifact.verification.family import condition_values, subsequent_is_last

    run = run_samples(np.random.default_rng(4))
    last_is_next = np.zeros(FACTS, dtype=bool)
    last_is_next[[1, 4]] = True  # two facts whose first subsequent token is the last token
    for arm in run:
        for x in run[arm].values():
            x[last_is_next, :, GROUPS.index("first_subsequent")] = x[last_is_next, :, GROUPS.index("last")]
    sides = {}
    for arm in ("t2t", "s2t"):
        for kind in KINDS:
            x = run[arm][f"{kind}_prob"]
            assert subsequent_is_last(x).tolist() == last_is_next.tolist()
            sides.setdefault(arm, {})[kind] = (x.mean(axis=1)[None], last_is_next)
    sides["both_t2t"], sides["both_s2t"] = sides["t2t"], sides["s2t"]
    ours = condition_values(sides)
    results = {kind: compare_arrays(run["t2t"][f"{kind}_prob"].mean(axis=1), run["s2t"][f"{kind}_prob"].mean(axis=1),
                                    True, n_resamples=50, kind=kind, t2t_subsequent_is_last=last_is_next,
                                    s2t_subsequent_is_last=last_is_next) for kind in KINDS}
    theirs = {condition_key(claim, c): c["value"] for claim, entry in verdicts_for_set(results).items()
              for c in entry["conditions"] if c["operator"] != "within"}
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key][0] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def _carryover(rng: np.random.Generator, scale: float = 1.0, S: int = 5) -> dict[str, np.ndarray]:
    """Stacked carry-over arrays with per-sample patching values: [fact, direction, kind, position, layer, sample]
    patched P and [fact, direction, sample] corrupted P; one shared draw per sample set, as in a run."""
    shape = np.exp(-0.5 * ((np.arange(LAYERS) - 5) / 2.0) ** 2)
    shared = rng.normal(size=(1, 2, 1, 1, 1, S))
    patch = 0.2 * scale * shape[None, None, None, None, :, None] + 0.02 * (
        shared + rng.normal(size=(FACTS, 2, 2, 2, LAYERS, S)))
    low = 0.01 + 0.002 * rng.normal(size=(FACTS, 2, S))
    return {"patch_prob_per_sample": patch + low[:, :, None, None, None, :], "low_prob_per_sample": low}


def test_the_carryover_patching_curves_are_in_the_family():
    plan = {"directions": ["text_to_speech", "speech_to_text"], "patch_kinds": ["hidden", "mlp"],
            "positions": ["last_subject", "last"]}
    rng = np.random.default_rng(6)
    expected, regen = run_samples(rng), run_samples(rng)
    arms = {arm: (arm_data(arm, regen[arm], 2), arm_data(arm, expected[arm], 1)) for arm in ("t2t", "s2t")}
    honest = family_checks(arms, METRICS, BAND_GROUPS, BAND_GROUPS, (5, 5),
                           (_carryover(rng), _carryover(rng), plan), claims=False)
    patching = [c for c in honest if c.check == "carryover_band"]
    assert len(patching) == 8 and all(c.verdict == PASS for c in patching), fails(honest)
    halved = family_checks(arms, METRICS, BAND_GROUPS, BAND_GROUPS, (5, 5),
                           (_carryover(rng, 0.5), _carryover(rng), plan), claims=False)
    assert {f[0] for f in fails(halved)} == {"carryover_band"}, fails(halved)
