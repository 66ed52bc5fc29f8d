"""Peak memory of perplexity scoring versus context length, above the loaded model's baseline.

Each measurement runs in a fresh process: build a small Llama (32K vocabulary, so full logits
would dominate), record the resident-set high-water mark, score one window of L tokens, and
report the growth of the high-water mark. `ropebench` scores with `nll_sum` (head applied in
chunks); `full-logits` is the usual `model(input_ids, labels=...)` for contrast.

    .venv/bin/python bench/ppl_memory.py --lengths 1024,2048,4096
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(length: int, mode: str) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ropebench.tasks.scoring_lm import nll_sum

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=length,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa").float().eval()
    ids = torch.randint(0, config.vocab_size, (1, length))
    with torch.inference_mode():  # warm up kernels and allocator on a short input
        model(input_ids=ids[:, :16])
    baseline = peak_mib()
    with torch.inference_mode():
        if mode == "ropebench":
            nll_sum(model, ids, 1)
        else:
            model(input_ids=ids, labels=ids)
    return {
        "length": length,
        "mode": mode,
        "baseline_mib": round(baseline),
        "extra_mib": round(peak_mib() - baseline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1024,2048,4096")
    parser.add_argument("--modes", default="ropebench,full-logits")
    parser.add_argument("--child", nargs=2, metavar=("LENGTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return
    print(f"{'mode':12s} {'length':>7s} {'extra MiB':>10s} {'x first':>8s}")
    for mode in args.modes.split(","):
        first = None
        for length in (int(x) for x in args.lengths.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(length), mode],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            first = first or max(result["extra_mib"], 1)
            print(
                f"{mode:12s} {length:7d} {result['extra_mib']:10d} {result['extra_mib'] / first:8.2f}"
            )


if __name__ == "__main__":
    main()
