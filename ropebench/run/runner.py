"""Run a comparison plan: every method goes through scaling (search) -> train -> evaluate.

Every stage writes its artifact under `RUN_DIR/stages/<kind>/<label>-<key>/`, where `key` hashes
everything that determines the artifact, upstream keys included. So a re-run skips finished work,
a changed setting recomputes only the stages downstream of it, and an interrupted run resumes at
the first unfinished stage. A stage is done iff its folder holds the `done` marker, written
atomically after the artifact:

    scaling -> scaling.json (a RopeScaling.to_dict(); searched, analytic or from a file)
    train   -> model/ (an HF model directory) + losses.json
    eval    -> rows.jsonl + summary.csv (one stage per task, resumable row by row)

`RUN_DIR/manifest.json` maps each method to its stage folders (the report reads it) and
`RUN_DIR/runlog.jsonl` records versions and timings of every attempt.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropebench import __version__
from ropebench.io import write_json_atomic
from ropebench.run.plan import MethodPlan, Plan
from ropebench.run.runlog import RunLog, environment
from ropebench.settings import parse_settings

MANIFEST = "manifest.json"
RUNLOG = "runlog.jsonl"
DONE = "done"


@dataclass(frozen=True)
class Stage:
    """One unit of cached work; its key is the hash of `inputs`."""

    kind: str  # "scaling", "train" or "eval"
    label: str  # the method label (eval stages add the task)
    inputs: dict[str, Any]

    @property
    def key(self) -> str:
        canonical = json.dumps(self.inputs, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def relpath(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label)
        return f"stages/{self.kind}/{slug}-{self.key}"


@dataclass(frozen=True)
class MethodStages:
    method: MethodPlan
    scaling: Stage
    train: Stage | None
    evals: dict[str, Stage]  # task -> stage

    def all(self) -> list[Stage]:
        return [self.scaling, *([self.train] if self.train else []), *self.evals.values()]


class ArtifactStore:
    """Stage folders under a run directory; `done` markers say which are finished."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def path(self, stage: Stage) -> Path:
        return self.run_dir / stage.relpath

    def is_done(self, stage: Stage) -> bool:
        return (self.path(stage) / DONE).is_file()

    def record(self, stage: Stage) -> dict[str, Any]:
        return json.loads((self.path(stage) / DONE).read_text())

    def open(self, stage: Stage) -> Path:
        """The stage folder, ready for work; an interrupted try's leftovers stay for resuming."""
        folder = self.path(stage)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "inputs.json", {"kind": stage.kind, "key": stage.key, **stage.inputs})
        return folder

    def finish(self, stage: Stage, seconds: float, **info: Any) -> None:
        write_json_atomic(
            self.path(stage) / DONE,
            {"key": stage.key, "seconds": round(seconds, 3),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info},
        )


def model_fingerprint(name_or_path: str) -> dict[str, Any]:
    """Identify a model without reading its weights: config.json plus the files' names and sizes."""
    from ropebench.model.load import resolve_model_path

    resolved = Path(resolve_model_path(name_or_path))
    if not resolved.is_dir():
        return {"model": name_or_path}  # a hub id: the name is all we know before downloading
    config = (resolved / "config.json").read_bytes()
    files = sorted((p.name, p.stat().st_size) for p in resolved.iterdir() if p.is_file())
    return {"config_sha256": hashlib.sha256(config).hexdigest(), "files": files}


def plan_stages(plan: Plan, model_id: dict[str, Any]) -> list[MethodStages]:
    """The stage graph of a plan; pure, so `--dry-run` can say what is cached without a model."""
    from ropebench.run.evaluate import task_options
    from ropebench.tasks import expand_tasks

    tasks = expand_tasks(plan.evaluate.tasks)  # one eval stage per task: `ruler` gives 13
    graph = []
    for m in plan.methods:
        factors = None
        if m.factors is not None:
            factors = hashlib.sha256(Path(m.factors).read_bytes()).hexdigest()
        scaling = Stage("scaling", m.label, {
            "version": __version__, "model": model_id, "method": m.method, "params": m.params,
            "target_length": plan.target_length, "search": m.search, "factors": factors,
        })
        train = None
        if m.train is not None:
            train = Stage("train", m.label, {
                "version": __version__, "scaling": scaling.key, "settings": m.train,
            })
        upstream = (train or scaling).key
        e = plan.evaluate
        evals = {
            task: Stage("eval", f"{m.label}-{task}", {
                "version": __version__, "upstream": upstream, "task": task,
                "lengths": list(e.lengths), "samples": e.samples, "seed": e.seed,
                # Only the options this task sees: another task's option leaves it cached.
                "options": task_options(e.options, task),
            })
            for task in tasks
        }
        graph.append(MethodStages(m, scaling, train, evals))
    return graph


