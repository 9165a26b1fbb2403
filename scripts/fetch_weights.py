#!/usr/bin/env python3
"""Fetch the paper's speech front end's downloadable weights into one folder (the container does this at build time).

    python scripts/fetch_weights.py --root /opt/weights [--melotts-python /opt/melotts/bin/python]

- Whisper `small` (openai-whisper; the download is checked against the sha256 in its URL) into ROOT/whisper/, the
  download root the recognizer uses when ARTIFACT_WHISPER_DIR=ROOT/whisper.
- torchaudio's MMS_FA aligner into ROOT/torch/hub/checkpoints/, torch.hub's folder when TORCH_HOME=ROOT/torch.
- MeloTTS (with --melotts-python, the Python of MeloTTS's own virtual environment): everything it loads from the
  Hugging Face hub (the English voice, bert-base-uncased, the tokenizers its other languages load at import) at the
  commits pinned in HUB_REVISIONS below, into ROOT/huggingface/hub/ (HF_HUB_CACHE; HUGGINGFACE_HUB_CACHE for
  MeloTTS's transformers 4.27), each repository's `refs/main` set to its pinned commit, so that MeloTTS's own loads
  of the default branch find exactly those files with the hub offline. Refused before any download while a revision
  is not pinned. Then nltk's data for g2p_en into ROOT/nltk_data/ (NLTK_DATA), and MeloTTS's own remaining downloads
  through the artifact's worker (artifact/speech/melotts_worker.py --fetch, hub offline: UniDic's dictionary into
  the unidic package of that venv, then the English voice loaded and one synthesis from the baked files alone); the
  worker's --probe, which the artifact asks before choosing MeloTTS, must report nothing missing, and every
  `refs/main` must still name its pinned commit.

Writes ROOT/SHA256SUMS (sha256 of every file under ROOT) and prints it. Needs network access; runs in the container
build (FETCH_WEIGHTS=1), not in tests or CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

SUMS_FILE = "SHA256SUMS"
UNPINNED = "UNPINNED"
REVISIONS_FILE = "HUB_REVISIONS.json"  # {repo: {"commit": fetched commit, "pinned": bool}}, written by fetch_hub
# The Hugging Face hub commit of every repository MeloTTS (commit MELOTTS_COMMIT) loads for English: pinned here, in
# one place, so that the baked front end is the same whenever the image is built. Where these were written no hub was
# reachable: the three ids below are snapshot ids of these repositories found in public code (hub cache paths), not
# checked against the hub here; the four UNPINNED ones (tokenizers MeloTTS imports for other languages; they do not
# change English audio) were found nowhere. An UNPINNED repository is fetched at the commit its default branch names
# on build day, with a warning, and that commit is recorded (REVISIONS_FILE, listed in SHA256SUMS and so in every
# run's manifest); `--strict-revisions` refuses the build instead. Pin each with the commit the hub reports for it
# (`huggingface_hub.HfApi().model_info(REPO).sha`, or https://huggingface.co/api/models/REPO, field "sha").
HUB_REVISIONS = {
    "myshell-ai/MeloTTS-English": "0f6ecee6633a651c0d6e6629274e6347266e024d",
    "bert-base-uncased": "86b5e0934494bd15c9632b12f734a8a67f723594",
    "tohoku-nlp/bert-base-japanese-v3": "65243d6e5629b969c77309f217bd7b1a79d43c7e",
    "dbmdz/bert-base-french-europeana-cased": UNPINNED,
    "dccuchile/bert-base-spanish-wwm-uncased": UNPINNED,
    "bert-base-multilingual-uncased": UNPINNED,
    "kykim/bert-kor-base": UNPINNED,
}
# What MeloTTS reads of each (melotts_worker.py --probe checks the same files): the voice's config and checkpoint,
# BERT's tokenizer, config and PyTorch weights, and the other tokenizers' files.
HUB_FILES = {"myshell-ai/MeloTTS-English": ["config.json", "checkpoint.pth"],
             "bert-base-uncased": ["*.json", "*.txt", "pytorch_model.bin"]}
TOKENIZER_FILES = ["*.json", "*.txt"]
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


def unpinned(revisions: dict[str, str] | None = None) -> list[str]:
    """The repositories of `revisions` (default HUB_REVISIONS) without a 40-hex commit id."""
    revisions = HUB_REVISIONS if revisions is None else revisions
    return [repo for repo, commit in revisions.items() if not re.fullmatch(r"[0-9a-f]{40}", commit)]


def fetch_hub(root: Path, revisions: dict[str, str] | None = None) -> dict[str, str]:
    """Download each repository's files at its pinned commit (an UNPINNED one at its default branch's commit today)
    into ROOT/huggingface/hub, point its refs/main at that commit (MeloTTS loads the default branch; with the hub
    offline, refs/main decides which snapshot), and record what was fetched in ROOT/REVISIONS_FILE; {repo: commit}."""
    from huggingface_hub import snapshot_download

    hub = root / "huggingface" / "hub"
    fetched, record = {}, {}
    for repo, commit in (HUB_REVISIONS if revisions is None else revisions).items():
        pinned = not unpinned({repo: commit})
        path = snapshot_download(repo_id=repo, revision=commit if pinned else None, cache_dir=str(hub),
                                 allow_patterns=HUB_FILES.get(repo, TOKENIZER_FILES))
        fetched[repo] = commit if pinned or not path else Path(path).name  # a snapshot folder is named by its commit
        record[repo] = {"commit": fetched[repo], "pinned": pinned}
        ref = hub / ("models--" + repo.replace("/", "--")) / "refs" / "main"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(fetched[repo])
    (root / REVISIONS_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return fetched


def moved_refs(root: Path, revisions: dict[str, str] | None = None) -> list[str]:
    """'repo: refs/main is X, pinned Y' for every repository whose cached default branch is not the commit it was
    fetched at (`revisions`, default: ROOT/REVISIONS_FILE when fetch_hub wrote one, else HUB_REVISIONS)."""
    hub = root / "huggingface" / "hub"
    if revisions is None and (root / REVISIONS_FILE).is_file():
        revisions = {repo: entry["commit"] for repo, entry in json.loads((root / REVISIONS_FILE).read_text()).items()}
    out = []
    for repo, commit in (HUB_REVISIONS if revisions is None else revisions).items():
        ref = hub / ("models--" + repo.replace("/", "--")) / "refs" / "main"
        found = ref.read_text().strip() if ref.is_file() else "absent"
        if found != commit:
            out.append(f"{repo}: refs/main is {found}, pinned {commit}")
    return out


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
    """Bake MeloTTS's downloads (the hub files at their pinned commits, nltk data, UniDic) into `root`, MeloTTS's
    own ones with its own code in its venv (`python`) and the hub offline; then check that they suffice offline and
    that the pins held. RuntimeError naming what is missing or moved otherwise."""
    fetch_hub(root)
    _run([python, "-m", "nltk.downloader", "-d", str(root / "nltk_data"), *NLTK_PACKAGES], melotts_env(root))
    _run([python, str(WORKER), "--fetch", "--language", language, "--device", "cpu"], melotts_env(root, offline=True))
    answer = _run([python, str(WORKER), "--probe", "--language", language], melotts_env(root, offline=True))
    probe = json.loads(answer.strip().splitlines()[-1])
    if not probe.get("installed") or probe.get("missing"):
        raise RuntimeError(f"MeloTTS still lacks files after the fetch: {probe}")
    if moved := moved_refs(root):
        raise RuntimeError(f"the hub cache no longer names the pinned commits: {'; '.join(moved)}")


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
    parser.add_argument("--strict-revisions", action="store_true",
                        help="refuse to build while a hub repository in HUB_REVISIONS is UNPINNED")
    args = parser.parse_args(argv)
    if args.melotts_python and (missing := unpinned()):
        what = (f"the hub revisions of {', '.join(missing)} are not pinned (HUB_REVISIONS in scripts/fetch_weights.py;"
                " pin each to the commit id the hub reports for it, HfApi().model_info(REPO).sha)")
        if args.strict_revisions:
            print(f"fetch_weights: error: {what}; or build without the speech weights (FETCH_WEIGHTS=0)",
                  file=sys.stderr)
            return 2
        print(f"fetch_weights: warning: {what}: they are fetched at the commit their default branch names today, "
              f"recorded in {REVISIONS_FILE} (listed in {SUMS_FILE}, and so in every run's manifest)", file=sys.stderr)
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
