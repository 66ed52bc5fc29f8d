"""niah_single_1: ropebench's task against lm-eval's own, through `lmeval_long`, on the reference
model at one length with the same number of samples: scores, prompt sizes, and where the
generated prompt strings coincide (keys and values masked, haystack runs counted).

    .venv/bin/python bench/niah_prompts_vs_lmeval.py --length 512 --samples 20
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

HAYSTACK = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NEEDLE = re.compile(r"One of the special magic numbers for (\S+) is: (\d+)\.")


def shape(text: str) -> dict:
    """A prompt cut into its parts: text before and after the haystack, keys masked."""
    key = NEEDLE.search(text).group(1)
    masked = NEEDLE.sub("<NEEDLE>", text).replace(key, "<KEY>")
    first, last = masked.find(HAYSTACK), masked.rfind(HAYSTACK) + len(HAYSTACK)
    body = masked[first:last]
    return {"head": masked[:first], "tail": masked[last:], "runs": body.count(HAYSTACK),
            "depth": round(body.find("<NEEDLE>") / max(len(body), 1), 3),
            "joiner": body[len(HAYSTACK):len(HAYSTACK) + 1] if body.count(HAYSTACK) > 1 else ""}


def lmeval_side(backend, length: int, n: int) -> tuple[list[str], list[float]]:
    from ropebench.tasks.lmeval_families import answer_tokens, build
    from ropebench.tasks.short import lm_eval_results

    with tempfile.TemporaryDirectory() as folder:
        backend.tokenizer.save_pretrained(folder)
        built = build("niah_single_1", Path(), length, backend.tokenizer, folder)
        results = lm_eval_results(backend, [built.config], limit=n, seed=42,
                                  max_length=length + answer_tokens(built.config))
    records = results["samples"]["niah_single_1"]
    return [r["arguments"][0][0] for r in records], [float(r[str(length)]) for r in records]


def ropebench_side(backend, length: int, n: int) -> tuple[list[str], list[float]]:
    from ropebench.run.evaluate import run_evaluation
    from ropebench.tasks.registry import get_task

    samples = get_task("niah_single_1").samples(backend.tokenizer, length, n, 42)
    rows = run_evaluation(backend, method="none", tasks=["niah_single_1"], lengths=[length],
                          samples=n, seed=42, out_dir=tempfile.mkdtemp(), progress=False)
    return [s.input_text for s in samples], [float(x) for x in rows["score"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    from ropebench.backends.hf import HFBackend
    from ropebench.model.load import load_model

    model, tok = load_model("reference")
    backend = HFBackend(model, tok)
    for name, side in (("ropebench", ropebench_side), ("lm-eval", lmeval_side)):
        prompts, scores = side(backend, args.length, args.samples)
        shapes = [shape(p) for p in prompts]
        tokens = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        print(f"{name}: n={len(scores)} score={sum(scores) / len(scores):.3f} "
              f"prompt tokens {min(tokens)}-{max(tokens)} haystack runs "
              f"{min(s['runs'] for s in shapes)}-{max(s['runs'] for s in shapes)} "
              f"needle depths {sorted({s['depth'] for s in shapes})} "
              f"joiner {shapes[0]['joiner']!r}")
        print(f"  head {shapes[0]['head']!r}\n  tail {shapes[0]['tail']!r}")
        print(f"  needle {NEEDLE.search(prompts[0]).group(0)!r}")


if __name__ == "__main__":
    main()