class ComparisonRunner:
    """Runs the stages of a plan in order, skipping finished ones, and keeps the manifest current."""

    def __init__(self, plan: Plan, run_dir: Path, *, progress: bool = True):
        from ropebench.model.load import load_config_dict
        from ropebench.rope.spec import RopeSpec

        self.plan = plan
        self.run_dir = Path(run_dir)
        self.store = ArtifactStore(self.run_dir)
        self.log = RunLog(self.run_dir / RUNLOG)
        self.progress = progress
        self.spec = RopeSpec.from_config(load_config_dict(plan.model))
        self.graph = plan_stages(plan, model_fingerprint(plan.model))
        self._loaded: tuple[str, Any, Any] | None = None  # (stage key, model, tokenizer)
        self._started = time.perf_counter()

    def pending(self) -> list[Stage]:
        return [s for ms in self.graph for s in ms.all() if not self.store.is_done(s)]

    def run(self) -> Path:
        """Run every unfinished stage; returns the manifest path. The run folder is locked: a
        second `compare` on it stops at once."""
        from ropebench.io import FolderLock

        with FolderLock(self.run_dir, "--out"):
            return self._run()

    def _run(self) -> Path:
        stages = [s for ms in self.graph for s in ms.all()]
        self.log.event("run_start", plan=self.plan.to_dict(), environment=environment(),
                       pending=len(self.pending()), stages=len(stages))
        write_json_atomic(self.run_dir / "plan.json", self.plan.to_dict())
        self._write_manifest()
        started = self._started = time.perf_counter()
        counter = iter(range(1, len(stages) + 1))
        try:
            # Every stage resumes inside itself: the search from its checkpoint file, training
            # from its checkpoint folder (TrainSettings.save_every), evaluation row by row.
            for ms in self.graph:
                self._step(next(counter), len(stages), ms.scaling, lambda d, ms=ms: self._scaling(ms, d))
                if ms.train is not None:
                    self._step(next(counter), len(stages), ms.train, lambda d, ms=ms: self._train(ms, d))
                for task, stage in ms.evals.items():
                    self._step(next(counter), len(stages), stage,
                               lambda d, ms=ms, task=task: self._evaluate(ms, task, d))
                self._release()
        except BaseException as err:
            self.log.event("run_interrupted", error=f"{type(err).__name__}: {err}",
                           seconds=round(time.perf_counter() - started, 3))
            raise
        self.log.event("run_end", seconds=round(time.perf_counter() - started, 3))
        return self._write_manifest()

    # -- stages ------------------------------------------------------------------------------

    def _step(self, index: int, total: int, stage: Stage, work: Callable[[Path], dict]) -> None:
        what = f"[{index}/{total}] {stage.kind:<7} {stage.label}"
        if self.store.is_done(stage):
            seconds = self.store.record(stage).get("seconds", 0.0)
            self._status(f"{what}: cached ({seconds:.1f}s when computed)")
            self.log.event("stage_cached", kind=stage.kind, label=stage.label, key=stage.key)
            return
        self._status(f"{what}: running")
        self.log.event("stage_start", kind=stage.kind, label=stage.label, key=stage.key)
        folder = self.store.open(stage)
        started = time.perf_counter()
        info = work(folder)
        seconds = time.perf_counter() - started
        self.store.finish(stage, seconds, **info)
        self.log.event("stage_done", kind=stage.kind, label=stage.label, key=stage.key,
                       seconds=round(seconds, 3))
        self._write_manifest()
        elapsed = time.perf_counter() - self._started
        self._status(f"{what}: done in {seconds:.1f}s (run time {elapsed / 60:.1f} min)")

    def _scaling(self, ms: MethodStages, folder: Path) -> dict[str, Any]:
        from ropebench.methods import get_extender, load_scaling

        m = ms.method
        extender = get_extender(m.method, m.params)
        if m.factors is not None:
            scaling = load_scaling(m.factors, self.spec, self.plan.target_length)
        elif m.search is None:
            scaling = extender.rescale(self.spec, self.plan.target_length)
        else:
            from ropebench.backends.hf import HFBackend
            from ropebench.search.fitness import make_scorer

            model, tokenizer = self._model(self.plan.model, None, key="base")
            settings = _settings_of("search", m.search, m.method)
            scorer = make_scorer(HFBackend(model, tokenizer, identity={"model": self.plan.model}),
                                 self.plan.target_length, settings)
            scaling = extender.search(self.spec, self.plan.target_length, scorer, settings,
                                      checkpoint=folder / "search-checkpoint.json")
            self._release()  # the search leaves its last candidate patched in
        write_json_atomic(folder / "scaling.json", scaling.to_dict())
        return {"provenance": scaling.provenance}

    def _train(self, ms: MethodStages, folder: Path) -> dict[str, Any]:
        from ropebench.methods import get_extender
        from ropebench.training.trainer import train_model

        scaling = self._load_scaling(ms)
        model, tokenizer = self._model(self.plan.model, None, key="base")
        extender = get_extender(ms.method.method, ms.method.params)
        settings = _settings_of("train", ms.method.train, ms.method.method)
        result = train_model(model, tokenizer, scaling, settings, out_dir=folder / "model",
                             layout=extender.training_layout())
        self._release()  # trained in place: never reuse it as the base model
        losses = {"losses": [list(x) for x in result.losses], "tokens": result.tokens,
                  "seconds": result.seconds}
        write_json_atomic(folder / "losses.json", losses)
        return {"tokens": result.tokens, "train_seconds": result.seconds}

    def _evaluate(self, ms: MethodStages, task: str, folder: Path) -> dict[str, Any]:
        from ropebench.backends.hf import HFBackend
        from ropebench.run.evaluate import run_evaluation

        scaling = self._load_scaling(ms)
        source = self.plan.model if ms.train is None else str(self.store.path(ms.train) / "model")
        model, tokenizer = self._model(source, scaling, key=(ms.train or ms.scaling).key)
        e = self.plan.evaluate
        backend = HFBackend(model, tokenizer, identity={"model": source})
        rows = run_evaluation(backend, method=ms.method.label, tasks=[task],
                              lengths=list(e.lengths), samples=e.samples, seed=e.seed,
                              out_dir=folder, options=dict(e.options), progress=self.progress,
                              identity={"scaling": scaling.to_dict()})
        return {"rows": len(rows)}

    # -- helpers -----------------------------------------------------------------------------

    def _load_scaling(self, ms: MethodStages):
        from ropebench.rope.scaling import RopeScaling

        path = self.store.path(ms.scaling) / "scaling.json"
        return RopeScaling.from_dict(json.loads(path.read_text()))

    def _model(self, source: str, scaling, *, key: str):
        """Load (or reuse) a model; with `scaling`, patch its RoPE for evaluation."""
        if self._loaded is not None and self._loaded[0] == key:
            return self._loaded[1], self._loaded[2]
        from ropebench.model.load import load_model
        from ropebench.model.patch import apply_scaling

        self._release()
        model, tokenizer = load_model(source)
        if scaling is not None:
            apply_scaling(model, scaling)
        self._loaded = (key, model, tokenizer)
        return model, tokenizer

    def _release(self) -> None:
        self._loaded = None
        gc.collect()

    def _status(self, line: str) -> None:
        if self.progress:
            print(line, file=sys.stderr, flush=True)

    def _write_manifest(self) -> Path:
        methods = []
        for ms in self.graph:
            methods.append({
                "label": ms.method.label,
                "method": ms.method.method,
                "baseline": ms.method.is_baseline,
                "scaling": self._entry(ms.scaling),
                "train": None if ms.train is None else self._entry(ms.train),
                "evals": {task: self._entry(stage) for task, stage in ms.evals.items()},
            })
        manifest = {"name": self.plan.name, "model": self.plan.model,
                    "target_length": self.plan.target_length, "ropebench": __version__,
                    "spec": dataclasses.asdict(self.spec), "methods": methods}
        path = self.run_dir / MANIFEST
        write_json_atomic(path, manifest)
        return path

    def _entry(self, stage: Stage) -> dict[str, Any]:
        return {"path": stage.relpath, "key": stage.key, "done": self.store.is_done(stage)}


