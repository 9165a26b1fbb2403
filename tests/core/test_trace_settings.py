"""One trace-settings value (issue 27, part 5): the profile, the run request, the run's settings, the carry-over
step and every TraceConfig hold the same `TraceSettings`, while the records on disk keep their layout (the trace
settings at the top level), so the expected profiles and older results folders load, verify and keep their names."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from artifact.core.settings import RunSettings
from artifact.core.trace_settings import TraceSettings
from artifact.experiments.arms import ArmRequest
from artifact.experiments.carryover import CarryOverSettings
from artifact.experiments.profiles import PROFILES
from artifact.tracing.config import TraceConfig
from artifact.verification.identity import identity_of

REPO = Path(__file__).resolve().parents[2]
TRACE_FIELDS = [f.name for f in fields(TraceSettings)]
# The folder names the version before this value gave the stored settings.json files (its key_dict, hashed).
FOLDERS = {("embedded-smoke", "t2t"): "t2t-embedded-10b61867e20f",  # re-recorded at 5 per-sample noise samples
           ("embedded-smoke", "s2t"): "s2t-embedded-speech-86f74fce5fe4",
           ("embedded-standard", "t2t"): "t2t-embedded-10b61867e20f",  # the same settings at 56 facts
           ("embedded-standard", "s2t"): "s2t-embedded-speech-86f74fce5fe4"}


def test_defaults_are_the_papers_and_bad_values_are_refused():
    assert TraceSettings().to_dict() == {"samples": 10, "window": 10, "seed": 1, "batch_size": 128}
    for bad in (dict(samples=0), dict(window=-1), dict(batch_size=1.5), dict(samples=True), dict(seed="1")):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"{name} must be an integer"):
            TraceSettings(**bad)
    with pytest.raises(ValueError, match=r"Unknown trace settings \['sample'\]"):
        TraceSettings.from_dict({"sample": 3})


@pytest.mark.parametrize("profile,arm", sorted(FOLDERS))
def test_stored_settings_load_unchanged_and_keep_their_folder_names(profile, arm):
    path = REPO / "expected" / profile / arm / "settings.json"
    stored = json.loads(path.read_text())
    settings = RunSettings.from_dict(stored)
    assert settings.trace == TraceSettings.from_dict({k: stored[k] for k in TRACE_FIELDS if k in stored})
    assert list(settings.to_dict().items()) == list(stored.items())  # same keys, same order, same values
    assert settings.folder_name() == FOLDERS[(profile, arm)]


def test_a_settings_file_with_a_nested_or_unknown_entry_is_refused():
    stored = json.loads((REPO / "expected" / "embedded-smoke" / "t2t" / "settings.json").read_text())
    with pytest.raises(ValueError, match="Unknown run settings"):
        RunSettings.from_dict({**stored, "sampels": 2})
    with pytest.raises(ValueError, match="'trace' entry"):
        RunSettings.from_dict({**stored, "trace": {"samples": 2}})


def test_profiles_record_the_trace_settings_where_verify_reads_them():
    """The manifest's profile record keeps samples and window at its top level: the stored identity of the expected
    profile is what a fresh run's manifest gives."""
    for name in ("smoke", "standard"):
        manifest = json.loads((REPO / "expected" / f"embedded-{name}" / "manifest.json").read_text())
        record = PROFILES[name].to_dict()
        assert "trace" not in record and {k: record[k] for k in TRACE_FIELDS if k in record} == PROFILES[name].trace.to_dict()
        ours = identity_of({"settings": {"profile": json.loads(json.dumps(record))}}, weights=False)["profile"]
        assert ours == manifest["identity"]["profile"]


def test_one_value_reaches_every_layer():
    """The profile's value is handed on whole: request -> run settings -> TraceConfig, and to the carry-over step,
    whose settings.json keeps its old layout."""
    trace = replace(PROFILES["smoke"].trace, seed=7, batch_size=32)
    request = ArmRequest(trace=trace)
    settings = RunSettings(arm="t2t", model="m", dtype="torch.float32", device="cpu", facts_fingerprint="f" * 64,
                           noise_spec="0.1", noise=0.1, trace=request.trace)
    config = TraceConfig.of(settings.trace, kind="mlp", noise=settings.noise, positions=(3, 1))
    assert config.settings == trace and (config.kind, config.noise, config.positions) == ("mlp", 0.1, (1, 3))
    assert {k: v for k, v in config.to_dict().items() if k in TRACE_FIELDS} == trace.to_dict()
    stored = json.loads((REPO / "expected" / "embedded-smoke" / "carryover" / "carryover.json").read_text())["settings"]
    smoke = PROFILES["smoke"]
    carry = CarryOverSettings(models=stored["models"], text_noise=stored["text_noise"],
                              speech_noise=stored["speech_noise"], trace=smoke.trace, plan=smoke.carryover)
    assert list(carry.to_dict().items()) == list(stored.items())


def test_a_new_trace_setting_is_one_field():
    """A field added to TraceSettings reaches TraceConfig (by inheritance) and the settings records (by the flat
    layout) without another edit; marked KEY_OPTIONAL, it leaves existing folder names alone at its default. Issue
    28's noise_streams was added that way."""
    from artifact.core.trace_settings import key_optional_defaults

    assert key_optional_defaults(TraceSettings) == {"noise_streams": "rome"}
    assert "noise_streams" not in TraceSettings().to_dict()  # at its default: records read as before the field
    assert TraceSettings(noise_streams="per_sample").to_dict()["noise_streams"] == "per_sample"
    assert {f.name for f in fields(TraceSettings)} <= {f.name for f in fields(TraceConfig)}
    assert key_optional_defaults(RunSettings) == {"front_end": "", "candidates": 0}
