"""RULER throughput: `ropebench eval` against lm-eval's own RULER tasks, same model directory.

For each task and length, each side runs in a fresh process on the shipped reference model
(loaded from its directory by both), offline, with the same number of samples and batch size:
- ropebench: `run_evaluation` (sample building, generation and scoring);
- lm-eval: its task is built first (lm-eval always generates 500 samples per length, whatever
  `limit` says), then `simple_evaluate` runs `limit` of them.
Process start-up and imports, and model loading, are reported apart from the per-sample rate.
lm-eval's rate is given two ways: its evaluation alone, and with its task building; the final
`ratio:` uses the first (the harder baseline): ropebench samples/s over lm-eval samples/s.

    .venv/bin/python bench/ruler_vs_lmeval.py --tasks niah_single_1,vt,cwe --lengths 1024,4096 --samples 20
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

from _common import run_child, since_spawn


def ropebench_child(task: str, length: int, samples: int, batch_size: int) -> dict:
    from ropebench.backends.hf import HFBackend
    from ropebench.model.load import load_model, reference_model_dir
    from ropebench.run.evaluate import run_evaluation

    imports = since_spawn()
    start = time.perf_counter()
    model, tokenizer = load_model(str(reference_model_dir()))
    load = time.perf_counter() - start
    start = time.perf_counter()
    rows = run_evaluation(
        HFBackend(model, tokenizer),
        method="none",
        tasks=[task],
        lengths=[length],
        samples=samples,
        seed=42,
        out_dir=tempfile.mkdtemp(),
        progress=False,
        options={"batch_size": batch_size},
    )
    run = time.perf_counter() - start
    score = float(rows["score"].mean()) if len(rows) else math.nan  # empty: prompt cannot fit
    return {
        "imports": imports,
        "load": load,
        "build": 0.0,
        "run": run,
        "n": len(rows),
        "score": score,
        "tokens": float(rows["input_tokens"].mean()) if len(rows) else math.nan,
    }


# lm-eval's names for RULER tasks that ropebench registers under RULER's own names.
LM_EVAL_NAMES = {
    "vt": "ruler_vt",
    "cwe": "ruler_cwe",
    "fwe": "ruler_fwe",
    "qa_1": "ruler_qa_squad",
    "qa_2": "ruler_qa_hotpot",
}


def lmeval_child(task: str, length: int, samples: int, batch_size: int) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    from ropebench.model.load import reference_model_dir

    imports = since_spawn()
    task = LM_EVAL_NAMES.get(task, task)
    path = str(reference_model_dir())
    start = time.perf_counter()
    lm = HFLM(
        pretrained=path,
        tokenizer=path,
        max_length=length,
        batch_size=batch_size,
        device="cpu",
        dtype="float32",
    )
    load = time.perf_counter() - start
    start = time.perf_counter()
    manager = TaskManager(metadata={"max_seq_lengths": [length], "tokenizer": path})
    built = get_task_dict([task], manager)
    build = time.perf_counter() - start
    start = time.perf_counter()
    result = simple_evaluate(
        model=lm, tasks=list(built.values()), limit=samples, bootstrap_iters=0, log_samples=True
    )
    run = time.perf_counter() - start
    score = result["results"][task][f"{length},none"]
    # Prompt size as the model saw it (task text + answer prefix), to compare difficulty.
    prompts = [s["arguments"][0][0] for s in result["samples"][task]]
    return {
        "imports": imports,
        "load": load,
        "build": build,
        "run": run,
        "n": samples,
        "score": float(score),
        "tokens": sum(len(lm.tok_encode(p)) for p in prompts) / len(prompts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="niah_single_1,vt,cwe")
    parser.add_argument("--lengths", default="1024,4096")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, task, length, samples, batch = args.child
        run = ropebench_child if side == "ropebench" else lmeval_child
        print(json.dumps(run(task, int(length), int(samples), int(batch))))
        return

    print(
        f"reference model, {args.samples} samples, batch size {args.batch_size}; times in s, "
        "score x100, prompt = mean prompt tokens"
    )
    print(
        f"{'task':14s} {'len':>5s} {'side':9s} {'imports':>7s} {'load':>5s} {'build':>6s} "
        f"{'run':>7s} {'samples/s':>9s} {'score':>6s} {'prompt':>6s}"
    )
    ratios, ratios_with_build = [], []
    for task in args.tasks.split(","):
        for length in (int(x) for x in args.lengths.split(",")):
            results = {}
            for side in ("ropebench", "lm-eval"):
                r = run_child(
                    __file__, side, task, str(length), str(args.samples), str(args.batch_size)
                )
                r["rate"] = r["n"] / r["run"]
                results[side] = r
                if not r["n"]:
                    print(
                        f"{task:14s} {length:5d} {side:9s} skipped: RULER's budget leaves no "
                        "room for the prompt at this length"
                    )
                    break
                print(
                    f"{task:14s} {length:5d} {side:9s} {r['imports']:7.1f} {r['load']:5.1f} "
                    f"{r['build']:6.1f} {r['run']:7.1f} {r['rate']:9.2f} {100 * r['score']:6.1f} "
                    f"{r['tokens']:6.0f}"
                )
            if len(results) < 2:
                continue
            ours, theirs = results["ropebench"], results["lm-eval"]
            ratios.append(ours["rate"] / theirs["rate"])
            ratios_with_build.append(ours["rate"] * (theirs["build"] + theirs["run"]) / theirs["n"])
            print(
                f"{'':14s} {'':5s} ratio {ratios[-1]:.2f} (with lm-eval's task building: "
                f"{ratios_with_build[-1]:.2f})"
            )
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    geo_build = math.exp(sum(map(math.log, ratios_with_build)) / len(ratios_with_build))
    print(
        f"geometric mean over {len(ratios)} cells: {geo:.2f} (with lm-eval's task building: "
        f"{geo_build:.2f})"
    )
    print(f"ratio: {geo:.2f}")


if __name__ == "__main__":
    main()
