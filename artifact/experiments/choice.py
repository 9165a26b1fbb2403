"""Which models and speech front end a pipeline run uses, and the one banner line saying why (torch-free).

Checkpoints are used or refused, never ignored: when a checkpoints folder was given (`--checkpoints`, or
$SPIRITLM_CHECKPOINTS_DIR, which the container sets for a non-empty /checkpoints mount), SpiritLM runs from it or the
run stops with the missing files and, where a folder below holds the layout, its exact path ("did you mean ...").
The embedded models run only when no checkpoints were given, or when asked for by name (`--model embedded`).
Which models exist, and which of them read checkpoints, is the speech-text model registry's
(`artifact.core.speechtext`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact.core.speechtext import default_model, model_names, speech_text_model
from artifact.core.spiritlm import (
    CHECKPOINTS_ENV,
    SPEECH_TOKENIZER_FILES,
    SPIRITLM_BASE_SUBDIR,
    missing_checkpoint_files,
)
from artifact.models.families import FAMILIES

NESTED_DEPTH = 3  # how many folder levels below a given root are searched for the layout
NESTED_MAX_FOLDERS = 2000  # at most this many folders are looked at (a large mount stays fast)
LAYOUT_TOPS = (SPIRITLM_BASE_SUBDIR.parts[0], SPEECH_TOKENIZER_FILES[0].parts[0])  # spiritlm_model, speech_tokenizer


@dataclass(frozen=True)
class ModelChoice:
    """Which models and speech front end a pipeline run uses, and the one-line banner saying why."""

    name: str  # a registered speech-text model: 'embedded', 'spiritlm', ...
    t2t_model: str  # load_model spec of the T->T arm
    s2t_model: str  # load_model spec of the S->T arm
    front_end: dict[str, Any]  # FrontEndConfig fields
    banner: str
    front_end_banner: str = ""  # which speech front end, and which paper backends fell back and why


class ModelSelectionError(ValueError):
    """Checkpoints given but unusable (not a folder, incomplete layout), or --model spiritlm without checkpoints; the
    message lists each missing file and, where one exists, the nested folder that holds the layout."""


def nested_layouts(root: Path, depth: int = NESTED_DEPTH) -> tuple[list[Path], list[Path]]:
    """Folders up to `depth` levels below `root` (hidden ones skipped) that hold SpiritLM's layout: (complete ones,
    partial ones holding spiritlm_model/ or speech_tokenizer/), each list shallowest first."""
    complete: list[Path] = []
    partial: list[Path] = []
    level, seen = [Path(root)], 0
    for _ in range(depth):
        below: list[Path] = []
        for folder in level:
            try:
                entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir()),
                                 key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries[: max(0, NESTED_MAX_FOLDERS - seen)]:
                seen += 1
                path = Path(entry.path)
                if not missing_checkpoint_files(path):
                    complete.append(path)
                elif any((path / top).is_dir() for top in LAYOUT_TOPS):
                    partial.append(path)
                below.append(path)
        level = below
    return complete, partial


def checkpoints_problem(root: Path, given: str) -> str | None:
    """Why the checkpoints folder `root` (as `given`: '--checkpoints DIR' or 'SPIRITLM_CHECKPOINTS_DIR=DIR') cannot
    be used, with the fix, in one line; None when it holds BRIEF section 2's layout."""
    fix_embedded = "To run the embedded models instead, pass --model embedded (or give no checkpoints)."
    root_folder = "it must be the SpiritLM checkpoints root folder (holding spiritlm_model/ and speech_tokenizer/)"
    if not root.exists():
        return f"{given} does not exist: {root_folder}. {fix_embedded}"
    if not root.is_dir():
        return (f"{given} is a file: {root_folder}; unpack a downloaded archive first, or use `python -m artifact "
                f"checkpoints fetch`. {fix_embedded}")
    missing = missing_checkpoint_files(root)
    if not missing:
        return None
    message = f"{given} lacks {len(missing)} file(s) of SpiritLM's layout: " + "; ".join(missing) + "."
    complete, partial = nested_layouts(root)
    if complete:
        message += (f" Did you mean {complete[0]}? It holds the complete layout: pass --checkpoints {complete[0]} "
                    "(or mount that folder at /checkpoints).")
        if len(complete) > 1:
            message += " Other complete layouts below: " + ", ".join(map(str, complete[1:4])) + "."
    elif partial:
        nearest = min(partial, key=lambda p: len(missing_checkpoint_files(p)))
        message += (f" The layout's folders are in {nearest}, which lacks {len(missing_checkpoint_files(nearest))} "
                    f"file(s) too: did you mean {nearest}? Check it with `python -m artifact checkpoints check "
                    f"{nearest}`.")
    elif any((root / part).is_dir() for part in (SPIRITLM_BASE_SUBDIR.name, SPEECH_TOKENIZER_FILES[0].parent.name)):
        message += (f" {root} looks like one level of the layout itself (it holds {SPIRITLM_BASE_SUBDIR.name}/ or "
                    f"{SPEECH_TOKENIZER_FILES[0].parent.name}/): pass (or mount) the folder above it, the one that "
                    "holds spiritlm_model/ and speech_tokenizer/.")
    return f"{message} {fix_embedded}"


