"""Which models and speech front end a pipeline run uses, and the one banner line saying why (torch-free)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact.core.spiritlm import CHECKPOINTS_ENV, missing_checkpoint_files


@dataclass(frozen=True)
class ModelChoice:
    """Which models and speech front end a pipeline run uses, and the one-line banner saying why."""

    name: str  # 'embedded' or 'spiritlm'
    t2t_model: str  # load_model spec of the T->T arm
    s2t_model: str  # load_model spec of the S->T arm
    front_end: dict[str, Any]  # FrontEndConfig fields
    banner: str
    front_end_banner: str = ""  # which speech front end, and which paper backends fell back and why


class ModelSelectionError(ValueError):
    """--model spiritlm without a usable checkpoints folder; the message lists each missing file."""


def select_model(requested: str | None, checkpoints: str | os.PathLike[str] | None,
                 front_end: str = "auto") -> ModelChoice:
    """`--model embedded|spiritlm`, or by default SpiritLM when the checkpoints folder (argument, else
    $SPIRITLM_CHECKPOINTS_DIR) holds BRIEF section 2's layout, else the embedded models; and the speech front end
    (`--front-end auto|paper|offline`, see artifact.speech.presets)."""
    from artifact.speech.front_end import choose_front_end

    root = checkpoints or os.environ.get(CHECKPOINTS_ENV)
    if requested not in (None, "embedded", "spiritlm"):
        raise ModelSelectionError(f"--model must be 'embedded' or 'spiritlm'; got {requested!r}")
    if root and not Path(root).is_dir() and (checkpoints or Path(root).exists()):  # an unset mount falls back
        given = f"--checkpoints {root}" if checkpoints else f"{CHECKPOINTS_ENV}={root}"
        what = "is a file" if Path(root).exists() else "does not exist"
        raise ModelSelectionError(f"{given} {what}: it must be the SpiritLM checkpoints root folder (holding "
                                  "spiritlm_model/ and speech_tokenizer/); leave it out for the embedded models.")
    missing = missing_checkpoint_files(Path(root)) if root and Path(root).is_dir() else None
    if requested == "spiritlm" or (requested is None and root and missing == []):
        if not root:
            raise ModelSelectionError("--model spiritlm needs the checkpoints: pass --checkpoints DIR or set "
                                      "SPIRITLM_CHECKPOINTS_DIR (REPRODUCE.md says how to request the weights).")
        if missing is None:
            raise ModelSelectionError(f"--model spiritlm: {root} is not a folder (SpiritLM checkpoints root).")
        if missing:
            raise ModelSelectionError(f"--model spiritlm: {root} lacks {len(missing)} file(s) of SpiritLM's layout: "
                                      + "; ".join(missing))
        os.environ[CHECKPOINTS_ENV] = str(root)
        speech = choose_front_end("spiritlm", front_end)
        return ModelChoice("spiritlm", "spiritlm", "spiritlm", speech.config,
                           f"model: SpiritLM base 7B from {root} (T->T and S->T)", speech.banner)
    why = ("as asked (--model embedded)" if requested == "embedded" else
           f"{root} lacks {len(missing or [])} SpiritLM file(s) (`python -m artifact checkpoints check {root}`)"
           if root else "no SpiritLM checkpoints mounted")
    speech = choose_front_end("embedded", front_end)
    return ModelChoice(
        "embedded", "embedded", "embedded-speech", speech.config,
        f"model: embedded SmolLM2-135M (T->T) and its speech-text extension (S->T), {why}. For SpiritLM mount its "
        "checkpoints and pass --checkpoints DIR (or set SPIRITLM_CHECKPOINTS_DIR); see REPRODUCE.md.",
        speech.banner,
    )
