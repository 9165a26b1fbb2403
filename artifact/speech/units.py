"""Speech tokenizer: waveform -> speech units at 25 Hz, deduplicated into SpiritLM tokens with the frames each
token covers kept (`SpeechUnits`).

Backends: `spiritlm` (Meta's own tokenizer from the `spiritlm` package: mHuBERT-25Hz layer 11 + its linear
quantizer, units 0..499 and the CTC blank's id 500, i.e. `[Hu0]`..`[Hu500]`; container, gated weights) and
`kmeans-logmel` (offline stand-in at the same rate with units 0..499: 40 log-mel bands per 640-sample hop, nearest
of 500 k-means centroids fitted on espeak-ng speech of ROME's prompts; the centroids ship in `data/`, fingerprint
checked at load; refit with `python -m artifact.speech.fit_units`).
"""

from __future__ import annotations

import abc
import hashlib
import importlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from artifact.core.fileio import sha256_file
from artifact.core.spiritlm import CHECKPOINTS_ENV, SPEECH_TOKENIZER_FILES
from artifact.speech.base import SAMPLE_RATE, UNIT_HOP, UNIT_RATE, VOCABULARY, SpeechUnits, check_audio
from artifact.speech.recognition import dist_version
from artifact.speech.registry import Backend, Registry, require_module
from artifact.speech.weight_names import check_weight_names, recorded_weight_loads

DATA_DIR = Path(__file__).resolve().parent / "data"
CENTROIDS_PATH = DATA_DIR / "kmeans500_logmel40.npy"
# sha256 of CENTROIDS_PATH's bytes; `python -m artifact.speech.fit_units` prints the new value after a refit.
CENTROIDS_SHA256 = "43a3efc86b4396c4126cb40bddd7bb5b9788fd9421644e393e2bf8698552cc61"
N_MELS = 40
N_FFT = 1024
SPIRITLM_INSTALL = ("scripts/install_spiritlm.sh (Meta's package from github.com/facebookresearch/spiritlm at the "
                    "commit in SPIRITLM_COMMIT; --no-deps), or offline: scripts/install_spiritlm.sh ARCHIVE.tar.gz "
                    "with a `git archive` of that commit")

HUBERT_LAYER = 11  # spiritlm_hubert()'s hubert_layer: the quantizer reads layer 11's features
# Units of the spiritlm backend: the quantizer's 500 clusters plus its CTC blank (id 500), which the quantizer
# replaces by its left neighbour except where a whole chunk is blank; SpiritLM's vocabulary has [Hu0]..[Hu500].
SPIRITLM_UNITS = VOCABULARY + 1


class UnitTokenizer(Backend):
    """Speech to units at 25 Hz, ids in [0, units). `settings()` keys the cache, so it names everything the units
    depend on (for learned models: the weights' fingerprint: centroids' or checkpoints' sha256)."""

    units: int = VOCABULARY  # unit ids are 0..units-1
    min_samples: int = UNIT_HOP  # shortest audio the backend gives units for

    @abc.abstractmethod
    def _frames(self, audio: np.ndarray) -> list[int]:
        """One unit per 640-sample frame of [samples] float32 16 kHz audio."""

    frame_rate: float = UNIT_RATE

    def encode(self, audio: np.ndarray) -> SpeechUnits:
        """Units of `audio` ([samples] float32 16 kHz), deduplicated with the frame-to-token map kept."""
        audio = check_audio(audio)
        if len(audio) < self.min_samples:
            raise ValueError(f"The audio is {len(audio)} samples long; the {self.name} tokenizer needs at least "
                             f"{self.min_samples} ({1000 * self.min_samples // SAMPLE_RATE} ms).")
        frames = self._frames(audio)
        if any(not 0 <= u < self.units for u in frames):
            raise ValueError(f"{self.name} produced units outside [0, {self.units}).")
        return SpeechUnits.from_frames(frames, self.frame_rate)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters on the HTK mel scale, 0 Hz to Nyquist."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(0.0), mel(rate / 2), n_mels + 2))
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def logmel_frames(audio: np.ndarray) -> np.ndarray:
    """[frames, 40] log-mel features, one per 640-sample hop (frame i is centred on samples [i*640, (i+1)*640)),
    from a 1024-sample Hann window; frames = len(audio) // 640."""
    audio = np.asarray(audio, dtype=np.float64)
    count = len(audio) // UNIT_HOP
    pad = N_FFT // 2
    padded = np.pad(audio, (pad, pad))
    centres = np.arange(count) * UNIT_HOP + UNIT_HOP // 2 + pad
    index = centres[:, None] + np.arange(-N_FFT // 2, N_FFT // 2)[None]
    windows = padded[index] * np.hanning(N_FFT)[None]
    power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
    return np.log(power @ _filterbank().T + 1e-6).astype(np.float32)


@lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    return mel_filterbank()


def nearest_centroid(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[frames] index of the nearest centroid (squared Euclidean) of each row of `features` [frames, dim]."""
    distances = (features ** 2).sum(1)[:, None] - 2.0 * features @ centroids.T + (centroids ** 2).sum(1)[None]
    return distances.argmin(axis=1)


def load_centroids(path: Path = CENTROIDS_PATH, sha256: str | None = None) -> np.ndarray:
    """The shipped [500, 40] centroids, after checking the file's sha256 against `CENTROIDS_SHA256`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; refit it with: python -m artifact.speech.fit_units")
    expected = sha256 or CENTROIDS_SHA256
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path} has sha256 {actual}, expected {expected}: the unit model changed. Restore it "
                         "(git checkout) or, after a deliberate refit, update CENTROIDS_SHA256 in "
                         "artifact/speech/units.py.")
    centroids = np.load(path)
    if centroids.shape != (VOCABULARY, N_MELS):
        raise ValueError(f"{path} holds shape {centroids.shape}, expected ({VOCABULARY}, {N_MELS}).")
    return centroids.astype(np.float32)


