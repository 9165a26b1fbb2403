"""A new speech-text model added from this one file (issue 27): a tiny random GPT-2 (another family than Llama) with its
own word-level tokenizer, its own prompt markers (`<text>`, `<speech>`, `<u0>`..`<u7>`) and its own unit tokenizer
(a deterministic toy: each 40 ms frame's loudness in 8 levels), registered through `artifact.core.speechtext` and the
speech backends' registry only. The pipeline's smoke path runs on it to a verify report.

Files a newcomer touches for such a model: this registry entry (here, in the test), plus a family entry in
`models/families.py` only when the family is new (GPT-2 has one). Nothing else.

The toy "knows" one answer: the final norm's bias and the answer token's (tied) embedding row point the same way, so
' Paris' is the greedy next token after most prompts, by a margin that still depends on the input (so the traces
are not all zero).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artifact.core.speechtext import (
    Loader,
    PromptFormat,
    SpeechTextModel,
    register,
    register_loader,
    unregister,
    unregister_loader,
)
from artifact.speech.units import UNIT_TOKENIZERS, UnitTokenizer

REPO = Path(__file__).resolve().parents[2]
TOY_FORMAT = PromptFormat("toy", text_marker="<text>", speech_marker="<speech>", unit_token="<u{}>")
UNITS = 8
FACTS = [
    ("The capital of France is", "France", "P36"),
    ("The Eiffel Tower is in the city of", "Eiffel Tower", "P131"),
    ("The Louvre museum is in the city of", "Louvre museum", "P131"),
    ("The river Seine flows through the city of", "river Seine", "P17"),
]

pytestmark = [pytest.mark.slow,  # minutes: the whole pipeline, two verify.py runs and a --record
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng (Debian) speaks the prompts")]


class LoudnessUnits(UnitTokenizer):
    """A toy unit tokenizer: each 640-sample frame's log energy, in UNITS equal steps from -12 to 0."""

    name = "toy-loudness"
    units = UNITS

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "units": self.units, "frame": 640, "version": 1}

    def _frames(self, audio: np.ndarray) -> list[int]:
        frames = audio[: len(audio) // 640 * 640].reshape(-1, 640).astype(np.float64)
        level = np.log((frames ** 2).mean(axis=1) + 1e-12)
        return np.clip(((level + 12.0) / 12.0 * self.units).astype(int), 0, self.units - 1).tolist()


def write_toy_model(folder: Path) -> int:
    """A 2-layer GPT-2 (d=32) and its word-level tokenizer over the facts' words and the toy's markers and units."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted({w for prompt, _, _ in FACTS for w in re.findall(r"\w+|[^\w\s]", prompt)} | {"Paris"})
    core = Tokenizer(models.WordLevel({"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    special = [TOY_FORMAT.text_marker, TOY_FORMAT.speech_marker, *(TOY_FORMAT.unit_token.format(u) for u in range(UNITS))]
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=4,
                                       initializer_range=0.2))
    direction = torch.randn(32)
    direction /= direction.norm()
    with torch.no_grad():  # ' Paris' is the answer: the final norm's bias points at its (tied) embedding row
        model.transformer.ln_f.bias.copy_(3.0 * direction)
        model.transformer.wte.weight[tokenizer.convert_tokens_to_ids("Paris")] = 3.0 * direction
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return len(tokenizer)


def load_toy(folder: Path, device: Any = None, dtype: Any = None) -> Any:
    """The toy model as a LoadedModel (fp32 on the CPU), prompts in TOY_FORMAT."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from artifact.models.adapters import ModelAdapter
    from artifact.models.loading import LoadedModel

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32).to(device or "cpu").eval()
    model.requires_grad_(False)
    return LoadedModel("toy-gpt2", model, AutoTokenizer.from_pretrained(folder), ModelAdapter(model), TOY_FORMAT,
                       str(folder))


