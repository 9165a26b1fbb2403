"""Recording a profile whose other-seed tier comes from its reference run's own noise samples (issue 28, part 7):
no replicate runs to calibrate from.

With per-sample noise streams (`tracing/corruption.py`) a run keeps S per-sample effects per cell, each from its own
independent stream; verify judges a run with another seed by the `noise_band` checks (noise_band.py: an exact
permutation test over both runs' 2S per-sample curves) without any replicate. So the profile needs only:

- the reference's per-sample effects (checked here: every arm and kind, both metrics, with enough samples for the
  exact test to be able to reject at 5%; a clear error otherwise);
- a same-seed tier: its tolerance is the float64 bound on fp32 rounding (numerics.py), a property of the model and
  the code, not of the noise draw, so it is carried over from an earlier recording of the same model and code (which
  may be the profile being re-recorded) and said so in every `how_chosen`, with the Known-set allowance and the
  Known margin bounds (known_margins.py) beside it. Nothing is re-measured or invented.

`verify.py --record PROFILE --results RUN --other-seed-from-samples --same-seed-tier-from OLD_PROFILE`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from artifact.core.layout import MANIFEST_FILE, SETTINGS_FILE
from artifact.core.names import ARMS
from artifact.verification.known_margins import KNOWN_MARGIN_BOUNDS
from artifact.verification.load import load_run_arm, load_tolerances, read_json
from artifact.verification.noise_band import powerless_reason
from artifact.verification.records import ALPHA, DEFAULT_METRICS, VerifyError
from artifact.verification.same_seed import noise_streams


def fewest_samples(alpha: float = ALPHA) -> int:
    """The fewest noise samples per run at which the exact test between two such runs can reject at `alpha`
    (noise_band.powerless_reason: its smallest p-value is 2 / C(2S, S))."""
    return next(samples for samples in itertools.count(2) if not powerless_reason(samples, samples, alpha))


def per_sample_problem(reference: Path, alpha: float = ALPHA) -> str | None:
    """Why `reference` (a results folder) cannot give its profile an other-seed tier from its own noise samples, or
    None when it can: every arm and kind kept per-sample effects of both metrics, from per-sample streams, with at
    least `fewest_samples()` samples."""
    need = fewest_samples(alpha)
    for arm in ARMS:
        data = load_run_arm(reference, arm)
        streams = noise_streams(data.settings)
        if streams != "per_sample":
            return (f"its {arm} run drew its noise from {streams!r} streams, so its noise samples are not independent "
                    "draws: trace the profile with --noise-streams per_sample")
        for kind in data.kinds():
            for metric in DEFAULT_METRICS:
                samples = data.samples.get(f"{kind}_{metric}")
                if samples is None:
                    return (f"its {arm} aggregate keeps no per-sample {kind} {metric} effects (aggregated before "
                            "per-sample effects were kept?): rerun the aggregate step")
                if samples.shape[1] < need:
                    return (f"its {arm} {kind} effects have {samples.shape[1]} noise samples; the exact test "
                            f"between two runs needs at least {need} to be able to reject at {alpha:g}: trace the "
                            f"profile with at least {need} noise samples")
    return None


def _source_description(profile: Path) -> str:
    """When and with which noise the profile whose same-seed tier is carried over was recorded."""
    manifest = read_json(profile / MANIFEST_FILE) if (profile / MANIFEST_FILE).is_file() else {}
    path = profile / "t2t" / SETTINGS_FILE
    settings = read_json(path) if path.is_file() else {}
    return (f"{profile.name} as recorded {manifest.get('recorded_at', 'at an unrecorded time')} (reference seed "
            f"{settings.get('seed')}, {settings.get('samples')} noise samples, {noise_streams(settings)!r} noise "
            "streams)")


def per_sample_tolerances(reference: Path, same_seed_from: Path, alpha: float = ALPHA) -> dict[str, Any]:
    """The tolerances document of a profile recorded from `reference` alone: the same-seed tier and Known-set
    allowances of `same_seed_from` (an expected profile of the same model and code; read before anything is
    overwritten, so it may be the profile being re-recorded), each `how_chosen` saying it was carried over and why,
    and an "other_seed" entry saying that another seed is judged by the runs' own noise samples (noise_band.py).
    A VerifyError names what is missing when `reference` kept no usable per-sample effects."""
    problem = per_sample_problem(Path(reference), alpha)
    if problem is not None:
        raise VerifyError(f"{reference} cannot give the profile an other-seed tier from its own noise samples: "
                          f"{problem}; or calibrate the tier from replicate runs with --calibrate-from")
    source = Path(same_seed_from)
    previous = load_tolerances(source)
    if "same_seed" not in previous:
        raise VerifyError(f"{source} has no same-seed tier to carry over: record it with --same-seed-from or update it "
                          "with --update-same-seed --float64-from")
    described = _source_description(source)
    same_seed = dict(previous["same_seed"])
    same_seed["how_chosen"] = (
        f"carried over, not re-measured, from {described}: the float64 bound on fp32 rounding is a property of the "
        "model and the code (the same forwards rounded in fp32), not of the noise draw, so the profile's new noise "
        f"samples and streams leave it as it was; as measured there: {same_seed.get('how_chosen', '')}")
    same_seed["carried_over_from"] = described
    entries = {key: value for key, value in (previous.get("entries") or {}).items() if key.endswith("/known_set")}
    for entry in entries.values():
        for tolerance in entry.values():
            tolerance["how_chosen"] = (f"carried over from {described} (the Known filter draws no noise: a property "
                                       "of the model, code and numerics); as chosen there: "
                                       f"{tolerance.get('how_chosen', '')}")
    document: dict[str, Any] = {"format": previous.get("format"), "metrics": previous.get("metrics"),
                                "groups": previous.get("groups"), "entries": entries, "same_seed": same_seed}
    samples = load_run_arm(reference, "t2t").settings.get("samples")
    document["known_margins"] = {
        dtype: {"bound": entry["bound"], "how_chosen": "carried over (known_margins.py, read by verify from there; "
                f"a property of the model and dtype, not of the noise draw): {entry['how_measured']}"}
        for dtype, entry in KNOWN_MARGIN_BOUNDS.items()}
    document["other_seed"] = {
        "method": "noise_band", "samples": samples, "noise_streams": "per_sample", "alpha": alpha,
        "how_chosen": (f"no replicate runs: a run with another seed is judged by the noise_band checks, an exact "
                       f"permutation max-T over both runs' {2 * samples} per-sample AIE curves (noise_band.py; "
                       f"family-wise false-FAIL rate {alpha:g}), computed from the reference's {samples} per-sample "
                       "noise streams kept in t2t/ and s2t/group_effects.npz; the replicate-calibrated checks "
                       "(peaks, correlations, carry-over bands, claim statistics) have no calibration in this "
                       "profile and say so in verify's skipped list")}
    document["claims"] = {"unstable": [], "how_chosen": "no replicates: claim stability not calibrated"}
    document["verdict"] = (f"other-seed tier from the reference's own {samples} per-sample noise streams (noise_band, "
                           f"no replicates); same-seed tier carried over from {described}")
    return document