def check_family(model: str) -> None:
    """ModelSelectionError when a registered speech-text model names a family `models/families.py` lacks."""
    family = speech_text_model(model).family
    if family not in FAMILIES:
        raise ModelSelectionError(f"speech-text model {model!r} names family {family!r}, which models/families.py "
                                  f"lacks (families: {', '.join(FAMILIES)}); add it there first (EXTENDING.md).")


def select_model(requested: str | None, checkpoints: str | os.PathLike[str] | None,
                 front_end: str = "auto") -> ModelChoice:
    """`--model NAME` (a registered speech-text model: 'embedded', 'spiritlm', ...), or by default the model that
    reads checkpoints (SpiritLM) when checkpoints were given (argument, else $SPIRITLM_CHECKPOINTS_DIR) and the
    first that needs none (the embedded models) when none were; and the speech front end (`--front-end
    auto|paper|offline`, `artifact.speech.front_end.choose_front_end`). Checkpoints given but not in BRIEF section
    2's layout stop the run (ModelSelectionError: exit 2) unless a model that reads none was asked for by name."""
    from artifact.speech.front_end import choose_front_end  # lazy: numpy

    names = model_names()
    if requested is not None and requested not in names:
        raise ModelSelectionError(f"--model must be one of {', '.join(repr(n) for n in names)}; got {requested!r}")
    spec = speech_text_model(requested) if requested is not None else None
    root = checkpoints or os.environ.get(CHECKPOINTS_ENV) or None
    if (spec is None or spec.checkpoints) and root:
        spec = spec or default_model(checkpoints_given=True)
        given = f"--checkpoints {root}" if checkpoints else f"{CHECKPOINTS_ENV}={root}"
        problem = checkpoints_problem(Path(root), given)
        if problem:
            raise ModelSelectionError(problem)
        os.environ[CHECKPOINTS_ENV] = str(root)
        check_family(spec.name)
        speech = choose_front_end(spec.name, front_end)
        return ModelChoice(spec.name, spec.arm_models["t2t"], spec.arm_models["s2t"], speech.config,
                           f"model: {spec.description} from {root} (T->T and S->T)", speech.banner)
    if spec is not None and spec.checkpoints:
        raise ModelSelectionError(f"--model {spec.name} needs the checkpoints: pass --checkpoints DIR or set "
                                  "SPIRITLM_CHECKPOINTS_DIR (REPRODUCE.md says how to request the weights).")
    spec = spec or default_model(checkpoints_given=False)
    why = (f"as asked (--model {spec.name}; the checkpoints at {root} are not used)" if root else
           f"as asked (--model {spec.name})" if requested is not None else "no SpiritLM checkpoints given")
    check_family(spec.name)
    speech = choose_front_end(spec.name, front_end)
    return ModelChoice(
        spec.name, spec.arm_models["t2t"], spec.arm_models["s2t"], speech.config,
        f"model: {spec.description}, {why}. For SpiritLM mount its checkpoints and pass --checkpoints DIR (or set "
        "SPIRITLM_CHECKPOINTS_DIR); see REPRODUCE.md.",
        speech.banner,
    )
