"""Benchmark: the carry-over analyses' fast paths against their hook paths, in one process, on the embedded
speech-text model (SmolLM2-135M with speech-unit tokens).

    .venv/bin/python bench/bench_carryover.py                   # samples=2 (smoke), one spoken-length prompt
    .venv/bin/python bench/bench_carryover.py --samples 5 --repeats 3

The receiving prompt is spoken-length: `--tokens` (48, the median spoken prompt) seeded unit-token ids with a
14-unit subject from position 6 (the median shape of the embedded models' spoken prompts); the donor is a 10-token
text prompt. Per kind: cross-modal patching at the last subject token and at the last token, the fast path (the
layer stepper's cached corrupted run, only positions from the patched one and layers from the patched one on) vs
hook-patched full forwards (what a family without a stepper gets); then attention knockout last -> subject, last
position only vs full forwards. Prints the best of `--repeats` times, the speed-up and the largest difference of the
two paths' numbers. Machines shared with other jobs give noisy absolute times; the ratios are measured back to back.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def best_time(fn, repeats: int):
    result, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from artifact.models import load_model
    from artifact.models.embedded_speech import NEW_TOKENS
    from artifact.tracing.config import TraceConfig
    from artifact.tracing.crossmodal import cross_patch, donor_states
    from artifact.tracing.knockout import knockout

    loaded = load_model("embedded-speech")
    model, adapter, tokenizer = loaded.model, loaded.adapter, loaded.tokenizer
    units = tokenizer.convert_tokens_to_ids([f"[Hu{i}]" for i in range(500)])
    marks = tokenizer.convert_tokens_to_ids(list(NEW_TOKENS[:2]))  # [Text], [Speech]
    rng = np.random.default_rng(0)
    ids = torch.tensor([marks[1], *rng.choice(units, args.tokens - 2), marks[0]])
    subject = (6, 20)
    donor_ids = torch.tensor(tokenizer("Vinson Massif is located in the continent of")["input_ids"])
    with torch.no_grad():
        target = int(model(input_ids=ids[None]).logits[0, -1].argmax())
    print(f"embedded-speech, {len(ids)}-token receiver (subject {subject}), samples {args.samples}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'what':38} {'fast s':>8} {'hooks s':>8} {'speed-up':>9} {'max |diff|':>11}")
    for kind in ("hidden", "mlp", "attn"):
        config = TraceConfig(kind=kind, samples=args.samples, noise=0.33, window=10, batch_size=128)
        for name, position in (("last subject", subject[1] - 1), ("last ([Text])", len(ids) - 1)):
            donor = donor_states(model, adapter, donor_ids, 2 if position < len(ids) - 1 else len(donor_ids) - 1,
                                 kind)
            fast_s, fast = best_time(lambda: cross_patch(model, adapter, ids, subject, target, position, donor,
                                                         config), args.repeats)
            slow_s, slow = best_time(lambda: cross_patch(model, adapter, ids, subject, target, position, donor,
                                                         config, fast=False), args.repeats)
            diff = float(np.max(np.abs(fast[0] - slow[0])))
            print(f"{'patching ' + kind + ', ' + name:38} {fast_s:8.2f} {slow_s:8.2f} {slow_s / fast_s:8.1f}x "
                  f"{diff:11.2e}")
    targets = range(*subject)
    fast_s, fast = best_time(lambda: knockout(model, adapter, ids, target, targets, window=10), args.repeats)
    slow_s, slow = best_time(lambda: knockout(model, adapter, ids, target, targets, window=10, fast=False),
                             args.repeats)
    diff = float(np.max(np.abs(fast[1] - slow[1])))
    print(f"{'knockout last -> subject':38} {fast_s:8.2f} {slow_s:8.2f} {slow_s / fast_s:8.1f}x {diff:11.2e}")


if __name__ == "__main__":
    main()
