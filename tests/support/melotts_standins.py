"""Offline stand-ins for everything MeloTTS downloads, built with MeloTTS's own classes; run by MeloTTS's Python.

    MELOTTS_VENV/bin/python tests/support/melotts_standins.py --root DIR --archive MeloTTS-2374f46.tar.gz [--seed 0]

MeloTTS fetches its voice (config.json + checkpoint.pth of `myshell-ai/MeloTTS-English`), BERT models and
tokenizers from the Hugging Face hub, nltk data (g2p_en's tagger and cmudict) from nltk's server, and the UniDic
dictionary (`python -m unidic download`, MeCab at import). None of these can be downloaded here, so this writes files
of the same formats at the places MeloTTS's own loaders look (offline mode: `HF_HUB_OFFLINE=1`):

- DIR/hf/hub: the hub cache layout (`models--ORG--NAME/refs/main`, `snapshots/REV/...`) with
  * `myshell-ai/MeloTTS-English`: MeloTTS's own `configs/config.json` (from the archive; the package does not install
    it) completed as its `preprocess_text.py` completes it (symbols, num_tones, num_languages) with the English
    speakers, and a `checkpoint.pth` of `melo.models.SynthesizerTrn` built from that config as `melo.api.TTS` builds
    it, random weights (torch seed `--seed`), saved with MeloTTS's own `utils.save_checkpoint`;
  * `bert-base-uncased`: `BertForMaskedLM` of BERT-base's architecture (transformers' `BertConfig()` defaults:
    12 layers, 768 wide, vocabulary 30522), random weights, and a WordPiece vocabulary built here (BERT's special
    tokens and ids, characters and '##' characters, padded with [unused] tokens): words split into characters, so
    MeloTTS's word grouping (it joins '##' pieces back into words) sees the same words as with the real vocabulary;
  * the tokenizers `melo.text` loads at import for its other languages (French, Spanish, multilingual, Korean,
    Japanese with MeCab and unidic-lite), same tokenizer classes, built vocabularies;
- DIR/nltk_data: `corpora/cmudict.zip` in nltk's format, converted from the CMU dictionary MeloTTS ships
  (`melo/text/cmudict.rep` in the archive), and `taggers/averaged_perceptron_tagger.zip` holding an untrained
  `PerceptronTagger` pickle (nltk's format: weights, tag dictionary, Penn Treebank classes; every word gets one tag);
- UniDic: MeloTTS's venv gets `unidic/dicdir` linked to unidic-lite's dictionary (PyPI), a smaller UniDic of the same
  format (only the Japanese front end reads it; MeloTTS's English needs MeCab to start, not to tag).

Prints a JSON object of the environment variables that point MeloTTS at them (HF_HOME, HF_HUB_OFFLINE,
TRANSFORMERS_OFFLINE, NLTK_DATA). Self-contained: imports nothing of the artifact (MeloTTS's venv has other pins).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import string
import sys
import tarfile
import zipfile
from pathlib import Path

REVISION = "0" * 40  # the snapshot id of every stand-in repository (a hub commit id has 40 hex digits)
ENGLISH_REPO = "myshell-ai/MeloTTS-English"
ENGLISH_SPEAKERS = {"EN-US": 0, "EN-BR": 1, "EN_INDIA": 2, "EN-AU": 3, "EN-Default": 4}
# Tokenizers `melo.text` loads when it is imported (one per language module), with their real tokenizer settings.
TOKENIZERS = {
    "bert-base-uncased": {"do_lower_case": True},
    "dbmdz/bert-base-french-europeana-cased": {"do_lower_case": False},
    "dccuchile/bert-base-spanish-wwm-uncased": {"do_lower_case": True},
    "bert-base-multilingual-uncased": {"do_lower_case": True},
    "kykim/bert-kor-base": {"do_lower_case": False},
    "tohoku-nlp/bert-base-japanese-v3": {
        "tokenizer_class": "BertJapaneseTokenizer", "do_lower_case": False, "word_tokenizer_type": "mecab",
        "subword_tokenizer_type": "wordpiece", "mecab_kwargs": {"mecab_dic": "unidic_lite"}},
}
PENN_TAGS = ("CC CD DT EX FW IN JJ JJR JJS LS MD NN NNP NNPS NNS PDT POS PRP PRP$ RB RBR RBS RP SYM TO UH VB VBD VBG "
             "VBN VBP VBZ WDT WP WP$ WRB . , : ( ) '' ``").split()


def snapshot(hub: Path, repo: str) -> Path:
    """The snapshot folder of stand-in `repo` in the hub cache `hub` (created, with refs/main pointing at it)."""
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    path = folder / "snapshots" / REVISION
    path.mkdir(parents=True, exist_ok=True)
    return path


def wordpiece_vocab(size: int | None = None) -> list[str]:
    """BERT's special tokens at BERT-base-uncased's ids ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103),
    printable characters and their '##' continuations, then [unused] tokens up to `size`."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [c for c in string.printable if not c.isspace()]
    vocab += chars + [f"##{c}" for c in chars if c.isalnum()]
    unused = 99
    while size is not None and len(vocab) < size:
        vocab.append(f"[unused{unused}]")
        unused += 1
    return vocab