class KMeansUnitTokenizer(UnitTokenizer):
    """Offline stand-in for SpiritLM's HuBERT tokenizer: log-mel frames at 25 Hz -> nearest of 500 centroids."""

    name = "kmeans-logmel"

    def __init__(self, centroids: np.ndarray | None = None, fingerprint: str | None = None) -> None:
        if centroids is None:
            centroids = load_centroids()
            fingerprint = CENTROIDS_SHA256
        elif fingerprint is None:
            fingerprint = hashlib.sha256(np.ascontiguousarray(centroids, dtype=np.float32).tobytes()).hexdigest()
        if centroids.shape != (VOCABULARY, N_MELS):
            raise ValueError(f"Centroids must have shape ({VOCABULARY}, {N_MELS}); got {centroids.shape}.")
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.fingerprint = fingerprint

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "features": f"log-mel {N_MELS}, n_fft {N_FFT}, hop {UNIT_HOP}",
                "units": VOCABULARY, "centroids_sha256": self.fingerprint}

    def _frames(self, audio: np.ndarray) -> list[int]:
        return nearest_centroid(logmel_frames(audio), self.centroids).tolist()


class SpiritLMUnitTokenizer(UnitTokenizer):
    """SpiritLM's own speech tokenizer: mHuBERT 25 Hz, layer 11, and its linear quantizer (500 units + blank).

    Built as `spiritlm.speech_tokenizer.spiritlm_hubert()` builds it (same `HubertTokenizer` arguments), but from
    an explicit checkpoints root instead of the path spiritlm fixes from $SPIRITLM_CHECKPOINTS_DIR when first
    imported, and with only the two `speech_tokenizer/hubert_25hz/` files: units need no vocoder, so
    `spiritlm_base()` (which also loads HiFi-GAN) is not used. Frames come from spiritlm's
    `SpiritLMTokenizer.encode_units`, so the chunking (100 s) and minimum length (1280 samples) are Meta's.
    `checkpoints_dir`: the root holding `speech_tokenizer/` (default $SPIRITLM_CHECKPOINTS_DIR); `device`: default
    spiritlm's own choice (CUDA, else MPS, else CPU).
    """

    name = "spiritlm"
    units = SPIRITLM_UNITS

    def __init__(self, checkpoints_dir: str | Path | None = None, device: str | None = None) -> None:
        if importlib.util.find_spec("spiritlm") is None:  # fail before the checks below and the ~20 s import
            raise RuntimeError(f"The {self.name!r} backend needs Meta's spiritlm package, which is not installed. "
                               f"Install it with: {SPIRITLM_INSTALL}")
        paths = speech_tokenizer_paths(checkpoints_dir)
        speech_tokenizer = require_module("spiritlm.speech_tokenizer", SPIRITLM_INSTALL, self.name)
        hubert_module = importlib.import_module("spiritlm.speech_tokenizer.hubert")

        # The cache key's model identity: sha256 of both files, hashed once here (the real HuBERT is ~380 MB).
        self.fingerprint = {path.name: sha256_file(path) for path in paths}
        device = device or hubert_module.CURRENT_DEVICE
        try:
            with recorded_weight_loads() as loads:  # spiritlm loads HuBERT with strict=False: see weight_names
                hubert = hubert_module.HubertTokenizer(hubert_ckpt=paths[0], hubert_layer=HUBERT_LAYER,
                                                       quantizer_ckpt=paths[1], is_linear_quantizer=True)
        except Exception as exc:
            raise RuntimeError(f"spiritlm could not load its HuBERT tokenizer from {paths[0].parent} "
                               f"({type(exc).__name__}: {exc}). The files must be Meta's mhubert_base_25hz.pt and "
                               "L11_quantizer_500.pt.") from exc
        if not any(load.module == "HubertModel" for load in loads):
            raise RuntimeError("spiritlm's HubertTokenizer loaded no HubertModel weights through load_state_dict, so "
                               "their names cannot be checked: is the installed spiritlm the pinned commit? Reinstall "
                               f"it with {SPIRITLM_INSTALL}.")
        for load in loads:  # before any audio is encoded, and before the model moves to the GPU
            hubert_file = load.module == "HubertModel"
            check_weight_names(load, paths[0] if hubert_file else paths[1],
                               "Meta's " + ("mhubert_base_25hz.pt" if hubert_file else "L11_quantizer_500.pt")
                               + f" in {paths[0].parent} (speech_tokenizer/hubert_25hz of Meta's checkpoints)")
        hubert = hubert.to(device)
        if hubert.code_hop_size != UNIT_HOP:
            raise ValueError(f"{paths[0]} has a hop of {hubert.code_hop_size} samples, not {UNIT_HOP}: it is not the "
                             "25 Hz HuBERT that SpiritLM base was trained on.")
        if hubert.quantizer_model.vocab_size != VOCABULARY:
            raise ValueError(f"{paths[1]} has {hubert.quantizer_model.vocab_size} units, not SpiritLM's {VOCABULARY}.")
        self._tokenizer = speech_tokenizer.SpiritLMTokenizer(hubert_model=hubert)
        self.min_samples = max(self._tokenizer.min_wav_chunk, UNIT_HOP)
        self.device = str(hubert.device)

        self._version = dist_version("spiritlm")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version,
                "model": f"mhubert_base_25hz layer {HUBERT_LAYER} + L11_quantizer_500 (linear)",
                "checkpoint_sha256": dict(self.fingerprint), "frame_rate": self.frame_rate, "units": self.units,
                "device": self.device.split(":")[0]}

    def _frames(self, audio: np.ndarray) -> list[int]:
        import torch  # lazy: torch

        units = self._tokenizer.encode_units(torch.from_numpy(audio))  # {"hubert": "12 12 7 ..."}
        return [int(u) for u in units["hubert"].split()]


