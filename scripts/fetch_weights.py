#!/usr/bin/env python3
"""Fetch the speech front end's downloadable weights into one folder (the container does this at build time).

    python scripts/fetch_weights.py --root /opt/weights

- Whisper `small` (openai-whisper; the download is checked against the sha256 in its URL) into ROOT/whisper/.
  `whisper.load_model("small")` finds it there when its download root is ROOT/whisper (the Dockerfile links
  ~/.cache/whisper to it).
- torchaudio's MMS_FA aligner into ROOT/torch/hub/checkpoints/, torch.hub's folder when TORCH_HOME=ROOT/torch.

Writes ROOT/SHA256SUMS (sha256 of every file under ROOT) and prints it. Needs network access; runs in the
container build, not in tests or CI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

SUMS_FILE = "SHA256SUMS"


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
    args = parser.parse_args(argv)
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCH_HOME", str(root / "torch"))
    fetch_whisper(root, args.whisper)
    fetch_mms_fa(root)
    print(write_sums(root), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
