"""Peak memory of perplexity and needle-perplexity evaluation against context length.

Each cell runs in a fresh process: load the reference model, extend it with YaRN to the length,
warm up on a short input, record the resident-set high-water mark, run the measurement, and
report how far the high-water mark rose. Modes:
- `ppl`: ropebench's perplexity task (decoder once, output head in chunks over scored positions);
- `needle_ppl`: needle-driven perplexity (output head on the answer tokens only);
- `full-logits`: the usual `model(input_ids, labels=input_ids)`, the baseline.
The growth exponent is the slope of log(peak rise) against log(length): 1 is linear.

    .venv/bin/python bench/memory_vs_length.py --lengths 2048,4096,8192,16384,32768
"""

from __future__ import annotations

import argparse
import json

from _common import growth_exponent, peak_rss_mib, run_child


def measure(length: int, mode: str) -> dict:
    import torch

    from ropebench.backends.hf import HFBackend
    from ropebench.methods import get_extender
    from ropebench.model.load import load_model
    from ropebench.model.patch import apply_scaling, spec_of
    from ropebench.tasks import get_task

    model, tokenizer = load_model("reference")
    apply_scaling(model, get_extender("yarn").rescale(spec_of(model), length))
    task = get_task(mode) if mode != "full-logits" else None
    ids = torch.randint(3, model.config.vocab_size, (1, length))
    with torch.inference_mode():  # warm up kernels, allocator and haystack caches
        model(input_ids=ids[:, :64])
        if task is not None:
            task.measure(HFBackend(model, tokenizer), 512, samples=1, seed=1, options={})
    baseline = peak_rss_mib()
    with torch.inference_mode():
        if task is None:
            model(input_ids=ids, labels=ids)
        else:
            task.measure(HFBackend(model, tokenizer), length, samples=1, seed=0, options={})
    return {
        "length": length,
        "mode": mode,
        "baseline_mib": baseline,
        "extra_mib": peak_rss_mib() - baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="2048,4096,8192,16384,32768")
    parser.add_argument("--modes", default="ppl,needle_ppl,full-logits")
    parser.add_argument("--child", nargs=2, metavar=("LENGTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    print("reference model (hidden 128, vocab 2048), peak RSS rise in MiB above the loaded model")
    print(f"{'mode':12s} " + " ".join(f"{n:>8d}" for n in lengths) + f" {'exponent':>9s}")
    peaks = {}
    for mode in args.modes.split(","):
        extra = [run_child(__file__, str(n), mode)["extra_mib"] for n in lengths]
        peaks[mode] = extra
        print(
            f"{mode:12s} "
            + " ".join(f"{x:8.0f}" for x in extra)
            + f" {growth_exponent(lengths, extra):9.2f}"
        )
    if "ppl" in peaks and "full-logits" in peaks:
        ratio = peaks["full-logits"][-1] / max(peaks["ppl"][-1], 1.0)
        print(f"full-logits / ppl peak rise at {lengths[-1]} tokens: {ratio:.1f}x")
        print(f"ratio: {ratio:.2f}")
    else:
        print("ratio: n/a (the ratio needs the ppl and full-logits modes)")


if __name__ == "__main__":
    main()
