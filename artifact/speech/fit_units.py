"""Refit the offline speech tokenizer's 500 k-means centroids (reproducible: fixed seed, fixed data, fixed settings).

    python -m artifact.speech.fit_units --facts ../shared/data/known_1000.json

speaks every distinct prompt of the fact file with espeak-ng (default voice and rate), takes 40 log-mel features per
640-sample hop, fits scikit-learn KMeans(500, n_init=1, random_state=0) and writes
artifact/speech/data/kmeans500_logmel40.{npy,json}; then put the printed sha256 into CENTROIDS_SHA256 in units.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from artifact.core.fileio import sha256_file
from artifact.speech import units
from artifact.speech.tts import EspeakTTS


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm  # lazy: tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=Path, required=True, help="fact file (JSON list with a 'prompt' field)")
    parser.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    parser.add_argument("--out", type=Path, default=units.CENTROIDS_PATH, help="centroids .npy to write")
    args = parser.parse_args(argv)
    records = json.loads(args.facts.read_text())
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    prompts = sorted({record["prompt"] for record in records})
    tts = EspeakTTS()
    features = [units.logmel_frames(tts.synthesize(p)) for p in tqdm(prompts, desc="speak + features", unit="prompt")]
    stacked = np.concatenate(features)
    print(f"fitting k-means (500) on {len(stacked)} frames from {len(prompts)} prompts", file=sys.stderr)
    centroids = units.fit_centroids(stacked, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=args.out.parent, suffix=".npy", delete=False) as handle:
        np.save(handle, centroids)
    Path(handle.name).replace(args.out)
    digest = sha256_file(args.out)
    meta = {
        "sha256": digest, "shape": list(centroids.shape), "seed": args.seed, "prompts": len(prompts),
        "frames": int(len(stacked)), "facts_sha256": hashlib.sha256(canonical).hexdigest(),
        "tts": tts.settings(), "features": {"kind": "log-mel", "n_mels": units.N_MELS, "n_fft": units.N_FFT,
                                            "hop": 640, "sample_rate": 16000},
        "kmeans": {"n_clusters": 500, "n_init": 1, "max_iter": 100, "random_state": args.seed},
        "command": "python -m artifact.speech.fit_units --facts ../shared/data/known_1000.json",
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} (sha256 {digest}); set CENTROIDS_SHA256 in artifact/speech/units.py to it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
