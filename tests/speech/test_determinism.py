"""espeak-ng synthesis is independent of history: the same text gives bitwise the same audio and word times whatever
was spoken before, in this process or any other, and the word times come with the audio of the same synthesis."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from artifact.speech import FrontEndConfig, SpeechFrontEnd, espeak
from artifact.speech.tts import EspeakTTS

pytestmark = pytest.mark.skipif(not espeak.available(), reason="espeak-ng (libespeak-ng) is not installed")
A = "Knud, Hereditary Prince of Denmark, is a citizen of"
B = "The Eiffel Tower is located in the city of 1999"

# Prints a fingerprint of A's audio and word times from EspeakTTS in a new process.
FINGERPRINT = """
import hashlib, json, sys
from artifact.speech.tts import EspeakTTS
audio, words = EspeakTTS().synthesize_with_words(sys.argv[1])
print(hashlib.sha256(audio.tobytes()).hexdigest(), json.dumps([w.to_dict() for w in words]))
"""
# The first synthesis of a process that loads libespeak-ng itself (no server, no fork): the state a fork starts from.
DIRECT = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[2])
import espeak_worker as w
lib = w.load_library()
w.initialize(lib)
audio, events = w.synthesize(lib, sys.argv[1], "en-us", 175, 50)
print(hashlib.sha256(audio).hexdigest(), json.dumps(events))
"""


def _fingerprint(audio: np.ndarray, words) -> tuple[str, list[dict]]:
    return hashlib.sha256(audio.tobytes()).hexdigest(), [w.to_dict() for w in words]


def _run(code: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digest, rest = out.stdout.strip().split(" ", 1)
    return [digest, json.loads(rest)]


def test_a_b_a_gives_bitwise_equal_a_with_its_word_times():
    tts = EspeakTTS()
    first = tts.synthesize_with_words(A)
    other = tts.synthesize_with_words(B)
    again = tts.synthesize_with_words(A)
    assert first[0].dtype == np.float32 and len(first[0]) != len(other[0])
    assert first[0].tobytes() == again[0].tobytes()
    assert first[1] == again[1] and [w.word for w in first[1]][:2] == ["Knud,", "Hereditary"]
    # the plain calls give the same audio and word times as the joint one
    assert tts.synthesize(A).tobytes() == first[0].tobytes() and tts.word_times(A) == first[1]
    utterance = tts.utterance(A)
    assert utterance.events[-1].kind == "end" and utterance.events[-1].sample == len(utterance.audio)


def test_a_in_a_fresh_process_equals_a_here():
    audio, words = EspeakTTS().synthesize_with_words(B)  # something else spoken first in this process
    audio, words = EspeakTTS().synthesize_with_words(A)
    assert _run(FINGERPRINT, A) == list(_fingerprint(audio, words))
    # ... and equals the first synthesis of a process that runs the library itself: the server's fork starts from
    # a fresh process's state
    utterance = espeak.synthesize(A)
    pcm = np.round(utterance.audio * 32768).astype("<i2").tobytes()
    events = [[e.kind, e.text_position, e.length, e.sample, e.phoneme] for e in utterance.events]
    assert _run(DIRECT, A, os.path.dirname(espeak.__file__)) == [hashlib.sha256(pcm).hexdigest(), events]


def test_settings_key_the_synthesis_mode_and_phonemes_are_pure():
    settings = EspeakTTS().settings()
    assert settings["synthesis"] == espeak.ISOLATION
    espeak._phonemes.cache_clear()
    first = espeak.phonemes("Kirkpatrick")
    espeak.synthesize(A)
    espeak._phonemes.cache_clear()
    assert espeak.phonemes("Kirkpatrick") == first and first[:2] == ["k", "3:"]
    with pytest.raises(ValueError, match="no voice"):
        EspeakTTS(voice="no-such-voice")


def test_server_restarts_after_it_died():
    server = espeak.server()
    before = espeak.synthesize(A).audio
    process = server._process
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    np.testing.assert_array_equal(espeak.synthesize(A).audio, before)  # a new server, the same audio
    assert server._process is not process


def test_front_end_validates_against_word_times_of_the_same_audio(tmp_path):
    quiet = SpeechFrontEnd(FrontEndConfig(), cache_dir=tmp_path)  # the default: no validation
    fact = quiet.process(A, "Knud")
    assert fact.alignment_errors is None
    # audio from the cache, word times from a new synthesis checked to give the same audio
    front = SpeechFrontEnd(FrontEndConfig(validate_alignment=True), cache_dir=tmp_path)
    checked = front.process(A, "Knud")
    assert front.cache.hits == 3 and front.cache.misses == 1 and checked.alignment_errors
    np.testing.assert_array_equal(checked.audio, fact.audio)
    fresh = SpeechFrontEnd(FrontEndConfig(validate_alignment=True), cache_dir=tmp_path / "fresh")
    assert fresh.process(A, "Knud").alignment_errors == checked.alignment_errors
    with pytest.raises(RuntimeError, match="differs from the cached audio"):
        front._tts_words(A, fact.audio * 0.5, {})
