"""Benchmark: the tracing engine vs the plain per-cell reference, in one process, on the embedded SmolLM2-135M.

    .venv/bin/python bench/bench_engine.py                       # both prompts, three kinds, samples=10
    .venv/bin/python bench/bench_engine.py --prompts text --kinds hidden --reference-positions all

Prompts: "text" is "Vinson Massif is located in the continent of" (10 tokens, subject at the start, the common case
in known_1000); "spoken" is a spoken-length input: 60 seeded pseudo-random token ids with a 15-token subject at 3..17
(the target is the model's own top token; for timing only the shapes matter).

Per prompt and kind it prints: the engine's time (`trace_fact`; all positions of the text prompt, and
`--spoken-positions` positions spread over the spoken one, where a full trace takes the engine about 20 min per kind
on one core), the reference's time for the same positions, the peak RSS
growth of each (resident memory sampled every 5 ms from /proc/self/statm, minus the RSS before the call), the
measured speed-up, the ideal speed-up from counted matmul FLOPs (`artifact/tracing/flops.py`: the reference's full
forwards of samples+1 rows with logits everywhere vs the least work), and the measured/ideal ratio.

The reference costs one identical forward per cell, so by default it is timed on `--reference-positions` token
positions (every layer) and its full time is extrapolated linearly in the number of forwards; `all` runs it fully.
Its scores on those positions are checked against the engine's (max |difference| is printed).
Then the one-token case: positions = (last subject token,), engine vs reference, both timed in full.
Machines shared with other jobs give noisy absolute times; ratios are measured back to back in one process.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifact.models import load_model  # noqa: E402
from artifact.prompts import answer_token_id, find_subject_range  # noqa: E402
from artifact.tracing import TraceConfig, trace_fact  # noqa: E402
from artifact.tracing.flops import ModelShape, least_flops, reference_flops  # noqa: E402
from artifact.tracing.reference import reference_trace  # noqa: E402

TEXT_PROMPT, TEXT_SUBJECT, TEXT_ANSWER = "Vinson Massif is located in the continent of", "Vinson Massif", "Antarctica"
SPOKEN_LEN, SPOKEN_SUBJECT = 60, (3, 18)
NOISE = 0.1


class PeakRSS:
    """Peak resident-set growth (bytes) during a `with` block, sampled from /proc/self/statm every 5 ms."""

    def __enter__(self):
        self.page = 4096
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self.page

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.delta = self.peak - self.base


def timed(fn):
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back to the OS so the RSS growth is this call's
    with PeakRSS() as mem:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    return out, seconds, mem.delta


def spread(first: int, last: int, count: int) -> tuple[int, ...]:
    """`count` positions evenly spread over first..last (fewer if they coincide)."""
    return tuple(sorted({int(round(p)) for p in np.linspace(first, last, count)}))


def prompts(lm, which):
    tok = lm.tokenizer
    out = {}
    if "text" in which:
        ids = torch.tensor(tok(TEXT_PROMPT)["input_ids"])
        subject = find_subject_range(tok, TEXT_PROMPT, TEXT_SUBJECT)
        out["text"] = (ids, subject, answer_token_id(tok, TEXT_PROMPT, TEXT_ANSWER))
    if "spoken" in which:
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(1000, 20000, (SPOKEN_LEN,), generator=generator)
        with torch.no_grad():
            target = int(lm.model(ids[None]).logits[0, -1].argmax())
        out["spoken"] = (ids, SPOKEN_SUBJECT, target)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", nargs="+", default=["text", "spoken"], choices=["text", "spoken"])
    parser.add_argument("--kinds", nargs="+", default=["hidden", "mlp", "attn"], choices=["hidden", "mlp", "attn"])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=TraceConfig().batch_size, help="engine rows per forward")
    parser.add_argument("--reference-positions", default="2",
                        help="token positions the reference is timed on, then scaled ('all' = the engine's; default 2)")
    parser.add_argument("--spoken-positions", default="4",
                        help="spoken prompt: positions traced by both methods, spread from the first subject token to "
                             "the last token ('all' = every position, about 20 min per kind for the engine; default 4)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine, 2 spinning OpenMP threads collapse; "
                             "measured 9x slower than 1 thread with the 2 cores oversubscribed)")
    parser.add_argument("--no-one-token", action="store_true", help="skip the one-token-position case")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    lm = load_model("embedded", device="cpu")
    with torch.no_grad():  # touch every weight page once, so no measurement pays for loading the model
        lm.model(torch.zeros(1, 4, dtype=torch.long))
    shape = ModelShape.from_config(lm.model.config)
    print(f"embedded SmolLM2-135M fp32, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"samples={args.samples}, engine batch_size={args.batch_size}")
    print("memory: peak RSS growth during the call (sampled /proc/self/statm every 5 ms)\n")
    header = (f"{'prompt':7} {'kind':6} {'T':>3} {'engine s':>9} {'ref s':>9} {'eng MB':>7} {'ref MB':>7} "
              f"{'speed-up':>8} {'ideal':>6} {'% ideal':>7} {'eng GF/s':>8} {'ref GF/s':>8} {'max|diff|':>9}")
    print(header)
    for name, (ids, subject, target) in prompts(lm, args.prompts).items():
        T = len(ids)
        b, e = subject
        if name == "spoken" and args.spoken_positions != "all":  # a spread of positions, the same for both methods
            positions = spread(b, T - 1, int(args.spoken_positions))
        else:
            positions = tuple(range(T))
        traced = [p for p in positions if p >= b]
        ref_positions = traced if args.reference_positions == "all" else spread(
            traced[0], traced[-1], int(args.reference_positions))
        for kind in args.kinds:
            config = TraceConfig(kind=kind, samples=args.samples, noise=NOISE, batch_size=args.batch_size,
                                 positions=None if len(positions) == T else positions)
            result, eng_s, eng_mem = timed(lambda: trace_fact(lm.model, ids, subject, target, config))
            ref_config = TraceConfig(kind=kind, samples=args.samples, noise=NOISE, positions=ref_positions)
            expected, ref_part_s, ref_mem = timed(lambda: reference_trace(lm.model, ids, subject, target, ref_config))
            forwards_part = 1 + len(ref_positions) * shape.layers
            forwards_full = 1 + len(positions) * shape.layers
            ref_s = ref_part_s * forwards_full / forwards_part
            cols = list(ref_positions)
            diff = float(np.nanmax(np.abs(result.scores[cols] - expected["scores"][cols])))
            ref_flops = reference_flops(shape, T, args.samples, len(positions))
            eng_flops = least_flops(shape, T, args.samples, b, positions, config)
            ideal = ref_flops / eng_flops
            speedup = ref_s / eng_s
            print(f"{name:7} {kind:6} {T:>3} {eng_s:>9.1f} {ref_s:>9.1f} {eng_mem / 2**20:>7.0f} "
                  f"{ref_mem / 2**20:>7.0f} {speedup:>7.2f}x {ideal:>5.2f}x {100 * speedup / ideal:>6.0f}% "
                  f"{eng_flops / eng_s / 1e9:>8.1f} {ref_flops / ref_s / 1e9:>8.1f} {diff:>9.1e}", flush=True)
        print(f"  ({name}: subject {subject}; engine traced {'all' if len(positions) == T else positions} positions; "
              f"reference timed on {tuple(ref_positions)}"
              + ("" if forwards_full == forwards_part else f", time scaled by forwards {forwards_full}/{forwards_part}")
              + ")")
        if not args.no_one_token:
            config = TraceConfig(kind="hidden", samples=args.samples, noise=NOISE, batch_size=args.batch_size,
                                 positions=(e - 1,))
            _, eng_s, _ = timed(lambda: trace_fact(lm.model, ids, subject, target, config))
            _, ref_s, _ = timed(lambda: reference_trace(lm.model, ids, subject, target, config))
            ideal = reference_flops(shape, T, args.samples, 1) / least_flops(shape, T, args.samples, b, (e - 1,), config)
            print(f"  one token ({name}, hidden, position {e - 1}): engine {eng_s:.2f} s, reference {ref_s:.2f} s, "
                  f"speed-up {ref_s / eng_s:.2f}x (ideal {ideal:.2f}x)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