def toy_fingerprints(folder: Path, spec: str, full_hash: bool | None = None) -> dict[str, Any]:
    from artifact.manifest import folder_fingerprints

    return folder_fingerprints(spec, folder, full_hash)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy registered as speech-text model 'toy' (and its unit tokenizer), removed again afterwards."""
    folder = tmp_path / "toy-gpt2"
    vocab = write_toy_model(folder)
    if LoudnessUnits.name not in UNIT_TOKENIZERS.names:  # the backend registry keeps entries for the process
        UNIT_TOKENIZERS.register(LoudnessUnits.name, f"{__name__}:LoudnessUnits")
    register_loader(Loader("toy-gpt2", functools.partial(load_toy, folder),
                           functools.partial(toy_fingerprints, folder), "a tiny random GPT-2"))
    register(SpeechTextModel(
        name="toy", arm_models={"t2t": "toy-gpt2", "s2t": "toy-gpt2"}, family="gpt2", prompt_format=TOY_FORMAT,
        unit_tokenizer=LoudnessUnits.name, default_profile="smoke", expected_profiles=(),
        shape={"layers": 2, "d_model": 32, "heads": 4, "kv_heads": 4, "head_dim": 8, "d_mlp": 128, "mlp_matrices": 2,
               "vocab": vocab},
        typical_prompts={"t2t": (9, 1, 2), "s2t": (60, 5, 10)}, description="a toy GPT-2",
        offline_only="the toy reads its own loudness units only", offline_banner="front end: offline, toy units"))
    monkeypatch.setenv("ARTIFACT_CACHE_DIR", str(tmp_path / "cache"))  # the speech cache of this test only
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    facts = [{"known_id": i, "subject": subject, "attribute": "Paris", "template": prompt.replace(subject, "{}"),
              "prediction": "", "prompt": prompt, "relation_id": relation}
             for i, (prompt, subject, relation) in enumerate(FACTS)]
    path = tmp_path / "toy_facts.json"
    path.write_text(json.dumps(facts))
    yield path
    unregister("toy")
    unregister_loader("toy-gpt2")


def test_a_toy_speech_text_model_runs_the_smoke_path_to_a_verify_report(toy, tmp_path, capsys):
    from artifact.cli import main
    from artifact.experiments.pipeline import run_pipeline

    out, expected = tmp_path / "results", tmp_path / "expected" / "toy-smoke"
    code = run_pipeline(profile=None, model="toy", out=out, expected=expected, facts=str(toy), progress=False)
    printed = capsys.readouterr().out
    assert code == 2 and "NO VERDICT" in printed  # nothing recorded for the toy yet
    assert "model: a toy GPT-2, as asked (--model toy)" in printed and "front end: offline, toy units" in printed
    selection = json.loads((out / "selection.json").read_text())
    assert selection["traced"] and selection["subsets"] == {}
    s2t_settings = json.loads(next((out / "runs").glob("s2t-toy-gpt2-*/settings.json")).read_text())
    assert s2t_settings["model"] == "toy-gpt2"
    with np.load(next((out / "runs").glob("s2t-*/traces/hidden/*.npz"))) as trace:
        assert trace["scores"].shape[1] == 2  # [positions, layers] of the 2-layer toy
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_name"] == "toy" and "model.safetensors" in manifest["model"]["t2t"]["files"]
    assert manifest["unit_tokenizer"]["name"] == LoudnessUnits.name

    # record the run as the toy's expected profile (same-seed tier borrowed), then the pipeline verifies it
    recorded = subprocess.run([sys.executable, str(REPO / "verify.py"), "--record", str(expected), "--results",
                               str(out), "--same-seed-tier-from", str(REPO / "expected" / "embedded-smoke")],
                              capture_output=True, text=True)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert main(["pipeline", "--model", "toy", "--facts", str(toy), "--out", str(out), "--expected", str(expected),
                 "--no-progress"]) == 0
    assert "verdict: PASS" in capsys.readouterr().out
    report = json.loads((out / "verify" / "report.json").read_text())
    assert report["verdict"] == "PASS"
