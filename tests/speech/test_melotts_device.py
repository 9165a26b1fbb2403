"""MeloTTS's audio does not depend on the host: the worker runs on the CPU unless asked otherwise, the device is part
of the TTS settings (so of the audio cache key), and checkpoints load as with the torch 2.5 MeloTTS was released
with, also under torch 2.6, the torch MeloTTS's venv shares with the artifact in the image."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from artifact.speech.cache import content_key
from artifact.speech.tts import WORKER, MeloTTS
from tests.support.melo_package import write_melo_package


def _recording_melo(folder: Path) -> Path:
    """A stand-in `melo` package with MeloTTS's interface that records the device it was built with and the
    environment's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD (into $MELO_RECORD), and writes a short WAV."""
    return write_melo_package(folder, init="""
        with open(os.environ["MELO_RECORD"], "a") as handle:
            handle.write(json.dumps({"device": device,
                                     "weights_only": os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}) + "\\n")
    """, methods="""
        def tts_to_file(self, text, speaker_id, output_path=None, speed=1.0, quiet=False, **settings):
            audio = 0.3 * np.sin(np.arange(4410) / 10.0)
            if output_path is not None:
                wavfile.write(output_path, 44100, (audio * 32767).astype(np.int16))
            return audio
    """)


def test_melotts_runs_on_the_cpu_by_default_and_the_device_keys_the_audio(tmp_path, monkeypatch):
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(_recording_melo(tmp_path / "stub")))
    monkeypatch.setenv("MELO_RECORD", str(record))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    default = MeloTTS(python=sys.executable)
    try:
        default.synthesize("The Eiffel Tower is in Paris.")
    finally:
        default.close()
    assert json.loads(record.read_text().splitlines()[0]) == {"device": "cpu", "weights_only": "1"}
    assert default.settings()["device"] == "cpu"
    gpu = MeloTTS(python=sys.executable, device="cuda")
    assert gpu.settings()["device"] == "cuda"
    text = "The Eiffel Tower is in Paris."
    assert content_key("audio", text=text, tts=default.settings()) != content_key("audio", text=text,
                                                                                   tts=gpu.settings())
    # The worker run by hand defaults to the CPU too.
    usage = subprocess.run([sys.executable, str(WORKER), "--help"], capture_output=True, text=True, timeout=60)
    assert "cpu (default" in usage.stdout


def test_worker_loads_checkpoints_as_torch_2_5_did(tmp_path):
    """MeloTTS calls torch.load without weights_only. Under torch 2.6 that means weights_only=True, which refuses
    any pickled object other than tensors and plain containers; the worker restores the earlier default unless the
    environment says otherwise."""
    torch = pytest.importorskip("torch")
    assert torch.__version__.startswith("2.6")  # the default changed in 2.6: this test needs the artifact's torch
    checkpoint = tmp_path / "checkpoint.pth"
    script = textwrap.dedent(f"""
        import argparse, runpy, sys, torch
        torch.save({{"model": {{"w": torch.ones(2)}}, "hps": argparse.Namespace(rate=44100)}}, {str(checkpoint)!r})
        if sys.argv[1] == "worker":
            runpy.run_path({str(WORKER)!r}, run_name="melotts_worker")
        try:
            print(torch.load({str(checkpoint)!r}, map_location="cpu")["hps"].rate)
        except Exception as exc:
            print(type(exc).__name__)
    """)
    env = {"PATH": "/usr/bin:/bin"}
    plain = subprocess.run([sys.executable, "-c", script, "plain"], capture_output=True, text=True, env=env, timeout=120)
    worker = subprocess.run([sys.executable, "-c", script, "worker"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert plain.stdout.strip() == "UnpicklingError", plain.stderr[-2000:]
    assert worker.stdout.strip() == "44100", worker.stderr[-2000:]
