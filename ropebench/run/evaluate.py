"""The evaluation loop: tasks x lengths -> one tidy JSON row per sample, resumable.

Rows are appended to `out_dir/rows.jsonl` as soon as they are scored; a re-run skips every
(method, task, length, index) already there, so an interrupted run resumes where it stopped.
Each row carries the fingerprint of every input that determines it (the model's weights and
tokenizer hashes, chat template, RoPE, method settings, task, options, seed, samples, length and
`SCORING_VERSION`); rows of the same (method, task, length) with another fingerprint are never
reused: they move to `rows.replaced.jsonl` and are recomputed, so a re-run into an existing
folder gives the rows a fresh folder would. `fingerprints.json` maps each fingerprint to its
inputs. The folder is locked while a run writes to it: a second writer stops at once.
`out_dir/summary.csv` holds the per (method, task, length) means: x100 for scored tasks (RULER's
convention), raw values for perplexities.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ropebench.backends.base import Backend
from ropebench.errors import RopebenchError
from ropebench.io import FolderLock, JsonlWriter, read_json, read_jsonl, write_json_atomic, write_text_atomic
from ropebench.registry import did_you_mean
from ropebench.settings import field_names
from ropebench.tasks import Row, expand_tasks, get_task
from ropebench.tasks.base import GenerationOptions, GenerativeTask, MeasuredTask, Task
from ropebench.tasks.prompting import encode

ROWS_FILE = "rows.jsonl"
SUMMARY_FILE = "summary.csv"
REPLACED_FILE = "rows.replaced.jsonl"
FINGERPRINTS_FILE = "fingerprints.json"
# Raise when a change in ropebench changes the rows of unchanged inputs (scoring, prompts).
SCORING_VERSION = 2
# Options that change how fast rows come, never what they are.
_SPEED_ONLY = ("batch_size", "max_batch_tokens", "engine")


def read_rows(out_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(out_dir) / ROWS_FILE)


def resolve_options(options: dict[str, Any], tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """Each task's options from `options`: shared keys (`--option key=value`) go to every task
    that knows them, and a nested mapping under a task's name (`--option ppl.stride=256`) to that
    task alone. A key no selected task knows, or a task-scoped key its task does not know, is an
    error; values are cast and checked against each task's `Options`."""
    by_name = {task.name: task for task in tasks}
    shared = {k: v for k, v in options.items() if not isinstance(v, dict)}
    scoped = {k: v for k, v in options.items() if isinstance(v, dict)}
    for name in scoped:
        if name not in by_name:
            raise RopebenchError(
                f"options for {name!r}, which is not among the tasks run "
                f"({', '.join(by_name)}){did_you_mean(name, list(by_name))}; drop them or add the task"
            )
    known = {task.name: set(field_names(task.options_class())) for task in tasks}
    # Generation options may be given for a run that happens to have no generative task.
    everywhere = sorted(set(field_names(GenerationOptions)).union(*known.values()))
    for key in shared:
        if key not in everywhere:
            raise RopebenchError(
                f"unknown option {key!r}{did_you_mean(key, everywhere)}; the tasks run here take: "
                f"{', '.join(everywhere) or 'none'}"
            )
    return {
        task.name: task.parse_options(
            {**{k: v for k, v in shared.items() if k in known[task.name]},
             **scoped.get(task.name, {})}
        )
        for task in tasks
    }


def task_options(options: dict[str, Any], task: str) -> dict[str, Any]:
    """The options one task sees (see `resolve_options`)."""
    return resolve_options(options, [get_task(task)])[task] if options else {}


