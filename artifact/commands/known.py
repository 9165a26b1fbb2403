"""`known`: the Known-t2t check of a fact set on a model; prints the count, writes the per-fact checks and the rule."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from artifact.commands.options import add_command, add_io_options
from artifact.core.fileio import write_json_atomic

EXAMPLE = (
    "examples:\n"
    "  python -m artifact known --model embedded --facts own --out outputs/known_own.json\n"
    "  python -m artifact known --model embedded --facts ../shared/data/known_1000.json --limit 100 "
    "--out outputs/known_1000.json"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "known",
        help="which facts a model knows from text or speech (Known-t2t / Known-s2t filter)",
        description="Known-t2t check: a fact is known when the model's greedy next token after its T->T prompt "
                    "equals the first token of the attribute as it continues the prompt. Prints the count and "
                    "writes the per-fact checks with the rule. With --modality speech (Known-s2t), the prompt is the "
                    "spoken fact's [Speech][Hu..]...[Text] from the offline speech front end.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--model", help="'embedded' (text default), 'embedded-speech' (speech default), 'spiritlm' "
                        "or a model folder")
    parser.add_argument("--modality", choices=["text", "speech"], default="text",
                        help="text: Known-t2t (default); speech: Known-s2t from spoken prompts")
    parser.add_argument("--facts", default="own",
                        help="'known_1000' (ROME's file, cached after one download), 'own' (the project's set; "
                             "default) or the path of a JSON file in the known_1000 schema")
    parser.add_argument("--limit", type=int, help="check only the first N facts")
    parser.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass (default 32)")
    add_io_options(parser, out="output JSON file", out_default=Path("outputs/known.json"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import transformers  # lazy: transformers

    from artifact.core.speechtext import default_model  # lazy: fast --help
    from artifact.facts import facts_fingerprint, load_facts  # lazy: fast --help
    from artifact.known import KNOWN_RULE, KNOWN_RULE_S2T, check_known, check_known_prompts  # lazy: fast --help
    from artifact.models import load_model  # lazy: torch

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1; got {args.limit}.")
    facts = load_facts(args.facts)
    total = len(facts)
    if args.limit is not None:
        facts = facts[: args.limit]
    speech = args.modality == "speech"
    loaded = load_model(args.model or default_model(checkpoints_given=False).arm_models["s2t" if speech else "t2t"])
    start = time.perf_counter()
    unspoken: dict = {}
    if speech:
        from artifact.experiments.arms import spoken_items  # lazy: torch
        from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd  # lazy: numpy

        if not loaded.prompt_format.reads_speech:
            raise ValueError(f"Model {loaded.name!r} has no speech tokens; --modality speech needs "
                             "'embedded-speech', 'spiritlm' or a SpiritLM folder.")
        items, unspoken, _ = spoken_items(loaded, facts, SpeechFrontEnd(FrontEndConfig.offline()))
        checks = check_known_prompts(loaded, [f for f, _ in items], [p for _, p in items],
                                     batch_size=args.batch_size)
    else:
        checks = check_known(loaded, facts, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    known = [check.known_id for check in checks if check.known]
    result = {
        "rule": KNOWN_RULE_S2T if speech else KNOWN_RULE,
        "modality": args.modality,
        "model": loaded.name,
        "model_source": loaded.source,
        "spiritlm_prompt": loaded.prompt_format.text_marker is not None,
        "prompt_format": loaded.prompt_format.name,
        "facts": str(args.facts),
        "facts_fingerprint": facts_fingerprint(facts),
        "facts_in_file": total,
        "limit": args.limit,
        "checked": len(checks),
        "not_spoken": {str(k): v for k, v in unspoken.items()},
        "known": len(known),
        "known_ids": known,
        "transformers": transformers.__version__,
        "seconds": round(seconds, 1),
        "checks": [check.to_dict() for check in checks],
    }
    write_json_atomic(args.out, result)
    print(f"{loaded.name} knows {len(known)} of {len(checks)} facts ({len(known) / len(checks):.1%}) of "
          f"{args.facts} -> {args.out}")
    return 0
