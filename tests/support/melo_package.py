"""A stand-in `melo` package for the MeloTTS worker's tests: `melo.api.TTS` with MeloTTS's constructor signature
(`TTS(language, device, use_hf, config_path, ckpt_path)`), `.language` and `hps.data.spk2id`; each test adds what its
stand-in does (extra constructor lines, `tts_to_file`). MeloTTS itself runs in tests/speech/test_paper_backends.py
where its venv exists."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

HEADER = '''\
import json, os, random, types
import numpy as np
from scipy.io import wavfile


class TTS:
    def __init__(self, language, device="auto", use_hf=True, config_path=None, ckpt_path=None):
        self.hps = types.SimpleNamespace(data=types.SimpleNamespace(spk2id={speakers!r}))
        self.language = language
'''


def write_melo_package(folder: Path, methods: str, init: str = "", speakers: Sequence[str] = ("EN-US",)) -> Path:
    """Write `folder`/melo (an empty __init__.py and api.py) and return `folder`, the PYTHONPATH entry. `init`: more
    statements of TTS.__init__; `methods`: the rest of the class (e.g. `tts_to_file`); both as plain, dedented
    source. `speakers`: hps.data.spk2id's names, with ids 0, 1, ..."""
    package = Path(folder) / "melo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    source = HEADER.format(speakers={name: i for i, name in enumerate(speakers)})
    source += textwrap.indent(textwrap.dedent(init).strip("\n"), " " * 8) + "\n" if init.strip() else ""
    source += "\n" + textwrap.indent(textwrap.dedent(methods).strip("\n"), " " * 4) + "\n"
    (package / "api.py").write_text(source)
    return Path(folder)


__all__ = ["write_melo_package"]