def describe(runner: ComparisonRunner) -> str:
    """What a run will do: per method its stages, and how many are already cached."""
    plan, spec, store = runner.plan, runner.spec, runner.store
    lines = [
        f"Plan {plan.name!r}: {plan.model} (window {spec.window}, base {spec.base:g}, "
        f"{spec.n_pairs} RoPE pairs) -> {plan.target_length} tokens; run dir {runner.run_dir}",
        f"Evaluation: {len(runner.graph[0].evals)} tasks x lengths "
        f"{', '.join(map(str, plan.evaluate.lengths))}, {plan.evaluate.samples} samples, "
        f"seed {plan.evaluate.seed}",
    ]
    for ms in runner.graph:
        m = ms.method
        search = "factors from file" if m.factors else ("search" if m.search is not None else "rescale")
        parts = [search]
        if m.train is not None:
            parts.append(f"train {m.train.get('steps', 'default')} steps")
        evals_done = sum(store.is_done(s) for s in ms.evals.values())
        parts.append(f"eval {evals_done}/{len(ms.evals)} cached")
        cached = " (cached)" if store.is_done(ms.scaling) else ""
        lines.append(f"  {m.label:<14} {parts[0]}{cached}, " + ", ".join(parts[1:]))
    total = sum(len(ms.all()) for ms in runner.graph)
    pending = len(runner.pending())
    lines.append(f"Stages: {total} in all, {total - pending} cached, {pending} to run.")
    return "\n".join(lines)