def speech_tokenizer_paths(checkpoints_dir: str | Path | None = None) -> list[Path]:
    """[HuBERT, quantizer] files under the checkpoints root (default $SPIRITLM_CHECKPOINTS_DIR), or an error naming
    the missing ones. Only these two are needed for units (no vocoder)."""
    root = checkpoints_dir or os.environ.get(CHECKPOINTS_ENV)
    if not root:
        raise RuntimeError(f"No SpiritLM checkpoints for the spiritlm speech tokenizer: set {CHECKPOINTS_ENV} (or "
                           "pass checkpoints_dir) to the checkpoints root holding "
                           f"{' and '.join(map(str, SPEECH_TOKENIZER_FILES))}.")
    paths = [Path(root) / rel for rel in SPEECH_TOKENIZER_FILES]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"The spiritlm speech tokenizer needs {' and '.join(missing)}, which "
                                f"{'is' if len(missing) == 1 else 'are'} missing (units need only the two "
                                f"speech_tokenizer/hubert_25hz files, no vocoder). Check the root with: "
                                f"python -m artifact checkpoints check {root}")
    return paths


UNIT_TOKENIZERS: Registry[UnitTokenizer] = Registry("speech tokenizer")
UNIT_TOKENIZERS.register("kmeans-logmel", "artifact.speech.units:KMeansUnitTokenizer")
UNIT_TOKENIZERS.register("spiritlm", "artifact.speech.units:SpiritLMUnitTokenizer")


def create_unit_tokenizer(name: str = "kmeans-logmel", **options: Any) -> UnitTokenizer:
    """A speech tokenizer by name ('kmeans-logmel', 'spiritlm') with its options (e.g. spiritlm's checkpoints_dir)."""
    return UNIT_TOKENIZERS.create(name, **options)


def fit_centroids(features: np.ndarray, seed: int = 0, max_iter: int = 100) -> np.ndarray:
    """[500, dim] k-means centroids of `features` [frames, dim] (scikit-learn, one seeded k-means++ init)."""
    from sklearn.cluster import KMeans  # lazy: sklearn

    if len(features) < VOCABULARY:
        raise ValueError(f"{len(features)} frames cannot make {VOCABULARY} clusters; synthesise more prompts.")
    model = KMeans(n_clusters=VOCABULARY, n_init=1, max_iter=max_iter, random_state=seed)
    model.fit(np.asarray(features, dtype=np.float64))
    return model.cluster_centers_.astype(np.float32)