def write_tokenizer(hub: Path, repo: str, settings: dict, vocab_size: int | None = None) -> Path:
    """A BERT tokenizer stand-in for `repo`: vocab.txt, tokenizer_config.json and a BERT config.json."""
    from transformers import BertConfig

    path = snapshot(hub, repo)
    vocab = wordpiece_vocab(vocab_size)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512, **settings}, indent=2))
    BertConfig(vocab_size=len(vocab)).to_json_file(str(path / "config.json"))
    return path


def write_bert(hub: Path, seed: int) -> None:
    """bert-base-uncased: BERT-base architecture with random weights, and its tokenizer stand-in."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    path = write_tokenizer(hub, "bert-base-uncased", TOKENIZERS["bert-base-uncased"], vocab_size=30522)
    config = BertConfig()  # BERT-base: 12 layers, 12 heads, hidden 768, vocabulary 30522 (bert-base-uncased's)
    torch.manual_seed(seed)
    BertForMaskedLM(config).eval().save_pretrained(str(path))


def write_nltk_data(root: Path, cmudict_rep: bytes) -> None:
    """nltk's `corpora/cmudict.zip` (from MeloTTS's CMU dictionary) and an untrained perceptron tagger."""
    lines = []
    for line in cmudict_rep.decode("latin-1").splitlines():
        if line.startswith("##") or "  " not in line:
            continue
        word, _, syllables = line.partition("  ")
        lines.append(f"{word.lower()} 1 {' '.join(syllables.replace(' - ', ' ').split())}")
    corpora, taggers = root / "corpora", root / "taggers"
    corpora.mkdir(parents=True, exist_ok=True)
    taggers.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(corpora / "cmudict.zip", "w") as archive:
        archive.writestr("cmudict/cmudict", "\n".join(lines) + "\n")
        archive.writestr("cmudict/README", "Converted from MeloTTS's melo/text/cmudict.rep for offline tests.\n")
    model = pickle.dumps(({}, {}, set(PENN_TAGS)), 2)  # (weights, tag dictionary, classes), as nltk pickles it
    with zipfile.ZipFile(taggers / "averaged_perceptron_tagger.zip", "w") as archive:
        archive.writestr("averaged_perceptron_tagger/averaged_perceptron_tagger.pickle", model)


def link_unidic() -> None:
    """Point the `unidic` package's (undownloaded) dictionary folder at unidic-lite's dictionary."""
    import unidic
    import unidic_lite

    dicdir = Path(unidic.DICDIR)
    if not (dicdir / "mecabrc").is_file():
        if dicdir.is_symlink():
            dicdir.unlink()
        dicdir.symlink_to(Path(unidic_lite.DICDIR), target_is_directory=True)


def write_voice(hub: Path, config_json: bytes, seed: int) -> None:
    """MeloTTS-English's config.json and a random-weight checkpoint.pth, built as `melo.api.TTS` builds the model."""
    import torch
    from melo import utils
    from melo.models import SynthesizerTrn
    from melo.text.symbols import num_languages, num_tones, symbols

    config = json.loads(config_json)
    config["data"]["spk2id"] = dict(ENGLISH_SPEAKERS)
    config["num_languages"], config["num_tones"], config["symbols"] = num_languages, num_tones, list(symbols)
    path = snapshot(hub, ENGLISH_REPO)
    (path / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    hps = utils.get_hparams_from_file(str(path / "config.json"))
    torch.manual_seed(seed)
    model = SynthesizerTrn(len(hps.symbols), hps.data.filter_length // 2 + 1,
                           hps.train.segment_size // hps.data.hop_length, n_speakers=hps.data.n_speakers,
                           num_tones=hps.num_tones, num_languages=hps.num_languages, **hps.model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), hps.train.learning_rate, betas=hps.train.betas,
                                  eps=hps.train.eps)
    utils.save_checkpoint(model, optimizer, hps.train.learning_rate, 0, str(path / "checkpoint.pth"))


def archive_member(archive: Path, suffix: str) -> bytes:
    """The bytes of the member of the git archive `archive` whose path ends with `suffix`."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.endswith(suffix):
                return tar.extractfile(member).read()
    raise FileNotFoundError(f"{archive} has no {suffix}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--archive", type=Path, required=True, help="git archive of MeloTTS at MELOTTS_COMMIT")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = args.root.resolve()
    env = {"HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "NLTK_DATA": str(root / "nltk_data")}
    os.environ.update(env)
    sys.stdout = io.StringIO()  # the libraries' chatter must not mix with the JSON answer
    hub = root / "hf" / "hub"
    for repo, settings in TOKENIZERS.items():
        if repo != "bert-base-uncased":
            write_tokenizer(hub, repo, settings)
    write_bert(hub, args.seed)
    write_nltk_data(root / "nltk_data", archive_member(args.archive, "melo/text/cmudict.rep"))
    link_unidic()
    write_voice(hub, archive_member(args.archive, "melo/configs/config.json"), args.seed)  # imports melo.text
    sys.stdout = sys.__stdout__
    print(json.dumps(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
