"""`trace`: trace one prompt and write its result (npz + settings JSON) and a ROME-style heatmap."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from artifact.core.names import NOISE_STREAMS

EXAMPLE = (
    "example:\n  python -m artifact trace --model embedded "
    '--prompt "The Eiffel Tower is located in the city of" --subject "Eiffel Tower" --kind mlp'
)
log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="causal trace of one prompt",
        description="Causal trace of one prompt (ROME semantics); prints the answer and scores, writes npz + PNG.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="embedded", help="'embedded', 'spiritlm' or a model folder")
    parser.add_argument("--prompt", required=True, help="the prompt text (for SpiritLM, the full prompt string)")
    parser.add_argument("--subject", required=True, help="the subject, verbatim as it appears in the prompt")
    parser.add_argument("--attribute", help="expected answer; default: the model's own top prediction (as ROME; "
                        "for SpiritLM, in text mode)")
    parser.add_argument("--kind", action="append", choices=["hidden", "mlp", "attn"],
                        help="state to restore; repeat for several (default: hidden)")
    parser.add_argument("--samples", type=int, default=10, help="corrupted runs per cell (default 10)")
    parser.add_argument("--noise", default="3sigma",
                        help="noise scale, a number or '3sigma' (3 x std of subject embeddings; default)")
    parser.add_argument("--noise-subjects", type=Path,
                        help="JSON fact file whose subjects calibrate '3sigma' (default: this prompt's subject only)")
    parser.add_argument("--window", type=int, default=10, help="mlp/attn restoration window (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default 1, as ROME)")
    parser.add_argument("--noise-streams", choices=NOISE_STREAMS, default="rome",
                        help="where the noise samples come from: 'rome' (default: ROME's one RandomState(seed) "
                             "stream) or 'per_sample' (sample s from its own stream (seed, s): independent samples)")
    parser.add_argument("--batch-size", type=int, default=128, help="rows per forward pass (default 128)")
    parser.add_argument("--out", type=Path, default=Path("outputs/trace"), help="output folder")
    parser.set_defaults(func=run)


def _noise_level(args: argparse.Namespace, loaded) -> float:
    from artifact.tracing import calibrate_noise

    if args.noise != "3sigma":
        try:
            return float(args.noise)
        except ValueError:
            raise ValueError(f"--noise must be a number or '3sigma'; got {args.noise!r}") from None
    if args.noise_subjects:
        subjects = [record["subject"] for record in json.loads(args.noise_subjects.read_text())]
    else:
        log.warning("calibrating '3sigma' noise on this prompt's subject alone; pass --noise-subjects FACTS.json "
                    "to pool over a fact file as ROME does")
        subjects = [args.subject]
    return calibrate_noise(loaded.model, loaded.tokenizer, subjects)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from artifact.figures.style import save_figure
    from artifact.figures.trace import trace_heatmap
    from artifact.known import text_mode_banned_ids
    from artifact.models import load_model
    from artifact.prompts import answer_token_id, find_subject_range
    from artifact.tracing import TraceConfig, trace_fact

    loaded = load_model(args.model)
    tokenizer = loaded.tokenizer
    input_ids = torch.tensor(tokenizer(args.prompt)["input_ids"])
    subject_range = find_subject_range(tokenizer, args.prompt, args.subject)
    if args.attribute:
        target = answer_token_id(tokenizer, args.prompt, args.attribute)
    else:  # the model's greedy token in text mode, over the tokens the tokenizer can decode (not padding rows)
        with torch.no_grad():
            logits = loaded.model(input_ids[None].to(loaded.device)).logits[0, -1].float()  # [vocab]
        logits[text_mode_banned_ids(tokenizer, logits.shape[-1])] = -torch.inf
        target = int(logits.argmax())
    answer = tokenizer.decode([target])
    noise = _noise_level(args, loaded)
    labels = [tokenizer.decode([i]) for i in input_ids.tolist()]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"model {loaded.name}; answer {answer!r} (token {target}); subject tokens {subject_range}; noise {noise:.4f}")
    for kind in args.kind or ["hidden"]:
        config = TraceConfig(kind=kind, samples=args.samples, noise=noise, window=args.window, seed=args.seed,
                             batch_size=args.batch_size, noise_streams=args.noise_streams)
        cells = len(input_ids) * loaded.adapter.num_layers
        with tqdm(total=cells, desc=f"trace {kind}", unit="cell") as bar:
            result = trace_fact(loaded.model, input_ids, subject_range, target, config, loaded.adapter, bar.update)
        stem = args.out / f"trace_{kind}"
        np.savez(stem.with_suffix(".npz"), **result.to_arrays())
        settings = {"model": loaded.name, "prompt": args.prompt, "subject": args.subject, "answer": answer,
                    "config": config.to_dict()}
        stem.with_suffix(".json").write_text(json.dumps(settings, indent=2) + "\n")
        figure = trace_heatmap(result.scores, labels, subject_range, kind, result.low_score, answer,
                               window=args.window)
        paths = save_figure(figure, stem, formats=("png",))
        peak_t, peak_l = np.unravel_index(np.nanargmax(result.scores), result.scores.shape)
        print(f"{kind}: high {result.high_score:.4f}  low {result.low_score:.4f}  peak {np.nanmax(result.scores):.4f}"
              f" at token {peak_t} ({labels[peak_t]!r}), layer {peak_l} -> {stem}.npz, {paths[0]}")
    return 0
