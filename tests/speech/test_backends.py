"""Real offline backends (espeak-ng library, pocketsphinx, k-means units), the cached front end and the `speech`
command; the container backends' checks that run without downloads."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from artifact.speech import FrontEndConfig, SpeechFrontEnd, boundary_errors, create_aligner, create_recognizer, espeak
from artifact.speech.tts import EspeakTTS, MeloTTS
from tests.support.melo_package import write_melo_package

pytestmark = pytest.mark.skipif(not espeak.available(), reason="espeak-ng (libespeak-ng) is not installed")
EIFFEL = "The Eiffel Tower is located in the city of"
KNUD = "Knud, Hereditary Prince of Denmark, is a citizen of"


@pytest.fixture(scope="module")
def tts():
    return EspeakTTS()


@pytest.fixture(scope="module")
def aligner():
    return create_aligner("pocketsphinx")


def test_espeak_audio_and_own_word_times(tts):
    audio = tts.synthesize(EIFFEL)
    assert audio.dtype == np.float32 and audio.ndim == 1 and 1.5 < len(audio) / 16_000 < 3.0
    assert np.abs(audio).max() > 0.1
    words = tts.word_times(KNUD)
    assert [w.word for w in words][:3] == ["Knud,", "Hereditary", "Prince"]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end > w.start for w in words)
    assert words[1].start - words[0].end > 0.1  # the comma's pause lies between the words, in neither
    with pytest.raises(ValueError, match="empty"):
        tts.synthesize("  ")


def test_pocketsphinx_alignment_matches_espeak(tts, aligner):
    errors = []
    for text in (EIFFEL, KNUD):
        audio = tts.synthesize(text)
        words = aligner.align(audio, text)
        assert [w.word for w in words] == text.split()
        errors += boundary_errors(tts.word_times(text), words)
    assert len(errors) > 20
    assert np.median(errors) < 0.04 and np.percentile(errors, 90) < 0.1
    with pytest.raises(ValueError, match="silent"):
        aligner.align(np.zeros(16_000, np.float32), EIFFEL)


def test_pocketsphinx_recognition_and_wer(tts):
    from artifact.speech import word_error_rate

    recognizer = create_recognizer("pocketsphinx")
    transcript = recognizer.transcribe(tts.synthesize("the city of"))
    assert isinstance(transcript, str) and transcript
    assert word_error_rate("The Eiffel-Tower, is", "the eiffel tower is") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5
    with pytest.raises(ValueError, match="silent"):
        recognizer.transcribe(np.zeros(8000, np.float32))


def test_front_end_is_cached_and_keyed_by_settings(tmp_path):
    config = FrontEndConfig(validate_alignment=True)
    front = SpeechFrontEnd(config, cache_dir=tmp_path)
    fact = front.process(EIFFEL, "Eiffel Tower")
    assert 0.05 < fact.subject_time[0] < fact.subject_time[1] < 1.0
    b, e = fact.subject_tokens
    times = fact.units.token_times()
    assert times[b][0] < fact.subject_time[0] + 0.04 and times[e - 1][1] > fact.subject_time[1] - 0.04
    assert fact.alignment_errors and np.median(fact.alignment_errors) < 0.05
    assert front.cache.misses == 4 and front.cache.hits == 0
    again = SpeechFrontEnd(config, cache_dir=tmp_path)
    second = again.process(EIFFEL, "Eiffel Tower")
    assert again.cache.hits == 4 and again.cache.misses == 0
    assert second.units == fact.units and second.subject_tokens == fact.subject_tokens
    np.testing.assert_array_equal(second.audio, fact.audio)
    slower = SpeechFrontEnd(FrontEndConfig(validate_alignment=True, tts_options={"rate": 140}), cache_dir=tmp_path)
    third = slower.process(EIFFEL, "Eiffel Tower")
    assert slower.cache.hits == 0 and third.duration > fact.duration
    with pytest.raises(ValueError, match="does not occur"):
        front.process(EIFFEL, "Louvre")
    with pytest.raises(ValueError, match="empty"):
        front.process("", "x")
    with pytest.raises(ValueError, match="max_wer needs a recognizer"):
        FrontEndConfig(max_wer=0.3)  # the default front end has no recognizer


def test_speech_command_writes_table_and_figure(tmp_path, monkeypatch):
    from artifact.cli import main

    monkeypatch.setenv("ARTIFACT_CACHE_DIR", str(tmp_path / "cache"))
    facts = [
        {"known_id": 7, "subject": "Eiffel Tower", "attribute": "Paris", "template": "The {} is located in the city of",
         "prediction": "", "prompt": EIFFEL, "relation_id": "P131"},
        {"known_id": 8, "subject": "Louvre", "attribute": "Paris", "template": "The {} is located in",
         "prediction": "", "prompt": "The Louvre is located in", "relation_id": "P131"},
    ]
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    out = tmp_path / "out"
    args = ["speech", "--facts", str(path), "--out", str(out), "--recognizer", "none", "--text-tokenizer", "none"]
    assert main(args) == 0
    summary = json.loads((out / "speech_summary.json").read_text())
    assert summary["processed"] == 2 and summary["facts"] == 2
    assert 15 < summary["mean_speech_tokens_per_s"] <= 25
    table = (out / "speech_facts.md").read_text()
    assert "Eiffel Tower" in table and "Louvre" in table and len(table.splitlines()) == 4
    assert (out / "speech_fact.png").stat().st_size > 10_000
    assert main(args + ["--limit", "1"]) == 0
    assert json.loads((out / "speech_summary.json").read_text())["cache_misses"] == 0


def test_container_backends_fail_clearly_when_absent(monkeypatch, tmp_path):
    monkeypatch.delenv("MELOTTS_PYTHON", raising=False)
    with pytest.raises(RuntimeError, match="MELOTTS_PYTHON"):
        MeloTTS()
    if not _importable("whisper"):
        with pytest.raises(RuntimeError, match="pip install openai-whisper"):
            create_recognizer("whisper-small")
    if not _importable("spiritlm"):
        from artifact.speech import create_unit_tokenizer

        with pytest.raises(RuntimeError, match="facebookresearch/spiritlm"):
            create_unit_tokenizer("spiritlm")


def test_melotts_subprocess_protocol_with_a_stub(tmp_path, monkeypatch):
    """The worker against a stand-in `melo.api.TTS` with MeloTTS's signatures (hps.data.spk2id, tts_to_file(text,
    speaker_id, output_path, sdp_ratio, noise_scale, noise_scale_w, speed, ...)) writing a 44.1 kHz WAV: exercises
    the subprocess plumbing (MeloTTS itself runs in tests/test_paper_backends.py)."""
    stub = write_melo_package(tmp_path / "stub", methods="""
        def tts_to_file(self, text, speaker_id, output_path=None, sdp_ratio=0.2, noise_scale=0.6,
                        noise_scale_w=0.8, speed=1.0, pbar=None, format=None, position=None, quiet=False):
            print("progress chatter on stdout")
            t = np.arange(int(44100 * 0.05 * len(text.split()) / speed)) / 44100
            audio = (0.5 * np.sin(2 * np.pi * 200 * t) * 32767).astype(np.int16)
            if output_path is None:
                return audio
            wavfile.write(output_path, 44100, audio)
    """)
    monkeypatch.setenv("PYTHONPATH", str(stub))
    tts = MeloTTS(python=sys.executable)
    try:
        audio = tts.synthesize("one two three four")
        assert audio.dtype == np.float32 and abs(len(audio) - 3200) <= 2
        assert 0.45 < np.abs(audio).max() < 0.55
        assert len(tts.synthesize("one two")) < len(audio)
    finally:
        tts.close()


def test_mms_fa_aligner_with_a_given_emission():
    """MMS_FA's real tokenizer and CTC aligner (no download) on a hand-made emission: 'ab' then 'c'."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchaudio")
    import torchaudio

    from artifact.speech.alignment import MMSFAAligner

    labels = torchaudio.pipelines.MMS_FA.get_dict(star=None)
    path = ["-"] * 5 + ["a"] * 5 + ["b"] * 5 + ["-"] * 10 + ["c"] * 5 + ["-"] * 10  # 40 frames

    class Emission(torch.nn.Module):
        def forward(self, waveform):
            logits = torch.full((1, len(path), len(labels)), -10.0)
            for t, char in enumerate(path):
                logits[0, t, labels[char]] = 0.0
            return torch.log_softmax(logits, -1), None

    aligner = MMSFAAligner(model=Emission(), device="cpu")
    audio = (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32)  # 1 s -> 25 ms per emission frame
    words = aligner.align(audio, "Ab, C!")
    assert [w.word for w in words] == ["Ab,", "C!"]
    assert words[0].start == pytest.approx(0.125) and words[0].end == pytest.approx(0.375)
    assert words[1].start == pytest.approx(0.625) and words[1].end == pytest.approx(0.75)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_espeak_program_present_for_bootstrap():
    assert shutil.which("espeak-ng"), "scripts/bootstrap.sh installs espeak-ng from Debian"
