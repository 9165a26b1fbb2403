"""MeloTTS worker, run by MeloTTS's own Python (its venv). Three modes:

- serve (default): loads `melo.api.TTS(language, device, config_path=..., ckpt_path=...)` once, then answers one JSON
  request per stdin line with one JSON reply per stdout line. Request: {"text", "speaker", "speed", "path", "seed",
  "sdp_ratio", "noise_scale", "noise_scale_w"}; reply {"ok": true} or {"ok": false, "error": "..."}. Before every
  synthesis, Python's, numpy's and torch's generators are seeded with the request's seed: MeloTTS draws noise at
  inference (the stochastic duration predictor, `z_p = m_p + randn_like(m_p) * exp(logs_p) * noise_scale`), so
  without this a prompt's audio would depend on the prompts synthesised before it in the same process. A warm-up
  synthesis before the first request loads what MeloTTS loads lazily (its BERT model, whose construction draws
  from torch's generator).
- `--probe`: prints one JSON object {"installed", "version", "source", "missing": [...], "checkpoint"} saying which
  of the files MeloTTS would download are absent from its caches (the Hugging Face hub cache, nltk's data path,
  UniDic), without importing `melo` (whose import alone downloads tokenizers) or loading a model.
- `--fetch`: downloads all of them with MeloTTS's own code (needs network): `python -m unidic download` when UniDic
  is absent, then `TTS(language)` and one synthesis (BERT weights load on first use).

Self-contained on purpose (it must not import the artifact, whose dependencies clash with MeloTTS's pins).

MeloTTS loads its checkpoints with `torch.load` without `weights_only`; torch 2.6 (the artifact's torch, which
MeloTTS's venv shares in the container) made True that argument's default, MeloTTS's release predates it. The
worker sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (unless given), torch's switch back to the earlier default, so that
the voice loads as it did with the torch 2.5 MeloTTS was released with; the hub files are pinned by revision.
"""

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
from importlib import metadata

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

# What MeloTTS (commit 2374f46) fetches. `melo.api` imports `melo.text.cleaner`, which imports every language
# module, and each loads its BERT tokenizer from the hub at import time; the language's BERT model loads on the first
# synthesis; `english.py` builds g2p_en's G2p (nltk's tagger and cmudict) and `japanese.py` a MeCab tagger (UniDic).
VOICE_REPOS = {"EN": "myshell-ai/MeloTTS-English", "EN_V2": "myshell-ai/MeloTTS-English-v2",
               "EN_NEWEST": "myshell-ai/MeloTTS-English-v3", "FR": "myshell-ai/MeloTTS-French",
               "JP": "myshell-ai/MeloTTS-Japanese", "ES": "myshell-ai/MeloTTS-Spanish",
               "ZH": "myshell-ai/MeloTTS-Chinese", "KR": "myshell-ai/MeloTTS-Korean"}
IMPORT_TOKENIZERS = ("bert-base-uncased", "dbmdz/bert-base-french-europeana-cased",
                     "dccuchile/bert-base-spanish-wwm-uncased", "bert-base-multilingual-uncased",
                     "kykim/bert-kor-base", "tohoku-nlp/bert-base-japanese-v3")
BERT_MODELS = {"EN": "bert-base-uncased", "FR": "dbmdz/bert-base-french-europeana-cased",
               "ES": "dccuchile/bert-base-spanish-wwm-uncased", "ZH": "bert-base-multilingual-uncased",
               "JP": "tohoku-nlp/bert-base-japanese-v3", "KR": "kykim/bert-kor-base"}
WARMUP = {"EN": "Hello.", "FR": "Bonjour.", "ES": "Hola.", "ZH_MIX_EN": "你好。", "JP": "こんにちは。",
          "KR": "안녕하세요."}  # a short text per MeloTTS text language (TTS.language)
NLTK_RESOURCES = ("taggers/averaged_perceptron_tagger.zip", "corpora/cmudict.zip")  # g2p_en checks these two


