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
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ropebench.backends.base import Backend
from ropebench.content import files_sha256
from ropebench.errors import RopebenchError
from ropebench.io import (
    FolderLock,
    JsonlWriter,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_text_atomic,
)
from ropebench.registry import did_you_mean
from ropebench.run.distributed import barrier, broadcast_from_zero, gather_to_zero
from ropebench.settings import differences, field_names
from ropebench.tasks import Row, expand_tasks, get_task
from ropebench.tasks.base import (
    GenerationOptions,
    GenerativeTask,
    MeasuredTask,
    Task,
    TaskOptions,
)
from ropebench.tasks.prompting import encode
from ropebench.tasks.registry import TASKS

ROWS_FILE = "rows.jsonl"
SUMMARY_FILE = "summary.csv"
REPLACED_FILE = "rows.replaced.jsonl"
FINGERPRINTS_FILE = "fingerprints.json"
# Raise when a change in ropebench changes the rows of unchanged inputs (scoring, prompts).
SCORING_VERSION = 2
# Engine options, set on the backend (`--set backend.KEY`, a plan's `backend:`), never on tasks.
ENGINE_KEYS = ("batch_size", "max_batch_tokens", "engine")


def read_rows(out_dir: Path) -> list[dict[str, Any]]:
    """The rows of an evaluation folder; a record that is no ropebench row is an error."""
    path = Path(out_dir) / ROWS_FILE
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        if not (isinstance(row, dict) and isinstance(row.get("method"), str)
                and isinstance(row.get("task"), str)
                and all(isinstance(row.get(k), int) for k in ("length", "index"))):
            raise RopebenchError(f"{path}: record {number} is not a ropebench row (it needs "
                                 "method, task, length and index); move the file away or give "
                                 "another --out")
    return rows


def resolve_options(options: dict[str, Any], tasks: list[Task]) -> dict[str, TaskOptions]:
    """Each task's options from `options`, parsed once: shared keys (`--set tasks.key=value`) go
    to every task that knows them, and a nested mapping under a task's name (`--set
    ppl.stride=256`) to that task alone. A key no selected task knows, a task-scoped key its task
    does not know, or a scope that names no task is an error; values are cast and checked
    against each task's `Options` (types, bounds, choices)."""
    by_name = {task.name: task for task in tasks}
    shared = {k: v for k, v in options.items() if not isinstance(v, dict)}
    scoped = {k: v for k, v in options.items() if isinstance(v, dict)}
    for name, values in scoped.items():
        if name not in by_name and name not in TASKS:
            raise RopebenchError(
                f"options for {name!r}, which is no task{did_you_mean(name, TASKS.names())}; "
                "scope options by a task name, e.g. --set ppl.stride=256"
            )
        if name not in by_name:  # a task not run here: checked now, used by the runs that have it
            get_task(name).parse_options(values)
    for key in [*shared, *(k for values in scoped.values() for k in values)]:
        if key in ENGINE_KEYS:
            raise RopebenchError(
                f"{key} is an engine option, set on the backend: --set backend.{key}=VALUE "
                f"(in a plan, backend: {{{key}: VALUE}}), not as a task option")
    known = {task.name: set(field_names(task.options_class())) for task in tasks}
    # Generation options may be given for a run that happens to have no generative task.
    everywhere = sorted(set(field_names(GenerationOptions)).union(*known.values()))
    for key in shared:
        if key not in everywhere:
            raise RopebenchError(
                f"unknown task option {key!r}{did_you_mean(key, everywhere)}; the tasks run here take: "
                f"{', '.join(everywhere) or 'none'}"
            )
    return {
        task.name: task.read_options(
            {**{k: v for k, v in shared.items() if k in known[task.name]},
             **scoped.get(task.name, {})}
        )
        for task in tasks
    }


def parsed_options(options: dict[str, Any] | None, tasks: list[Task]) -> dict[str, TaskOptions]:
    """`options` as `resolve_options` gives them: the user's mapping is parsed here; each task's
    `TaskOptions`, already parsed where the plan or command line was read, pass as they are."""
    given = dict(options or {})
    if given and all(isinstance(value, TaskOptions) for value in given.values()):
        return {task.name: given.get(task.name) or task.read_options({}) for task in tasks}
    return resolve_options(given, tasks)


