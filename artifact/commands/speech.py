"""`speech`: run the speech front end on facts and write a per-fact table (CSV + markdown), a summary and a figure."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from artifact.commands.options import add_command, add_io_options

EXAMPLE = (
    "example:\n  python -m artifact speech --facts ../shared/data/known_1000.json --limit 100 --out outputs/speech\n"
    "  (offline backends; the paper's: --tts melotts --recognizer whisper-small --aligner mms-fa "
    "--unit-tokenizer spiritlm)"
)
log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "speech",
        help="speak, check, align and tokenize fact prompts",
        description="Speech front end: each prompt spoken (TTS), checked by recognition (WER), word-aligned, turned "
                    "into SpiritLM speech tokens, with the subject located in seconds and in tokens.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--facts", type=Path, required=True, help="JSON fact file (ROME known_1000 schema)")
    parser.add_argument("--limit", type=int, help="use the first N facts (default: all)")
    add_io_options(parser, out="output folder", out_default=Path("outputs/speech"))
    parser.add_argument("--tts", default="espeak-ng", help="text to speech: espeak-ng (default) or melotts")
    parser.add_argument("--recognizer", default="pocketsphinx",
                        help="recognition: pocketsphinx (default), whisper-small, or none")
    parser.add_argument("--aligner", default="pocketsphinx", help="word alignment: pocketsphinx (default) or mms-fa")
    parser.add_argument("--unit-tokenizer", default="kmeans-logmel",
                        help="speech units: kmeans-logmel (default, offline stand-in) or spiritlm")
    parser.add_argument("--max-wer", type=float, help="drop prompts whose WER exceeds this (default: keep all)")
    parser.add_argument("--text-tokenizer", default="embedded",
                        help="tokenizer counting text tokens for the speech/text length ratio: 'embedded' "
                             "(SmolLM2's), a Hugging Face folder, or 'none'")
    parser.add_argument("--figure-fact", type=int, default=0, help="index (in the run) of the fact to plot")
    parser.add_argument("--no-cache", action="store_true", help="recompute every stage (nothing read or written)")
    parser.set_defaults(func=run)


def _load_records(path: Path) -> list[dict[str, Any]]:
    """Facts as dicts with prompt/subject/attribute/known_id (`artifact.facts.read_facts_file`, which names a bad
    record)."""
    from artifact.facts import read_facts_file  # lazy: fast --help

    return [asdict(fact) for fact in read_facts_file(path)]


def _text_tokenizer(spec: str):
    if spec == "none":
        return None
    from transformers import AutoTokenizer  # lazy: transformers

    if spec == "embedded":
        from artifact.models.loading import embedded_model_dir  # lazy: torch

        return AutoTokenizer.from_pretrained(embedded_model_dir())
    return AutoTokenizer.from_pretrained(spec)


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def run(args: argparse.Namespace) -> int:
    import numpy as np  # lazy: numpy
    from tqdm import tqdm  # lazy: tqdm

    from artifact.figures.speech import spoken_fact_figure  # lazy: matplotlib
    from artifact.figures.style import save_figure  # lazy: matplotlib
    from artifact.speech import FrontEndConfig, SpeechFrontEnd  # lazy: numpy

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1; got {args.limit}.")
    records = _load_records(args.facts)[: args.limit]
    if not records:
        raise ValueError(f"{args.facts} holds no facts.")
    config = FrontEndConfig(tts=args.tts, recognizer=args.recognizer, aligner=args.aligner,
                            unit_tokenizer=args.unit_tokenizer, max_wer=args.max_wer, cache=not args.no_cache,
                            validate_alignment=True)  # this command reports the alignment error
    front = SpeechFrontEnd(config)
    tokenizer = _text_tokenizer(args.text_tokenizer)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, errors, figure_fact = [], [], None
    started = time.perf_counter()
    for index, record in enumerate(tqdm(records, desc="speech front end", unit="fact")):
        try:
            fact = front.process(record["prompt"], record["subject"])
        except (ValueError, RuntimeError) as exc:
            log.warning("fact %s skipped: %s", record.get("known_id", index), exc)
            rows.append({"known_id": record.get("known_id", index), "prompt": record["prompt"],
                         "subject": record["subject"], "error": str(exc)})
            continue
        row = {"known_id": record.get("known_id", index), "prompt": record["prompt"], "subject": record["subject"],
               **fact.summary()}
        if tokenizer is not None:
            row["text_tokens"] = len(tokenizer(record["prompt"], add_special_tokens=False)["input_ids"])
        row["error"] = ""
        rows.append(row)
        errors.extend(fact.alignment_errors or [])
        if index == args.figure_fact:
            figure_fact = fact
    elapsed = time.perf_counter() - started
    ok = [r for r in rows if not r["error"]]
    kept = [r for r in ok if r["kept"]]
    summary = {
        "facts": len(rows), "processed": len(ok), "kept": len(kept), "seconds": round(elapsed, 2),
        "mean_wer": _mean([r["wer"] for r in ok]),
        "align_err_median_ms": float(np.median(errors) * 1000) if errors else None,
        "align_err_p90_ms": float(np.percentile(errors, 90) * 1000) if errors else None,
        "align_boundaries": len(errors),
        "mean_duration_s": _mean([r["duration_s"] for r in ok]),
        "mean_speech_tokens": _mean([r["speech_tokens"] for r in ok]),
        "mean_speech_tokens_per_s": _mean([r["speech_tokens"] / r["duration_s"] for r in ok]),
        "mean_subject_tokens": _mean([r["subject_tokens"] for r in ok]),
        "mean_text_tokens": _mean([r.get("text_tokens") for r in ok]),
        "cache_hits": front.cache.hits, "cache_misses": front.cache.misses,
        "settings": front.settings(), "text_tokenizer": args.text_tokenizer,
    }
    if summary["mean_text_tokens"]:
        summary["speech_to_text_token_ratio"] = _mean([r["speech_tokens"] / r["text_tokens"] for r in ok])
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(args.out / "speech_facts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    shown = ["known_id", "subject", "duration_s", "wer", "subject_start_s", "subject_end_s", "subject_token_start",
             "subject_token_end", "speech_tokens", "text_tokens", "align_err_median_ms", "kept", "error"]
    shown = [c for c in shown if c in columns]
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row.get(c, "")).replace("|", "/") for c in shown)
              + " |" for row in rows]
    (args.out / "speech_facts.md").write_text("\n".join(lines) + "\n")
    (args.out / "speech_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if figure_fact is not None:
        save_figure(spoken_fact_figure(figure_fact), args.out / "speech_fact", formats=("png",))
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    print(f"{len(ok)}/{len(rows)} facts in {elapsed:.1f} s; mean WER {fmt(summary['mean_wer'], '.3f')}; alignment "
          f"error median {fmt(summary['align_err_median_ms'], '.1f')} ms, p90 {fmt(summary['align_err_p90_ms'], '.1f')}"
          f" ms; {fmt(summary['mean_speech_tokens_per_s'], '.2f')} speech tokens/s; speech/text tokens "
          f"{fmt(summary.get('speech_to_text_token_ratio'), '.2f')} -> {args.out}")
    return 0