def row_inputs(backend: Backend, *, method: str, task: str, length: int, samples: int | None,
               seed: int,
               options: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """Everything a row of (method, task, length) depends on (the model's path is not: its
    weights' hash is)."""
    backend_id = {k: v for k, v in backend.identity.items() if k != "model"}
    return {
        "backend": backend.name, "model": backend_id, "inputs": extra or {}, "method": method,
        "task": task, "length": length, "samples": samples, "seed": seed,
        "options": {k: v for k, v in sorted(options.items()) if k not in _SPEED_ONLY},
        "scoring_version": SCORING_VERSION,
    }


def fingerprint(inputs: dict[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


class RowWriter:
    """Appends rows to the JSONL file, flushing each one, and remembers what is done.

    `expected` maps (method, task, length) to the fingerprint this run computes them with; rows
    of those keys with another fingerprint (or none: an older release) are moved aside first."""

    def __init__(self, out_dir: Path, expected: dict[tuple[str, str, int], str] | None = None,
                 inputs: dict[str, dict[str, Any]] | None = None, say=None) -> None:
        out_dir = Path(out_dir)
        self.expected = dict(expected or {})
        rows = read_rows(out_dir)
        known = _read_fingerprints(out_dir)
        stale: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        kept = []
        for r in rows:
            key = (r["method"], r["task"], r["length"])
            if key in self.expected and r.get("fingerprint") != self.expected[key]:
                stale.setdefault(key, []).append(r)
            else:
                kept.append(r)
        if stale:
            replaced = JsonlWriter(out_dir / REPLACED_FILE)
            for key, old in stale.items():
                for r in old:
                    replaced.write(r)
                before = known.get(old[0].get("fingerprint") or "", {})
                changed = _differences(before, (inputs or {}).get(self.expected[key], {}))
                why = "; ".join(changed[:3]) if before else "rows written without a fingerprint"
                (say or print)(
                    f"{key[0]} {key[1]} @ {key[2]}: {len(old)} rows in {out_dir} were computed "
                    f"with other inputs ({why}); recomputing them (old rows moved to "
                    f"{REPLACED_FILE}; give --label or another --out to keep both side by side)"
                )
            write_text_atomic(out_dir / ROWS_FILE,
                              "".join(json.dumps(r, default=str) + "\n" for r in kept))
        if inputs:
            write_json_atomic(out_dir / FINGERPRINTS_FILE, {**known, **inputs})
        self.lines = JsonlWriter(out_dir / ROWS_FILE)
        self.done = {(r["method"], r["task"], r["length"], r["index"]) for r in kept}

    def is_done(self, method: str, task: str, length: int, index: int) -> bool:
        return (method, task, length, index) in self.done

    def write(self, row: Row) -> None:
        record = asdict(row)
        row_key = (row.method, row.task, row.length)
        if row_key in self.expected:
            record["fingerprint"] = self.expected[row_key]
        self.lines.write(record)
        self.done.add((row.method, row.task, row.length, row.index))


def _read_fingerprints(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / FINGERPRINTS_FILE
    if not path.is_file():
        return {}
    data = read_json(path, "fingerprint file")
    return data if isinstance(data, dict) else {}


def _generative(task, backend, length, method, samples, seed, opts, writer, bar) -> None:
    loop = {f.name for f in dataclasses.fields(GenerationOptions)}
    gen_opts = {k: opts.pop(k) for k in list(opts) if k in loop}
    try:
        built = task.samples(backend.tokenizer, length, samples, seed, **opts)
    except RopebenchError as err:
        bar.write(f"skipping {task.name} at {length}: {err}", file=sys.stderr)
        bar.update(samples)
        return
    # Some tasks make several samples per requested one (the needle grid: one per depth).
    bar.total += len(built) - samples
    todo = [s for s in built if not writer.is_done(method, task.name, length, s.index)]
    bar.update(len(built) - len(todo))
    if not todo:
        return
    # Prompts of a task at one length share max_new_tokens; generate in chunks so rows land on
    # disk steadily and an interruption loses little.
    chunk = max(1, gen_opts.get("batch_size", 8)) * 4
    early = gen_opts.pop("stop_when_settled", True)
    stop_at_newline = gen_opts.pop("stop_at_newline", None)
    if stop_at_newline is None:
        stop_at_newline = task.stop_at_newline
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        # A row may stop once its score is final; its prediction then ends there.
        settled = (lambda i, text, part=part: task.settled(part[i], text)) if early else None
        completions = backend.generate(
            [encode(backend.tokenizer, s.input_text) for s in part],
            part[0].max_new_tokens,
            stop_at_newline=stop_at_newline,
            settled=settled,
            **gen_opts,
        )
        for sample, completion in zip(part, completions, strict=True):
            writer.write(
                Row(
                    task=task.name,
                    length=length,
                    method=method,
                    score=task.score(sample, completion.text),
                    prediction=completion.text,
                    references=sample.references,
                    input_tokens=completion.input_tokens,
                    seconds=round(completion.seconds, 4),
                    index=sample.index,
                    metadata=sample.metadata,
                )
            )
        bar.update(len(part))


def _measured(task, backend, length, method, samples, seed, opts, writer, bar) -> None:
    if writer.is_done(method, task.name, length, 0):
        bar.update(1)
        return
    for row in task.measure(backend, length, samples=samples, seed=seed, options=opts):
        row.method = method
        writer.write(row)
    bar.update(1)


def summarize(rows: list[dict[str, Any]]):
    """Mean score per (method, task, length): x100 for scored tasks, raw for perplexities."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["method", "task", "length", "n", "score"])
    summary = (
        frame.groupby(["method", "task", "length"], sort=False)["score"]
        .agg(["count", "mean"])
        .reset_index()
        .rename(columns={"count": "n", "mean": "score"})
    )
    raw = summary["task"].map(lambda name: get_task(name).unit != "fraction")
    summary["score"] = summary["score"].where(raw, summary["score"] * 100).round(4)
    return summary


def run_evaluation(
    backend: Backend,
    *,
    method: str,
    tasks: list[str],
    lengths: list[int],
    samples: int,
    seed: int,
    out_dir: Path,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    identity: dict[str, Any] | None = None,
):
    """Evaluate `backend` on every task x length; returns this run's rows as a DataFrame.

    `identity`: inputs the backend cannot tell (the method's scaling and settings, a factors
    file's content); it goes into every row's fingerprint."""
    import pandas as pd
    from tqdm.auto import tqdm

    if samples < 1:
        raise RopebenchError(f"--samples must be at least 1, got {samples}")
    if not lengths or min(lengths) < 1:
        raise RopebenchError(f"lengths must be positive integers, got {lengths}")
    names = expand_tasks(tasks)
    resolved = resolve_options(dict(options or {}), [get_task(name) for name in names])
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RopebenchError(f"--out {out_dir} is a file; give a folder for the results")

    plan = []
    for name in names:
        task = get_task(name)
        plan += [(task, length) for length in (lengths if task.per_length else [0])]
    expected, inputs = {}, {}
    for task, length in plan:
        described = row_inputs(backend, method=method, task=task.name, length=length,
                               # a generative task's sample i does not depend on how many are
                               # asked for; a measured task's one row averages all of them
                               samples=None if isinstance(task, GenerativeTask) else samples,
                               seed=seed, options=resolved[task.name],
                               extra=identity)
        expected[(method, task.name, length)] = fingerprint(described)
        inputs[expected[(method, task.name, length)]] = described
    total = sum(samples if isinstance(task, GenerativeTask) else 1 for task, _ in plan)
    lock = FolderLock(out_dir, "--out") if backend.rank == 0 else contextlib.nullcontext()
    with lock:
        writer = RowWriter(out_dir, expected, inputs,
                           say=lambda line: print(line, file=sys.stderr))
        try:
            with tqdm(total=total, desc=f"eval {method}", unit="sample",
                      disable=not progress) as bar:
                for task, length in plan:
                    bar.set_postfix_str(f"{task.name} @ {length}")
                    if not isinstance(task, GenerativeTask | MeasuredTask):
                        raise RopebenchError(
                            f"task {task.name!r} is neither generative nor measured")
                    opts = dict(resolved[task.name])
                    run = _generative if isinstance(task, GenerativeTask) else _measured
                    run(task, backend, length, method, samples, seed, opts, writer, bar)
        finally:
            # Also when interrupted: the summary covers every row written so far.
            rows = read_rows(out_dir)
            write_text_atomic(out_dir / SUMMARY_FILE, summarize(rows).to_csv(index=False))
    wanted = {(task.name, length) for task, length in plan}
    mine = [r for r in rows if r["method"] == method and (r["task"], r["length"]) in wanted]
    return pd.DataFrame(mine)