# Rough costs, in forward passes at the target length, for work that is not one plain forward
# (measured on the reference model's shape on CPU).
TRAIN_STEP_FORWARDS = 3.0  # forward + backward (about twice a forward) + optimizer
DECODE_TOKEN_FORWARDS = 0.01  # one cached decoding step, relative to a full prefill at the target
SHORT_TASK_FORWARDS = 10.0  # the offline lm-eval set at a few dozen items per task
MAX_NEW_TOKENS = 32  # typical answer budget when the plan sets none
LENGTH_EXPONENT = 1.4  # a forward at L costs ~ (L / target)^1.4 of one at the target (attention)


def estimate_seconds(runner: ComparisonRunner) -> float:
    """Seconds the pending stages should take: work counted in forward passes, one timed here."""
    pending = {s.key for s in runner.pending()}
    if not pending:
        return 0.0
    plan = runner.plan
    model, _ = runner._model(plan.model, None, key="base")
    forward = _forward_seconds(model, plan.target_length)
    runner._release()
    e = plan.evaluate
    new_tokens = int(e.options.get("max_new_tokens", MAX_NEW_TOKENS))
    forwards = 0.0
    for ms in runner.graph:
        m = ms.method
        if ms.scaling.key in pending and m.search is not None:
            s = _settings_of("search", m.search, m.method)
            candidates = s.population + s.iterations * (s.mutations + s.crossovers)
            forwards += candidates * s.documents
        if ms.train is not None and ms.train.key in pending:
            t = _settings_of("train", m.train, m.method)
            forwards += t.steps * t.batch_size * t.grad_accum * TRAIN_STEP_FORWARDS
        for task, stage in ms.evals.items():
            if stage.key not in pending:
                continue
            if task == "short":
                forwards += SHORT_TASK_FORWARDS
                continue
            per_sample = 1.0 + (0.0 if task in ("ppl", "needle_ppl") else new_tokens * DECODE_TOKEN_FORWARDS)
            repeats = _depth_count(e.options.get(task, {})) if task == "niah" else 1
            lengths = sum((length / plan.target_length) ** LENGTH_EXPONENT for length in e.lengths)
            forwards += e.samples * repeats * per_sample * lengths
    return forwards * forward


def _forward_seconds(model, length: int) -> float:
    """The faster of two timed forwards at `length` (the first also pays warm-up costs)."""
    import torch

    ids = torch.zeros(1, length, dtype=torch.long, device=model.device)
    times = []
    with torch.no_grad():
        for _ in range(2):
            started = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            times.append(time.perf_counter() - started)
    return min(times)


def _settings_of(kind: str, values: dict[str, Any], method: str):
    """A plan's `search:` or `train:` values as the settings dataclass they configure."""
    from ropebench.run.plan import search_settings_class
    from ropebench.training.trainer import TrainSettings

    cls = search_settings_class(method) if kind == "search" else TrainSettings
    return parse_settings(cls, values, where=kind)


def _depth_count(niah_options: dict[str, Any]) -> int:
    depths = niah_options.get("depths", 11)  # the needle grid's default
    return depths if isinstance(depths, int) else len(depths)
