#!/usr/bin/env python3
"""Fetch the paper's speech front end's downloadable weights into one folder (the container does this at build time).

    python scripts/fetch_weights.py --root /opt/weights [--melotts-python /opt/melotts/bin/python]

- Whisper `small` (openai-whisper; the download is checked against the sha256 in its URL) into ROOT/whisper/, the
  download root the recognizer uses when ARTIFACT_WHISPER_DIR=ROOT/whisper.
- torchaudio's MMS_FA aligner into ROOT/torch/hub/checkpoints/, torch.hub's folder when TORCH_HOME=ROOT/torch.
- MeloTTS (with --melotts-python, the Python of MeloTTS's own virtual environment): nltk's data for g2p_en into
  ROOT/nltk_data/ (NLTK_DATA), then MeloTTS's own downloads through the artifact's worker
  (artifact/speech/melotts_worker.py --fetch: UniDic's dictionary into the unidic package of that venv, and, by
  loading the English voice and synthesising once, everything MeloTTS fetches from the Hugging Face hub: the voice,
  bert-base-uncased, the tokenizers its other languages load at import) into ROOT/huggingface/hub/ (HF_HUB_CACHE;
  HUGGINGFACE_HUB_CACHE for MeloTTS's transformers 4.27). Then the same --fetch runs again with the hub offline (a
  synthesis from the baked files alone), and the worker's --probe, which the artifact asks before choosing MeloTTS,
  must report nothing missing.

Writes ROOT/SHA256SUMS (sha256 of every file under ROOT) and prints it. Needs network access; runs in the container
build (FETCH_WEIGHTS=1), not in tests or CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

SUMS_FILE = "SHA256SUMS"
NLTK_PACKAGES = ("averaged_perceptron_tagger", "cmudict")  # what g2p_en 2.1.0 downloads at import
WORKER = Path(__file__).resolve().parents[1] / "artifact" / "speech" / "melotts_worker.py"
MELOTTS_LANGUAGE = "EN"


def fetch_whisper(root: Path, name: str = "small") -> None:
    """Download (and load once, as a check) the Whisper model `name` into `root`/whisper."""
    import whisper

    whisper.load_model(name, device="cpu", download_root=str(root / "whisper"))


def fetch_mms_fa(root: Path) -> None:
    """Download (and load once) torchaudio's MMS_FA weights into torch.hub's folder under `root`/torch."""
    import torch
    import torchaudio

    torch.hub.set_dir(str(root / "torch" / "hub"))
    torchaudio.pipelines.MMS_FA.get_model(with_star=False)


def melotts_env(root: Path, offline: bool = False) -> dict[str, str]:
    """The variables that point MeloTTS's libraries at the baked files under `root` (the image sets the same)."""
    hub = str(root / "huggingface" / "hub")
    flag = "1" if offline else "0"
    return {"HF_HUB_CACHE": hub, "HUGGINGFACE_HUB_CACHE": hub, "NLTK_DATA": str(root / "nltk_data"),
            "HF_HUB_OFFLINE": flag, "TRANSFORMERS_OFFLINE": flag}


def _run(command: list[str], env: dict[str, str]) -> str:
    """Run `command` with `env` added to the environment; its standard output."""
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, env={**os.environ, **env}, check=True, stdout=subprocess.PIPE, text=True).stdout


def fetch_melotts(root: Path, python: str, language: str = MELOTTS_LANGUAGE) -> None:
    """Bake MeloTTS's downloads (nltk data, UniDic, the hub files) with MeloTTS's own code in its venv (`python`);
    then check that they suffice offline. RuntimeError naming what is missing otherwise."""
    _run([python, "-m", "nltk.downloader", "-d", str(root / "nltk_data"), *NLTK_PACKAGES], melotts_env(root))
    fetch = [python, str(WORKER), "--fetch", "--language", language, "--device", "cpu"]
    _run(fetch, melotts_env(root))
    _run(fetch, melotts_env(root, offline=True))
    answer = _run([python, str(WORKER), "--probe", "--language", language], melotts_env(root, offline=True))
    probe = json.loads(answer.strip().splitlines()[-1])
    if not probe.get("installed") or probe.get("missing"):
        raise RuntimeError(f"MeloTTS still lacks files after the fetch: {probe}")


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def write_sums(root: Path) -> str:
    """Write `root`/SHA256SUMS (sha256sum format, paths relative to `root`, sorted) and return its text."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.name != SUMS_FILE)
    text = "".join(f"{sha256(p)}  {p.relative_to(root)}\n" for p in files)
    (root / SUMS_FILE).write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder for the weights (e.g. /opt/weights)")
    parser.add_argument("--whisper", default="small", help="Whisper model name (default: small, the paper's)")
    parser.add_argument("--melotts-python", help="Python of MeloTTS's venv (e.g. /opt/melotts/bin/python); "
                                                 "without it MeloTTS's weights are not fetched")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCH_HOME", str(root / "torch"))
    fetch_whisper(root, args.whisper)
    fetch_mms_fa(root)
    if args.melotts_python:
        fetch_melotts(root, args.melotts_python)
    else:
        print("MeloTTS: no --melotts-python, its weights are not fetched", file=sys.stderr)
    print(write_sums(root), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
