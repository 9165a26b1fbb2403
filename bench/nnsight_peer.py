"""Peer benchmark: ROME-style causal tracing written with nnsight (batched invokes), beside this artifact's engine.

Runs in its own venv (see bench/README.md: nnsight's pins differ from requirements.lock):

    /tmp/nnsight-venv/bin/python bench/nnsight_peer.py [--kinds mlp] [--positions 2] [--invokes 12]

On the embedded SmolLM2-135M (its dequantised fp32 folder in the project cache, loaded with plain transformers),
for the text prompt, samples=10, on `--positions` token positions x every layer: each cell is one invoke of
samples+1 rows (row 0 clean, rows 1.. corrupted by ROME's noise on the subject embeddings, the restored state copied
from row 0), `--invokes` cells batched into one forward per trace. Times nnsight, the plain reference and the engine
on the same cells in this one process, checks nnsight's scores against the reference, and prints the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifact.models.loading import cache_root  # noqa: E402
from artifact.prompts import find_subject_range  # noqa: E402
from artifact.tracing import TraceConfig, trace_fact  # noqa: E402
from artifact.tracing.reference import reference_trace  # noqa: E402

PROMPT, SUBJECT = "Vinson Massif is located in the continent of", "Vinson Massif"
NOISE, SAMPLES = 0.1, 10


def nnsight_trace(lm, ids, subject, target, config, cells, invokes):
    """Mean P(target) per cell [(token, layer)], ROME's semantics, `invokes` cells per forward."""
    b, e = subject
    layers = lm.model.layers
    L = len(layers)
    noise = torch.from_numpy(config.noise * np.random.RandomState(config.seed).randn(config.samples, e - b,
                                                                                      lm.config.hidden_size))
    batch = ids[None].repeat(config.samples + 1, 1)
    scores = []
    for start in range(0, len(cells), invokes):
        saved = []
        with lm.trace() as tracer:
            for token, layer in cells[start:start + invokes]:
                restored = set(config.restored_layers(layer, L))
                with tracer.invoke(batch):
                    emb = lm.model.embed_tokens.output
                    emb[1:, b:e] += noise.to(emb.dtype)
                    for ly in range(L):  # nnsight needs module accesses in execution order
                        if ly not in restored:
                            continue
                        if config.kind == "hidden":
                            h = layers[ly].output
                        elif config.kind == "mlp":
                            h = layers[ly].mlp.output
                        else:
                            h = layers[ly].self_attn.output[0]
                        h[1:, token] = h[0, token]
                    logits = lm.lm_head.output[1:, -1].float()
                    saved.append(torch.softmax(logits, dim=-1).mean(dim=0)[target].save())
        scores += [float(s) for s in saved]
    return np.asarray(scores)


def main(argv=None) -> int:
    from nnsight import LanguageModel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["mlp"], choices=["hidden", "mlp", "attn"])
    parser.add_argument("--positions", type=int, default=2, help="token positions traced (every layer each)")
    parser.add_argument("--invokes", type=int, default=12, help="cells (invokes) per nnsight trace")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-dir", type=Path, help="the dequantised fp32 SmolLM2 folder (default: the one in "
                        "the project cache, made by any `load_model('embedded')` in the main venv)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = args.model_dir or max((cache_root() / "embedded").glob("smollm2-135m-fp32-*/"), default=None)
    if folder is None:
        raise SystemExit("No dequantised SmolLM2 in the project cache: run `.venv/bin/python -c \"from artifact.models "
                         "import load_model; load_model('embedded')\"` in the main venv first, or pass --model-dir.")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    lm = LanguageModel(model, tokenizer=AutoTokenizer.from_pretrained(folder))
    ids = torch.tensor(lm.tokenizer(PROMPT)["input_ids"])
    subject = find_subject_range(lm.tokenizer, PROMPT, SUBJECT)
    with torch.no_grad():
        target = int(model(ids[None]).logits[0, -1].argmax())
    T = len(ids)
    positions = tuple(sorted({int(p) for p in np.linspace(subject[1] - 1, T - 1, args.positions)}))
    print(f"nnsight {__import__('nnsight').__version__}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; text prompt ({T} tokens), positions {positions}, samples={SAMPLES}, {args.invokes} invokes/trace")
    for kind in args.kinds:
        config = TraceConfig(kind=kind, samples=SAMPLES, noise=NOISE, positions=positions)
        L = model.config.num_hidden_layers
        cells = [(t, layer) for t in positions for layer in range(L)]
        start = time.perf_counter()
        nn_scores = nnsight_trace(lm, ids, subject, target, config, cells, args.invokes)
        nn_s = time.perf_counter() - start
        start = time.perf_counter()
        expected = reference_trace(model, ids, subject, target, config)
        ref_s = time.perf_counter() - start
        start = time.perf_counter()
        trace_fact(model, ids, subject, target, config)
        eng_s = time.perf_counter() - start
        ref_cells = np.asarray([expected["scores"][t, layer] for t, layer in cells])
        diff = float(np.abs(nn_scores - ref_cells).max())
        print(f"{kind:6} nnsight {nn_s:7.1f} s  reference {ref_s:7.1f} s  engine {eng_s:6.1f} s  "
              f"nnsight/engine {nn_s / eng_s:5.2f}x  reference/nnsight {ref_s / nn_s:5.2f}x  "
              f"max|nnsight - reference| {diff:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