def row_inputs(backend: Backend, *, method: str, task: str, length: int, samples: int | None,
               seed: int,
               options: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """Everything a row of (method, task, length) depends on (the model's path is not: its
    weights' hash is)."""
    backend_id = {k: v for k, v in backend.identity.items() if k != "model"}
    return {
        "backend": backend.name, "model": backend_id, "inputs": extra or {}, "method": method,
        "task": task, "length": length, "samples": samples, "seed": seed,
        "options": dict(sorted(options.items())),
        "scoring_version": SCORING_VERSION, **option_files(options),
    }


def option_files(options: dict[str, Any]) -> dict[str, Any]:
    """The content hashes of the user's files that options make a task read (a haystack folder);
    empty when they name none, so keys of runs without such files stay as they were."""
    from ropebench.tasks.haystacks import haystack_identity

    value = options.get("haystack")
    files = haystack_identity(value) if isinstance(value, str) else None
    found = {} if files is None else {"haystack_files": files}
    data = options.get("data")
    if isinstance(data, str) and data and Path(data).expanduser().is_dir():
        folder = Path(data).expanduser()
        found["data_files"] = files_sha256(
            (str(p.relative_to(folder)), p) for p in sorted(folder.rglob("*")) if p.is_file())
    return found


def fingerprint(inputs: dict[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class RowWriter:
    """Appends rows to the JSONL file, flushing each one, and remembers what is done.

    `expected` maps (method, task, length) to the fingerprint this run computes them with; rows
    of those keys with another fingerprint (or none: an older release) are moved aside first."""

    def __init__(self, out_dir: Path, expected: dict[tuple[str, str, int], str] | None = None,
                 inputs: dict[str, dict[str, Any]] | None = None, say=None,
                 reusable: dict[tuple, dict[str, Any]] | None = None) -> None:
        out_dir = Path(out_dir)
        self.expected = dict(expected or {})
        self.reusable = dict(reusable or {})
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
                changed = differences(before, (inputs or {}).get(self.expected[key], {}))
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

    def adopt(self, method: str, task: str, length: int, index: int) -> bool:
        """Copy a reusable row (same fingerprint, from another folder) in; False if there is none."""
        record = self.reusable.get((method, task, length, index))
        if record is None:
            return False
        self.lines.write(record)
        self.done.add((method, task, length, index))
        return True

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


def _generative(task, backend, length, method, samples, seed, options: TaskOptions, writer,
                bar) -> None:
    try:
        built = task.make_samples(backend.tokenizer, length, samples, seed, options.values)
    except RopebenchError as err:
        bar.write(f"skipping {task.name} at {length}: {err}", file=sys.stderr)
        bar.update(samples)
        return
    # Some tasks make several samples per requested one (the needle grid: one per depth).
    bar.total += len(built) - samples
    todo = [s for s in built if not (writer.is_done(method, task.name, length, s.index)
                                     or writer.adopt(method, task.name, length, s.index))]
    bar.update(len(built) - len(todo))
    # Prompts of a task at one length share max_new_tokens; generate one batch per call, so each
    # batch's rows are on disk as soon as it ends and an interruption loses only the batch it cut.
    chunk = max(1, backend.batch_size)
    rank, size = backend.rank, backend.world_size
    # Data parallel: each rank takes every size-th sample of a chunk of size x chunk samples;
    # rank 0 gathers the rows and writes them in sample order.
    for start in range(0, len(todo), chunk * size):
        part = todo[start : start + chunk * size]
        rows = _completed_rows(task, backend, method, length, part[rank::size], options)
        for row in _in_sample_order(gather_to_zero(rows, size), size):
            writer.write(row)
        bar.update(len(part))


def _completed_rows(task, backend, method: str, length: int, mine: list,
                    options: TaskOptions) -> list[Row]:
    """One batch of samples generated and scored."""
    if not mine:
        return []
    values = options.values
    stop_at_newline = task.stop_at_newline if values.stop_at_newline is None else values.stop_at_newline
    # A row may stop once its score is final; its prediction then ends there.
    settled = (lambda i, text: task.settled(mine[i], text)) if values.stop_when_settled else None
    completions = backend.generate(
        [encode(backend.tokenizer, s.input_text) for s in mine], mine[0].max_new_tokens,
        stop_at_newline=stop_at_newline, settled=settled,
    )
    return [
        Row(task=task.name, length=length, method=method,
            score=task.score(sample, completion.text), prediction=completion.text,
            references=sample.references, input_tokens=completion.input_tokens,
            seconds=round(completion.seconds, 4), index=sample.index, metadata=sample.metadata)
        for sample, completion in zip(mine, completions, strict=True)
    ]


def _in_sample_order(gathered, size: int) -> list[Row]:
    """Rows gathered from the ranks (rank r holds positions r, r + size, ...) back in order."""
    if gathered is None:
        return []
    ordered = []
    for k in range(max(len(rows) for rows in gathered)):
        ordered += [rows[k] for rows in gathered if k < len(rows)]
    return ordered


class _DoneView:
    """What a rank other than 0 knows of the rows file: rank 0's done set; it never writes."""

    def __init__(self, done: set, reusable: dict[tuple, dict[str, Any]]) -> None:
        self.done = set(done)
        self.reusable = reusable

    def is_done(self, method: str, task: str, length: int, index: int) -> bool:
        return (method, task, length, index) in self.done

    def adopt(self, method: str, task: str, length: int, index: int) -> bool:
        key = (method, task, length, index)
        if key in self.reusable:  # rank 0 copies it in; this rank only skips it
            self.done.add(key)
            return True
        return False

    def write(self, row: Row) -> None:
        self.done.add((row.method, row.task, row.length, row.index))


def _measured(task, backend, length, method, samples, seed, opts, writer, bar, unit=0) -> None:
    if writer.is_done(method, task.name, length, 0) or _adopt_all(writer, method, task.name, length):
        bar.update(1)
        return
    # Data parallel: measured (task, length) units are dealt out whole, unit i to rank i % size.
    rows = []
    if unit % backend.world_size == backend.rank:
        rows = task.measure(backend, length, samples=samples, seed=seed, options=opts)
        for row in rows:
            row.method = method
    for part in gather_to_zero(rows, backend.world_size) or []:
        for row in part:
            writer.write(row)
    bar.update(1)


def _adopt_all(writer, method: str, task: str, length: int) -> bool:
    """A measured (task, length) is one unit: reuse all its rows, or none (index 0 must be there)."""
    indices = sorted(k[3] for k in writer.reusable if k[:3] == (method, task, length))
    if not indices or indices[0] != 0:
        return False
    for index in indices:
        writer.adopt(method, task, length, index)
    return True


def reusable_rows(folders: list[Path], expected: dict[tuple[str, str, int], str]
                  ) -> dict[tuple, dict[str, Any]]:
    """Rows of other folders that this run would compute identically: same (method, task, length)
    and the same fingerprint of every input. Keyed by (method, task, length, index)."""
    found: dict[tuple, dict[str, Any]] = {}
    for folder in folders:
        for r in read_rows(folder):
            key = (r.get("method"), r.get("task"), r.get("length"))
            if key in expected and r.get("fingerprint") == expected[key]:
                found.setdefault((*key, r.get("index")), r)
    return found


def summarize(rows: list[dict[str, Any]]):
    """Per (method, task, length): the score (x100 for scored tasks, raw for perplexities) with
    its 95% interval (`ci_low`, `ci_high`) and the count `n` behind it (samples, lm-eval items or
    documents), by the one rule of `stats.cell_estimate` that the report uses too
    (docs/intervals.md), and `prompt_tokens`, the mean prompt tokens actually used."""
    import pandas as pd

    from ropebench.stats import cell_estimate

    columns = ["method", "task", "length", "n", "score", "ci_low", "ci_high", "prompt_tokens"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    if "input_tokens" not in frame:
        frame["input_tokens"] = float("nan")
    if "metadata" not in frame:
        frame["metadata"] = [{}] * len(frame)
    # A task running several lm-eval tasks (`lmeval_long`) gets one line per sub-task.
    frame["subtask"] = [(m or {}).get("lm_eval_task", "") if isinstance(m, dict) else ""
                        for m in frame["metadata"]]
    split = bool(frame["subtask"].astype(bool).any())
    if split:
        columns.insert(3, "subtask")
    out = []
    for (method, task, length, subtask), group in frame.groupby(
            ["method", "task", "length", "subtask"], sort=False):
        declared = get_task(task)
        metas = list(group["metadata"]) if "metadata" in group else [None] * len(group)
        cell = cell_estimate(group["score"].astype(float).tolist(), metas,
                             unit=declared.unit, per_document=declared.per_document)
        cell = cell.scaled(100.0 if declared.unit == "fraction" else 1.0)
        out.append({
            "method": method, "task": task, "length": length, "subtask": subtask,
            "n": cell.n, "score": round(cell.score, 4),
            "ci_low": round(cell.low, 4), "ci_high": round(cell.high, 4),
            "prompt_tokens": round(float(pd.to_numeric(group["input_tokens"]).mean()), 1),
        })
    return pd.DataFrame(out, columns=columns)


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
    reuse: list[Path] | None = None,
):
    """Evaluate `backend` on every task x length; returns this run's rows as a DataFrame.

    `options`: the user's task options, or each task's `TaskOptions` already parsed
    (`resolve_options`). `identity`: inputs the backend cannot tell (the method's scaling and
    settings, a factors file's content); it goes into every row's fingerprint. `reuse`: other
    result folders whose rows are copied in instead of computed where their fingerprint is this
    run's."""
    import pandas as pd

    if samples < 1:
        raise RopebenchError(f"--samples must be at least 1, got {samples}")
    if not lengths or min(lengths) < 1:
        raise RopebenchError(f"lengths must be positive integers, got {lengths}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RopebenchError(f"--out {out_dir} is a file; give a folder for the results")
    names = expand_tasks(tasks)
    resolved = parsed_options(options, [get_task(name) for name in names])
    plan = [(task, length) for task in map(get_task, names)
            for length in (lengths if task.per_length else [0])]
    expected, inputs = _fingerprints(backend, method, plan, samples, seed, resolved, identity)
    lock = FolderLock(out_dir, "--out") if backend.rank == 0 else contextlib.nullcontext()
    with lock:
        writer = _writer(backend, out_dir, expected, inputs, reuse)
        try:
            _evaluate_plan(backend, plan, method=method, samples=samples, seed=seed,
                           options=resolved, writer=writer, progress=progress)
        finally:
            # Also when interrupted: the summary covers every row written so far.
            if backend.rank == 0:
                write_text_atomic(out_dir / SUMMARY_FILE,
                                  summarize(read_rows(out_dir)).to_csv(index=False))
    barrier(backend.world_size)
    wanted = {(task.name, length) for task, length in plan}
    return pd.DataFrame([r for r in read_rows(out_dir)
                         if r["method"] == method and (r["task"], r["length"]) in wanted])


def _fingerprints(backend: Backend, method: str, plan: list[tuple[Task, int]], samples: int,
                  seed: int, options: dict[str, TaskOptions], identity: dict[str, Any] | None
                  ) -> tuple[dict[tuple[str, str, int], str], dict[str, dict[str, Any]]]:
    """The fingerprint each (method, task, length) is computed with, and each one's inputs."""
    expected, inputs = {}, {}
    for task, length in plan:
        described = row_inputs(backend, method=method, task=task.name, length=length,
                               # a generative task's sample i does not depend on how many are
                               # asked for; a measured task's one row averages all of them
                               samples=None if isinstance(task, GenerativeTask) else samples,
                               seed=seed, options=options[task.name].given_values(),
                               extra=identity)
        expected[(method, task.name, length)] = fingerprint(described)
        inputs[expected[(method, task.name, length)]] = described
    return expected, inputs


def _writer(backend: Backend, out_dir: Path, expected: dict[tuple[str, str, int], str],
            inputs: dict[str, dict[str, Any]], reuse: list[Path] | None):
    """Rank 0's `RowWriter`; on the other ranks a view of what rank 0 finds done (only rank 0
    writes)."""
    rank, size = backend.rank, backend.world_size
    reusable = reusable_rows(list(reuse or []), expected) if rank == 0 else {}
    writer = RowWriter(out_dir, expected, inputs, say=lambda line: print(line, file=sys.stderr),
                       reusable=reusable) if rank == 0 else None
    if size > 1:
        done, reusable = broadcast_from_zero(
            (writer.done, reusable) if writer is not None else None, size)
        return writer if writer is not None else _DoneView(done, reusable)
    return writer


def _evaluate_plan(backend: Backend, plan: list[tuple[Task, int]], *, method: str, samples: int,
                   seed: int, options: dict[str, TaskOptions], writer, progress: bool) -> None:
    """Every (task, length) of `plan`, in order, with one progress bar."""
    from tqdm.auto import tqdm

    total = sum(samples if isinstance(task, GenerativeTask) else 1 for task, _ in plan)
    with tqdm(total=total, desc=f"eval {method}", unit="sample",
              disable=not (progress and backend.rank == 0)) as bar:
        units = 0  # measured (task, length) units, dealt out whole across ranks
        for task, length in plan:
            bar.set_postfix_str(f"{task.name} @ {length}")
            if isinstance(task, GenerativeTask):
                _generative(task, backend, length, method, samples, seed, options[task.name],
                            writer, bar)
            elif isinstance(task, MeasuredTask):
                _measured(task, backend, length, method, samples, seed,
                          options[task.name].given_values(), writer, bar, units)
                units += 1
            else:
                raise RopebenchError(f"task {task.name!r} is neither generative nor measured")
