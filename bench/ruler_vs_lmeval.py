"""RULER throughput: `ropebench eval` against lm-eval's own RULER tasks, same model directory.

For each task and length, each side runs in a fresh process on the shipped reference model
(loaded from its directory by both), offline, with the same number of samples and batch size:
- ropebench: `run_evaluation` (sample building, generation and scoring);
- lm-eval: its task is built first (lm-eval always generates 500 samples per length, whatever
  `limit` says), then `simple_evaluate` runs `limit` of them.
Process start-up and imports, and model loading, are reported apart from the per-sample rate.
lm-eval's rate is given two ways: its evaluation alone, and with its task building; the ratios
use the first (the harder baseline): ropebench samples/s over lm-eval samples/s.

Each cell (task, length) is run `--repeats` times with the two sides interleaved (which side goes
first alternates), so a load spike on a shared machine does not land on one side only; a cell
reports its median ratio and the range over the repeats, the final `ratio:` the geometric mean of
the cells' medians. A side that fails (lm-eval's `ruler_cwe` at 4096 divides by zero on an empty
reference list) marks its cell failed, and the run goes on.

    .venv/bin/python bench/ruler_vs_lmeval.py --tasks niah_single_1,vt,cwe --lengths 1024,4096 --samples 20
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from _common import ChildFailed, since_spawn, try_child


def ropebench_child(task: str, length: int, samples: int, batch_size: int) -> dict:
    from ropebench.backends.hf import HFBackend, HFOptions
    from ropebench.model.load import load_model, reference_model_dir
    from ropebench.run.evaluate import run_evaluation

    imports = since_spawn()
    start = time.perf_counter()
    model, tokenizer = load_model(str(reference_model_dir()))
    load = time.perf_counter() - start
    start = time.perf_counter()
    rows = run_evaluation(
        HFBackend(model, tokenizer, options=HFOptions(batch_size=batch_size)),
        method="none",
        tasks=[task],
        lengths=[length],
        samples=samples,
        seed=42,
        out_dir=tempfile.mkdtemp(),
        progress=False,
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


SIDES = ("ropebench", "lm-eval")


@dataclass
class Cell:
    """One (task, length) cell over its repeats; `failed` holds why a side failed."""

    task: str
    length: int
    ratios: list[float] = field(default_factory=list)  # ropebench / lm-eval samples/s, per repeat
    ratios_with_build: list[float] = field(default_factory=list)
    failed: str | None = None
    skipped: bool = False  # RULER's budget leaves no room for the prompt at this length


def sides_in_order(repeat: int) -> tuple[str, ...]:
    """Alternate which side runs first, so slow spells on the machine fall on both sides."""
    return SIDES if repeat % 2 == 0 else SIDES[::-1]


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error output"


def run_cell(run_side: Callable[[str], dict], task: str, length: int, repeats: int,
             report: Callable[[str], None] = print) -> Cell:
    """Run both sides of a cell `repeats` times, interleaved; stop at the first failure."""
    cell = Cell(task, length)
    for repeat in range(repeats):
        results = {}
        for side in sides_in_order(repeat):
            try:
                r = run_side(side)
            except ChildFailed as failed:
                cell.failed = f"{side}: {last_line(str(failed))}"
                report(f"{task:14s} {length:5d} {side:9s} failed: {cell.failed}")
                return cell
            if not r["n"]:
                cell.skipped = True
                report(f"{task:14s} {length:5d} {side:9s} skipped: RULER's budget leaves no "
                       "room for the prompt at this length")
                return cell
            r["rate"] = r["n"] / r["run"]
            results[side] = r
            report(f"{task:14s} {length:5d} {side:9s} {r['imports']:7.1f} {r['load']:5.1f} "
                   f"{r['build']:6.1f} {r['run']:7.1f} {r['rate']:9.2f} {100 * r['score']:6.1f} "
                   f"{r['tokens']:6.0f}")
        ours, theirs = results["ropebench"], results["lm-eval"]
        cell.ratios.append(ours["rate"] / theirs["rate"])
        cell.ratios_with_build.append(ours["rate"] * (theirs["build"] + theirs["run"]) / theirs["n"])
    return cell


def spread(values: list[float]) -> str:
    """Median and range, e.g. `7.90 (7.10-8.40, 3 runs)`."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}, {len(values)} runs)"


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def summary(cells: list[Cell]) -> list[str]:
    """One line per cell, then the geometric mean of the measured cells' median ratios."""
    lines = []
    for cell in cells:
        where = f"{cell.task:14s} {cell.length:5d}"
        if cell.failed:
            lines.append(f"{where} failed ({cell.failed})")
        elif cell.skipped:
            lines.append(f"{where} skipped")
        else:
            lines.append(f"{where} ratio {spread(cell.ratios)}; with lm-eval's task building "
                         f"{spread(cell.ratios_with_build)}")
    measured = [cell for cell in cells if cell.ratios and not cell.failed]
    failed = sum(bool(cell.failed) for cell in cells)
    if not measured:
        return [*lines, f"no cell measured ({failed} failed)", "ratio: n/a"]
    geo = geometric_mean([statistics.median(cell.ratios) for cell in measured])
    geo_build = geometric_mean([statistics.median(cell.ratios_with_build) for cell in measured])
    return [*lines,
            f"geometric mean of the median ratios over {len(measured)} cells ({failed} failed): "
            f"{geo:.2f} (with lm-eval's task building: {geo_build:.2f})",
            f"ratio: {geo:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="niah_single_1,vt,cwe")
    parser.add_argument("--lengths", default="1024,4096")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, task, length, samples, batch = args.child
        run = ropebench_child if side == "ropebench" else lmeval_child
        print(json.dumps(run(task, int(length), int(samples), int(batch))))
        return

    print(
        f"reference model, {args.samples} samples, batch size {args.batch_size}, "
        f"{args.repeats} repeats; times in s, score x100, prompt = mean prompt tokens"
    )
    print(
        f"{'task':14s} {'len':>5s} {'side':9s} {'imports':>7s} {'load':>5s} {'build':>6s} "
        f"{'run':>7s} {'samples/s':>9s} {'score':>6s} {'prompt':>6s}"
    )
    cells = []
    for task in args.tasks.split(","):
        for length in (int(x) for x in args.lengths.split(",")):
            def run_side(side: str, task=task, length=length) -> dict:
                return try_child(__file__, side, task, str(length), str(args.samples),
                                 str(args.batch_size))

            cells.append(run_cell(run_side, task, length, args.repeats))
    print("\n".join(summary(cells)))


if __name__ == "__main__":
    main()
