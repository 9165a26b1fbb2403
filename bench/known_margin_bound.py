"""The Known check's margin bound per dtype (issue 28, part 6): how far rounding moves a fact's answer-logit margin.

    .venv/bin/python bench/known_margin_bound.py                     # the embedded model, the project's own facts
    .venv/bin/python bench/known_margin_bound.py --facts known_1000  # ROME's 1209 prompts (about 4x the time)

The Known check (artifact/known.py) records per fact its margin: the answer's logit minus the best other text-mode
logit (> 0 exactly when the fact is known). A fact flips its Known verdict between two correct runs only when
rounding moves its margin across 0. This script runs the check on the embedded model (T->T prompts) in fp32 (batches
of 32 prompts, as the pipeline) against float64, and in bf16 (loaded as SpiritLM's checkpoint is; one prompt per
forward, as the pipeline and `Spiritlm.generate` do) against the same bf16 weights widened to float64 (the exact
computation on the same numbers), and prints per dtype B = the largest |margin(dtype) - exact margin| over the facts,
and the bound verify uses: NUMERICS_SAFETY x 2 x B (two correct runs of one dtype differ by at most 2 B; the safety
factor as the same-seed tier's, for kernels that sum in another order). A flip of a fact whose |margin| is under the
bound is float noise; any other flip is a different model or code. The numbers go into
artifact/verification/known_margins.py (KNOWN_MARGIN_BOUNDS) with how they were measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load(dtype_name: str, widen: bool = False):
    """The embedded model (SmolLM2-135M) in `dtype_name`. bfloat16 is loaded as SpiritLM's checkpoint is
    (`load_folder`: from_pretrained in bf16, rotary inv_freq kept fp32); with `widen`, that bf16 model's weights
    widened exactly to float64: the exact computation on the same numbers, bf16's own reference."""
    import copy

    import torch

    from artifact.models import load_model
    from artifact.models.loading import embedded_model_dir, load_folder

    if dtype_name != "bfloat16":
        dtype = {"float64": torch.float64, "float32": torch.float32}[dtype_name]
        return load_model("embedded", dtype=dtype, device="cpu")
    loaded = load_folder(embedded_model_dir(), torch.bfloat16, "cpu")
    if widen:
        loaded = copy.copy(loaded)
        loaded.model = copy.deepcopy(loaded.model).to(torch.float64)
    return loaded


def margins(loaded, facts, batch_size: int) -> tuple[dict[int, float], float]:
    """{known_id: margin} of the Known check of `loaded` on `facts`, and the seconds it took."""
    from artifact.known import check_known

    start = time.perf_counter()
    checks = check_known(loaded, facts, batch_size=batch_size, progress=False)
    return {c.known_id: float(c.margin) for c in checks if c.margin is not None}, time.perf_counter() - start


def report(name: str, other: dict[int, float], exact: dict[int, float], seconds: float, safety: float) -> None:
    diffs = {k: abs(other[k] - exact[k]) for k in exact if k in other}
    worst = max(diffs, key=diffs.get)
    flips = sorted(k for k in diffs if (other[k] > 0) != (exact[k] > 0))
    bound = safety * 2 * diffs[worst]
    near = sum(abs(m) < bound for m in exact.values())
    print(f"{name}: {len(diffs)} facts, {seconds:.0f} s; B = max |margin - exact margin| = {diffs[worst]:.3g} "
          f"(fact {worst}, exact margin {exact[worst]:+.3g}); median {sorted(diffs.values())[len(diffs) // 2]:.3g}; "
          f"bound {safety} x 2 x B = {bound:.3g}; Known verdicts differing from exact: {len(flips)} {flips[:10]}; "
          f"facts with |exact margin| under the bound: {near}", flush=True)


def main(argv: list[str] | None = None) -> int:
    from artifact.facts import load_facts
    from artifact.verification.numerics import NUMERICS_SAFETY

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", default="own", help="fact source (own: the smoke/standard profiles' facts)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    facts = load_facts(args.facts)
    if "float32" in args.dtypes:
        exact, seconds = margins(_load("float64"), facts, args.batch_size)
        print(f"float64: {len(exact)} facts, {sum(m > 0 for m in exact.values())} known, {seconds:.0f} s", flush=True)
        other, seconds = margins(_load("float32"), facts, args.batch_size)
        report("float32 (against float64)", other, exact, seconds, NUMERICS_SAFETY)
    if "bfloat16" in args.dtypes:
        other, seconds = margins(_load("bfloat16"), facts, args.batch_size)
        exact, _ = margins(_load("bfloat16", widen=True), facts, args.batch_size)
        report("bfloat16 (against its weights widened to float64)", other, exact, seconds, NUMERICS_SAFETY)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