def seed_everything(seed: int) -> None:
    """Seed every generator MeloTTS's inference may draw from: Python's, numpy's and (loaded with melo.api) torch's,
    which also seeds every CUDA device."""
    import numpy as np  # lazy: numpy

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def nltk_data_path() -> list:
    """nltk's data search path (`nltk.data.path` of nltk 3.8 on POSIX), without importing nltk (seconds)."""
    path = [d for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    if os.path.expanduser("~/") != "~/":
        path.append(os.path.expanduser("~/nltk_data"))
    path += [os.path.join(sys.prefix, "nltk_data"), os.path.join(sys.prefix, "share", "nltk_data"),
             os.path.join(sys.prefix, "lib", "nltk_data"), "/usr/share/nltk_data", "/usr/local/share/nltk_data",
             "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]
    return path


def _hub_file(repo: str, filename: str):
    """The cached path of `filename` of hub repository `repo` (revision main), or None."""
    from huggingface_hub import try_to_load_from_cache  # lazy: huggingface_hub

    found = try_to_load_from_cache(repo_id=repo, filename=filename)
    return found if isinstance(found, str) else None


def probe(language: str, config_path, ckpt_path) -> dict:
    """What MeloTTS would download for `language` and is not cached: {"missing": [...], ...}. Loads no model."""
    missing = []
    if importlib.util.find_spec("melo") is None or importlib.util.find_spec("melo.api") is None:
        return {"installed": False, "version": None, "source": None, "checkpoint": None,
                "missing": ["the melo package (MeloTTS) is not importable"]}
    try:
        distribution = metadata.distribution("melotts")
    except metadata.PackageNotFoundError:  # importable from a source folder, not installed
        distribution = None
    version = distribution.version if distribution else "unknown"
    source = None
    direct = distribution.read_text("direct_url.json") if distribution else None
    if direct:
        info = json.loads(direct)
        source = (info.get("vcs_info") or {}).get("commit_id") or os.path.basename(info.get("url", "")) or None
    text_language = language.split("_")[0].upper()
    checkpoint = None
    for option, path, filename in (("config_path", config_path, "config.json"),
                                   ("ckpt_path", ckpt_path, "checkpoint.pth")):
        if path is not None:
            if not os.path.isfile(path):
                missing.append(f"{option} {path} (no such file)")
            elif filename == "checkpoint.pth":
                checkpoint = os.path.abspath(path)
        elif language not in VOICE_REPOS:
            missing.append(f"a MeloTTS voice for language {language!r} (known: {', '.join(VOICE_REPOS)})")
        else:
            found = _hub_file(VOICE_REPOS[language], filename)
            if found is None:
                missing.append(f"hub {VOICE_REPOS[language]}/{filename}")
            elif filename == "checkpoint.pth":
                checkpoint = f"{VOICE_REPOS[language]}@{os.path.basename(os.path.dirname(found))}"
    for repo in IMPORT_TOKENIZERS:
        if _hub_file(repo, "vocab.txt") is None:
            missing.append(f"hub {repo}/vocab.txt (tokenizer loaded when melo.api is imported)")
    bert = BERT_MODELS.get(text_language)
    if bert is not None:
        if _hub_file(bert, "config.json") is None:
            missing.append(f"hub {bert}/config.json (BERT features of the text)")
        if _hub_file(bert, "pytorch_model.bin") is None and _hub_file(bert, "model.safetensors") is None:
            missing.append(f"hub {bert}/pytorch_model.bin (BERT features of the text)")
    if text_language == "EN":
        folders = nltk_data_path()
        for resource in NLTK_RESOURCES:
            if not any(os.path.exists(os.path.join(folder, resource)) for folder in folders):
                missing.append(f"nltk data {resource} (g2p_en) in none of {os.pathsep.join(folders)}")
    spec = importlib.util.find_spec("unidic")
    if spec is not None and spec.origin:
        dicdir = os.path.join(os.path.dirname(spec.origin), "dicdir")
        if not os.path.isfile(os.path.join(dicdir, "mecabrc")):
            missing.append(f"UniDic dictionary {dicdir} (MeCab starts when melo.api is imported)")
    return {"installed": True, "version": version, "source": source, "missing": missing, "checkpoint": checkpoint}


def fetch(language: str, device: str) -> int:
    """Download everything MeloTTS needs for `language` with its own code (network access needed)."""
    spec = importlib.util.find_spec("unidic")
    if spec is not None and not os.path.isfile(os.path.join(os.path.dirname(spec.origin), "dicdir", "mecabrc")):
        subprocess.run([sys.executable, "-m", "unidic", "download"], check=True)
    from melo.api import TTS  # lazy: optional melo

    model = TTS(language=language, device=device)
    speaker = next(iter(model.hps.data.spk2id.values()))
    model.tts_to_file("Hello.", speaker, None, quiet=True)  # loads the language's BERT model
    return 0


def serve(args: argparse.Namespace, replies) -> int:
    """Answer synthesis requests from stdin until it closes."""
    from melo.api import TTS  # lazy: optional melo

    model = TTS(language=args.language, device=args.device, config_path=args.config_path, ckpt_path=args.ckpt_path)
    speakers = model.hps.data.spk2id
    # Warm-up: MeloTTS loads the language's BERT model on its first synthesis, and building it draws from torch's
    # generator (transformers initialises weights before loading them), so the first seeded request would get other
    # noise than the same request later. One synthesis now keeps every request's draws to its own seed.
    model.tts_to_file(WARMUP.get(model.language, "Hello."), next(iter(speakers.values())), None, quiet=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request["speaker"] not in speakers:
                raise KeyError(f"speaker {request['speaker']!r} is not one of this voice's: {', '.join(speakers)}")
            seed_everything(int(request["seed"]))
            model.tts_to_file(request["text"], speakers[request["speaker"]], request["path"],
                              speed=float(request.get("speed", 1.0)), quiet=True,
                              sdp_ratio=float(request.get("sdp_ratio", 0.2)),
                              noise_scale=float(request.get("noise_scale", 0.6)),
                              noise_scale_w=float(request.get("noise_scale_w", 0.8)))
            reply = {"ok": True}
        except Exception as exc:  # report to the parent, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", default="EN")
    parser.add_argument("--device", default="cpu", help="cpu (default: the same audio on every host), cuda or auto")
    parser.add_argument("--config-path", default=None, help="MeloTTS config.json (default: the hub's, per language)")
    parser.add_argument("--ckpt-path", default=None, help="MeloTTS checkpoint.pth (default: the hub's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--probe", action="store_true", help="print what is missing as JSON; load nothing")
    mode.add_argument("--fetch", action="store_true", help="download everything MeloTTS needs (network)")
    args = parser.parse_args()
    replies = sys.stdout
    sys.stdout = sys.stderr  # MeloTTS and its libraries print progress; keep the reply channel clean
    if args.probe:
        replies.write(json.dumps(probe(args.language, args.config_path, args.ckpt_path)) + "\n")
        return 0
    if args.fetch:
        return fetch(args.language, args.device)
    return serve(args, replies)


if __name__ == "__main__":
    sys.exit(main())
