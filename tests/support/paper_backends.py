"""Random-weight models of the paper's speech backends, built from the real libraries' own configurations and
classes (their trained weights download from hubs, which cannot be reached here), and MeloTTS's venv for tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
MELOTTS_ARCHIVE = REPO.parent / "shared" / "vendor" / "MeloTTS-2374f46.tar.gz"
STANDINS = Path(__file__).resolve().parent / "melotts_standins.py"

# openai-whisper's `small` (whisper/__init__.py _MODELS["small"] checkpoint "dims"): multilingual, 80 mel bins.
WHISPER_SMALL_DIMS = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 768, "n_audio_head": 12,
                      "n_audio_layer": 12, "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 768,
                      "n_text_head": 12, "n_text_layer": 12}
# The same architecture, narrower and shallower: what meets the rest of the pipeline stays small's (80 mel bins,
# 1500 audio frames = 30 s windows, the multilingual 51865-token vocabulary and tokenizer, 448 text positions, so
# greedy decoding runs its full 224 steps when a random model never says end-of-text); width 64 with 2 heads and 2
# layers per stack makes a transcription take about 1 s on one CPU thread instead of about 60 s.
WHISPER_TEST_DIMS = {**WHISPER_SMALL_DIMS, "n_audio_state": 64, "n_audio_head": 2, "n_audio_layer": 2,
                     "n_text_state": 64, "n_text_head": 2, "n_text_layer": 2}


def random_whisper(dims: dict[str, int] = WHISPER_TEST_DIMS, seed: int = 0) -> torch.nn.Module:
    """openai-whisper's `Whisper(ModelDimensions(**dims))` with its own initialisation under torch seed `seed`.

    Whisper creates the decoder's learned positional embedding with `torch.empty` (uninitialised memory: a loaded
    checkpoint always overwrites it), so it is drawn here from the same seeded generator, N(0, 0.02).
    """
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**dims))
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    return model.eval()


def save_whisper_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """`model` in Whisper's own checkpoint format ({"dims", "model_state_dict"}), which `whisper.load_model` reads."""
    import dataclasses

    torch.save({"dims": dataclasses.asdict(model.dims), "model_state_dict": model.state_dict()}, path)
    return path


def random_mms_fa(seed: int = 0) -> torch.nn.Module:
    """torchaudio's MMS_FA model as `MMS_FA.get_model(with_star=False)` builds it, with random weights instead of
    the downloaded ones: `wav2vec2_model(**bundle params)` (wav2vec 2.0 large: 24 layers, 1024 wide, 28 labels), the
    bundle's waveform normalisation and log-softmax wrapper, torch seed `seed`."""
    import torchaudio
    from torchaudio.pipelines._wav2vec2 import utils  # the helpers get_model itself calls

    bundle = torchaudio.pipelines.MMS_FA
    torch.manual_seed(seed)
    model = torchaudio.models.wav2vec2_model(**bundle._params)
    return utils._extend_model(model, normalize_waveform=bundle._normalize_waveform, apply_log_softmax=True,
                               append_star=False).eval()


def melotts_environment(cache: Path, seed: int = 0) -> tuple[str, dict[str, str]]:
    """MeloTTS's Python (a venv built once under `cache` by scripts/install_melotts.sh from the vendored archive) and
    the environment variables that point it at offline stand-ins of its downloads (tests/support/
    melotts_standins.py, built once). Raises FileNotFoundError when the archive is absent."""
    if not MELOTTS_ARCHIVE.is_file():
        raise FileNotFoundError(f"MeloTTS's source archive is not at {MELOTTS_ARCHIVE}")
    venv = cache / "venv"
    subprocess.run([str(REPO / "scripts" / "install_melotts.sh"), str(venv), str(MELOTTS_ARCHIVE)], check=True)
    python = str(venv / "bin" / "python")
    root = cache / f"standins-seed{seed}"
    env_file = root / "env.json"
    if not env_file.is_file():
        done = subprocess.run([python, str(STANDINS), "--root", str(root), "--archive", str(MELOTTS_ARCHIVE),
                               "--seed", str(seed)], check=True, capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        env_file.write_text(done.stdout.strip().splitlines()[-1])
    return python, json.loads(env_file.read_text())
