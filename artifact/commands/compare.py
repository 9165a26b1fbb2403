"""`compare`: T->T against S->T on the same facts, with bootstrap CIs, figures and a generated verdict per claim."""

from __future__ import annotations

import argparse
from pathlib import Path

from artifact.commands.options import add_command, add_io_options
from artifact.core.names import KINDS
from artifact.core.settings import load_settings

EXAMPLE = """example:
  python -m artifact compare --t2t results/t2t-embedded-3f2a9c0b71de --s2t results/s2t-embedded-9c1d2e3f4a5b \\
      --split-manifest artifact/data/embedded_speech/manifest.json

Writes to --out (default <profile>/comparison/ when both runs are in <profile>/runs/, else
<parent of the T->T run>/comparison/<t2t folder>_vs_<s2t folder>/):
  comparison.json  per fact set (both / own / train / held_out) and kind: AIE curves per arm and token group with
                   95% CIs, S->T minus T->T per layer (paired bootstrap CI and simultaneous band), peak layer and
                   peak AIE per arm, ratio of peaks, diffuseness (normalised entropy), the length-normalised view
                   (when both runs traced all positions) and the claims' verdicts
  comparison.md    the reviewer's tables
  summary.md       the generated verdict per claim of the paper, with the statistics behind it
  figures/         curves_<set>_<kind>, heatmaps_<set>_<kind>, normalised_<set>_<kind> (PNG and PDF)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "compare",
        help="compare a T->T and an S->T run (tables, figures, claim verdicts)",
        description="Compare causal tracing from text (T->T) and from speech (S->T) on the facts known in both "
                    "(paired) and on each arm's own known set, with bootstrap CIs over facts; judge the paper's "
                    "claims by explicit rules.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--t2t", type=Path, required=True, help="a T->T run folder written by `run`")
    parser.add_argument("--s2t", type=Path, required=True, help="an S->T run folder on the same fact file")
    add_io_options(parser, out="output folder (default: see below)")
    parser.add_argument("--kinds", default="hidden,mlp,attn", help="comma-separated kinds (default hidden,mlp,attn)")
    parser.add_argument("--metric", choices=("prob", "logprob"), default="prob", help="effect metric (default prob)")
    parser.add_argument("--split-manifest", type=Path,
                        help="the embedded speech-text model's manifest.json: also compare its training and "
                             "held-out facts separately")
    parser.add_argument("--subject-bins", type=int, default=4, help="bins of the subject (length-normalised view)")
    parser.add_argument("--rest-bins", type=int, default=8, help="bins after the subject (length-normalised view)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.analysis.compare import compare_runs, default_out_dir, split_from_manifest  # lazy: numpy

    for flag, folder in (("--t2t", args.t2t), ("--s2t", args.s2t)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{flag} {folder} does not exist; pass the folder `run` printed.")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"Unknown kind(s) {bad or kinds!r}; choose from {', '.join(KINDS)}.")
    subsets = None
    if args.split_manifest is not None:
        if not args.split_manifest.is_file():
            raise FileNotFoundError(f"--split-manifest {args.split_manifest} does not exist.")
        subsets = split_from_manifest(args.split_manifest, load_settings(args.t2t).facts_fingerprint) or None
        if subsets is None:
            print(f"note: {args.split_manifest} has no facts of this fact file; no train/held-out split")
    out = args.out or default_out_dir(args.t2t, args.s2t)
    doc = compare_runs(args.t2t, args.s2t, out, kinds=kinds, metric=args.metric, subsets=subsets,
                       n_resamples=args.resamples, seed=args.bootstrap_seed,
                       normalised_bins=(args.subject_bins, args.rest_bins))
    if not args.no_figures:
        from artifact.figures.comparison import plot_comparison  # lazy: matplotlib

        plot_comparison(doc, out)
    for name, info in doc["sets"].items():
        print(f"set {name:9s} facts per kind (T->T/S->T): "
              + ", ".join(f"{k} {v['t2t']}/{v['s2t']}" for k, v in info["n_facts"].items()))
    if doc["normalised"].get("skipped"):
        print(f"length-normalised view skipped: {doc['normalised']['skipped']}")
    for claim, verdict in doc["claims"].items():
        print(f"{claim} ({verdict['set']}): {verdict['verdict']}")
    print(f"-> {out}/comparison.json, comparison.md, summary.md" + ("" if args.no_figures else ", figures/"))
    return 0
