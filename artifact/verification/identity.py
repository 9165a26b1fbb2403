"""What an experiment *is*, independent of its noise seed, batch size, machine and paths: the model (name and the
sha256 of its weight files where recorded), the fact file's fingerprint and the profile's defining settings. Every
expected profile records it and verify.py checks it first, so results are never compared with another experiment's
(an embedded run against SpiritLM's claims, a smoke run against a standard profile)."""

from __future__ import annotations

from typing import Any, Iterator

from artifact.verification.records import FAIL, PASS, Check

# The profile fields that define the experiment; seed, batch size and noise_streams only pick a replicate (the
# streams decide which noise a sample draws, not its distribution: the other-seed tier judges either, and the
# same-seed tier, which compares draws cell by cell, refuses other streams by name).
PROFILE_FIELDS = ("name", "facts", "samples", "window", "kinds", "t2t_positions", "s2t_positions", "count",
                  "held_out_share", "candidates")
_DIGEST_KEYS = ("sha256", "rows_sha256")


def _digests(value: Any) -> Iterator[str]:
    """Every sha256 recorded for weight files in a manifest's model section (paths and times left out)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _DIGEST_KEYS and isinstance(item, str) and len(item) == 64:
                yield item
            else:
                yield from _digests(item)
    elif isinstance(value, list):
        for item in value:
            yield from _digests(item)


def identity_of(run_manifest: dict[str, Any], weights: bool = True) -> dict[str, Any]:
    """The identity of a pipeline run from its manifest.json. `weights=False` leaves the weight digests out (a
    profile meant for other copies of the weights: SpiritLM's, recorded on a stand-in checkpoint)."""
    settings = run_manifest.get("settings") or {}
    profile = settings.get("profile") or {}
    identity: dict[str, Any] = {
        "model": run_manifest.get("model_name"),
        "facts_fingerprint": run_manifest.get("facts_fingerprint"),
        "profile": {key: profile.get(key) for key in PROFILE_FIELDS if key in profile},
    }
    if weights:
        models = run_manifest.get("model") or {}
        identity["weights_sha256"] = {arm: sorted(set(_digests(section))) for arm, section in sorted(models.items())}
        identity["unit_tokenizer_sha256"] = sorted(set(_digests(run_manifest.get("unit_tokenizer") or {})))
    return identity


def _normalise(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_identity(regenerated: dict[str, Any] | None, expected: dict[str, Any] | None) -> Check:
    """The regenerated run's identity against the profile's: every recorded field must agree."""
    if expected is None:
        return Check("identity", FAIL, detail="the expected profile records no identity (model, facts, profile "
                                              "settings): re-record it with this version of verify.py --record")
    if regenerated is None:
        return Check("identity", FAIL, detail="the results folder has no manifest.json (the pipeline's last step "
                                              "writes it): rerun ./run_all.sh, which resumes")
    differ: dict[str, tuple[Any, Any]] = {}
    for key, want in expected.items():
        got = regenerated.get(key)
        if key == "profile" and isinstance(want, dict):
            for field, value in want.items():
                if _normalise((got or {}).get(field)) != _normalise(value):
                    differ[f"profile.{field}"] = ((got or {}).get(field), value)
        elif _normalise(got) != _normalise(want):
            differ[key] = (got, want)
    if differ:
        shown = "; ".join(f"{k}: {str(g)[:80]} (expected {str(w)[:80]})" for k, (g, w) in differ.items())
        hint = (" These results are of another model than the profile's." if "model" in differ
                else " These results are of another experiment than the profile's.")
        return Check("identity", FAIL, observed={k: v[0] for k, v in differ.items()},
                     expected={k: v[1] for k, v in differ.items()}, detail=shown + hint)
    return Check("identity", PASS, detail=f"model {expected.get('model')}, facts "
                                          f"{str(expected.get('facts_fingerprint'))[:12]}..., profile "
                                          f"{(expected.get('profile') or {}).get('name')}: as recorded")
