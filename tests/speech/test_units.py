"""Speech units without audio backends: dedup with the frame map, subject token span, registry errors, the log-mel
k-means stand-in (shipped centroids and their fingerprint, reproducible fitting), each backend's unit range, and the
spiritlm backend's install hint. The spiritlm backend on generated checkpoints: tests/test_spiritlm_units.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from artifact.speech import SpeechUnits, UnknownBackendError, create_aligner, create_tts, create_unit_tokenizer
from artifact.speech.registry import Registry
from artifact.speech.units import (
    CENTROIDS_PATH,
    KMeansUnitTokenizer,
    SpiritLMUnitTokenizer,
    fit_centroids,
    load_centroids,
    logmel_frames,
    nearest_centroid,
)


def test_dedup_keeps_frame_to_token_map():
    units = SpeechUnits.from_frames([5, 5, 5, 9, 2, 2, 5, 5])
    assert units.tokens == (5, 9, 2, 5)
    assert units.token_frames == ((0, 3), (3, 4), (4, 6), (6, 8))
    assert units.frame_to_token.tolist() == [0, 0, 0, 1, 2, 2, 3, 3]
    assert units.unit_string() == "[Hu5][Hu9][Hu2][Hu5]"
    assert units.token_times()[2] == pytest.approx((0.16, 0.24))
    assert SpeechUnits.from_dict(units.to_dict()) == units
    with pytest.raises(ValueError, match="No speech units"):
        SpeechUnits.from_frames([])


def test_tokens_overlapping_time_span():
    units = SpeechUnits.from_frames([5, 5, 5, 9, 2, 2, 5, 5])  # tokens end at 0.12, 0.16, 0.24, 0.32 s
    assert units.tokens_overlapping(0.0, 0.12) == (0, 1)  # touching the next token's start is no overlap
    assert units.tokens_overlapping(0.11, 0.17) == (0, 3)
    assert units.tokens_overlapping(0.16, 0.30) == (2, 4)
    with pytest.raises(ValueError, match="positive length"):
        units.tokens_overlapping(0.2, 0.2)
    with pytest.raises(ValueError, match="No speech token"):
        units.tokens_overlapping(1.0, 2.0)


def test_registry_suggests_and_lists():
    with pytest.raises(UnknownBackendError, match=r"Unknown text-to-speech backend 'espeak'\. Did you mean "
                                                  r"'espeak-ng'\?.*Available: espeak-ng, melotts"):
        create_tts("espeak")
    with pytest.raises(UnknownBackendError, match="Did you mean 'mms-fa'"):
        create_aligner("mms_fa")
    with pytest.raises(UnknownBackendError, match="Available: kmeans-logmel, spiritlm"):
        create_unit_tokenizer("hubert")
    registry = Registry("demo")
    registry.register("a", "x:Y")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", "x:Z")


def test_logmel_frames_at_25_hz():
    audio = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    feats = logmel_frames(audio)
    assert feats.shape == (25, 40)
    assert np.isfinite(feats).all()
    assert logmel_frames(audio[:1279]).shape == (1, 40)


def test_shipped_centroids_and_fingerprint(tmp_path):
    centroids = load_centroids()
    assert centroids.shape == (500, 40)
    assert len(np.unique(centroids, axis=0)) == 500
    tampered = tmp_path / "c.npy"
    np.save(tampered, centroids * 1.001)
    with pytest.raises(ValueError, match="sha256"):
        load_centroids(tampered)
    assert CENTROIDS_PATH.stat().st_size < 200_000


def test_kmeans_tokenizer_units_follow_the_signal():
    tokenizer = KMeansUnitTokenizer()
    t = np.arange(32_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = (0.3 * np.random.default_rng(1).standard_normal(32_000)).astype(np.float32)
    units = tokenizer.encode(np.concatenate([tone, noise]))
    assert len(units.frames) == 100 and all(0 <= u < 500 for u in units.frames)
    assert set(units.frames[5:45]).isdisjoint(units.frames[55:95])  # a tone and noise never share a unit
    assert units.frames[10] == units.frames[20]  # a steady tone keeps its unit, so dedup merges it
    with pytest.raises(ValueError, match="silent"):
        tokenizer.encode(np.zeros(16_000, np.float32))
    with pytest.raises(ValueError, match="640"):
        tokenizer.encode(tone[:600])


def test_fit_is_reproducible_and_nearest_centroid():
    features = np.random.default_rng(0).standard_normal((1200, 4)).astype(np.float32)
    first, second = fit_centroids(features, seed=3, max_iter=5), fit_centroids(features, seed=3, max_iter=5)
    assert first.shape == (500, 4)
    np.testing.assert_array_equal(first, second)
    assert (nearest_centroid(first, first) == np.arange(500)).all()
    with pytest.raises(ValueError, match="clusters"):
        fit_centroids(features[:100])


def test_unit_range_is_per_backend(monkeypatch):
    """k-means has 500 units; spiritlm's quantizer also emits 500 (its blank, for an all-blank chunk): [Hu500]."""
    audio = (0.3 * np.random.default_rng(2).standard_normal(16_000)).astype(np.float32)
    kmeans = KMeansUnitTokenizer()
    monkeypatch.setattr(kmeans, "_frames", lambda audio: [499, 500])
    with pytest.raises(ValueError, match=r"outside \[0, 500\)"):
        kmeans.encode(audio)
    assert (KMeansUnitTokenizer.units, SpiritLMUnitTokenizer.units) == (500, 501)
    spiritlm = object.__new__(SpiritLMUnitTokenizer)  # the range check alone, without spiritlm's weights
    monkeypatch.setattr(spiritlm, "_frames", lambda audio: [500, 500, 3])
    assert spiritlm.encode(audio).unit_string() == "[Hu500][Hu3]"
    monkeypatch.setattr(spiritlm, "_frames", lambda audio: [501])
    with pytest.raises(ValueError, match=r"outside \[0, 501\)"):
        spiritlm.encode(audio)
    spiritlm.min_samples = 1280
    with pytest.raises(ValueError, match="at least 1280"):
        spiritlm.encode(audio[:1000])


def test_spiritlm_missing_package_names_the_installer(monkeypatch):
    monkeypatch.setitem(sys.modules, "spiritlm", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "spiritlm.speech_tokenizer", None)
    with pytest.raises(RuntimeError, match=r"scripts/install_spiritlm\.sh.*facebookresearch/spiritlm.*ARCHIVE"):
        create_unit_tokenizer("spiritlm")
