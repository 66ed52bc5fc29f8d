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

Under `torchrun --nproc_per_node N` every process runs the same plan, stage by stage in step:
a search deals its candidates across the processes, training is data parallel (accelerate), an
evaluation deals its samples; rank 0 alone decides what is cached and writes every file (stage
folders, done markers, manifest, run log), and all processes meet at a barrier after each stage.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ropebench import __version__
from ropebench.io import write_json_atomic
from ropebench.run.plan import Plan
from ropebench.run.runlog import RunLog, environment
from ropebench.run.stages import ArtifactStore, MethodStages, Stage, model_fingerprint, plan_stages
from ropebench.settings import parse_settings

MANIFEST = "manifest.json"
RUNLOG = "runlog.jsonl"
DONE = "done"


class ComparisonRunner:
    """Runs the stages of a plan in order, skipping finished ones, and keeps the manifest current."""

    def __init__(self, plan: Plan, run_dir: Path, *, progress: bool = True):
        from ropebench.model.load import load_config_dict
        from ropebench.rope.spec import RopeSpec
        from ropebench.run.distributed import world

        self.plan = plan
        self.run_dir = Path(run_dir)
        self.rank, self.world_size = world()
        self.store = ArtifactStore(self.run_dir)
        self.log = RunLog(self.run_dir / RUNLOG)
        self.progress = progress
        self.spec = RopeSpec.from_config(load_config_dict(plan.model))
        self.graph = plan_stages(plan, model_fingerprint(plan.model))
        self._loaded: tuple[str, Any] | None = None  # (backend and stage key, backend)
        self._announced: set[str] = set()  # stage kinds said to run on another backend
        self._started = time.perf_counter()

    def pending(self) -> list[Stage]:
        return [s for ms in self.graph for s in ms.all() if not self.store.is_done(s)]

    def run(self) -> Path:
        """Run every unfinished stage; returns the manifest path. The run folder is locked: a
        second `compare` on it stops at once."""
        from contextlib import nullcontext

        from ropebench.io import FolderLock
        from ropebench.run.distributed import process_place

        # Joins the process group under torchrun; each backend then finds its own device.
        self.rank, self.world_size, _ = process_place(
            engine_owns_gpus=self.plan.backend.backend_class.owns_gpus)
        # Only rank 0 writes, so only rank 0 holds the lock (torchrun stops the others if it fails).
        with FolderLock(self.run_dir, "--out") if self.writes else nullcontext():
            return self._run()

    @property
    def writes(self) -> bool:
        return self.rank == 0

    def _event(self, name: str, /, **fields: Any) -> None:
        if self.writes:
            self.log.event(name, **fields)

    def _run(self) -> Path:
        stages = [s for ms in self.graph for s in ms.all()]
        self._event("run_start", plan=self.plan.to_dict(), environment=environment(),
                    pending=len(self.pending()), stages=len(stages), processes=self.world_size)
        if self.writes:
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
            self._event("run_interrupted", error=f"{type(err).__name__}: {err}",
                        seconds=round(time.perf_counter() - started, 3))
            raise
        self._event("run_end", seconds=round(time.perf_counter() - started, 3))
        return self._write_manifest() if self.writes else self.run_dir / MANIFEST

    # -- stages ------------------------------------------------------------------------------

    def _step(self, index: int, total: int, stage: Stage, work: Callable[[Path], dict]) -> None:
        from ropebench.run.distributed import barrier, broadcast_from_zero

        what = f"[{index}/{total}] {stage.kind:<7} {stage.label}"
        # Rank 0's view decides: every process skips or runs the same stages.
        if broadcast_from_zero(self.store.is_done(stage), self.world_size):
            seconds = self.store.record(stage).get("seconds", 0.0)
            self._status(f"{what}: cached ({seconds:.1f}s when computed)")
            self._event("stage_cached", kind=stage.kind, label=stage.label, key=stage.key)
            return
        self._status(f"{what}: running")
        self._event("stage_start", kind=stage.kind, label=stage.label, key=stage.key)
        if self.writes:
            self.store.open(stage)
        barrier(self.world_size)  # the folder exists before any process works in it
        folder = self.store.path(stage)
        started = time.perf_counter()
        info = work(folder)
        seconds = time.perf_counter() - started
        if stage.kind == "eval" and not info.get("rows"):
            # Nothing to show (every length skipped): never cached, so the next run tries again.
            self._status(f"{what}: produced no rows; left unfinished, it runs again next time")
            self._event("stage_empty", kind=stage.kind, label=stage.label, key=stage.key)
            barrier(self.world_size)
            return
        if self.writes:
            self.store.finish(stage, seconds, **info)
            self._event("stage_done", kind=stage.kind, label=stage.label, key=stage.key,
                        seconds=round(seconds, 3), processes=self.world_size)
            self._write_manifest()
        barrier(self.world_size)  # the artifact is complete before the next stage reads it
        elapsed = time.perf_counter() - self._started
        self._status(f"{what}: done in {seconds:.1f}s (run time {elapsed / 60:.1f} min)")

    def _scaling(self, ms: MethodStages, folder: Path) -> dict[str, Any]:
        from ropebench.methods import get_extender, load_scaling

        m = ms.method
        extender = get_extender(m.method, m.params)
        if m.factors is not None:
            scaling = load_scaling(m.factors, self.spec, self.plan.target_length, m.method)
        elif m.search is None:
            scaling = extender.rescale(self.spec, self.plan.target_length)
        else:
            from ropebench.run.searching import search_scaling

            backend = self._backend("search", self.plan.model, None, key="base")  # HF unless served
            settings = settings_of("search", m.search, m.method)
            scaling = search_scaling(backend, extender, self.spec, self.plan.target_length,
                                     settings, folder / "search-checkpoint.json")
            if scaling.search is not None:
                self._say_spread(scaling.search, settings.documents)
            self._release()  # the search leaves its last candidate patched in
        if self.writes:
            write_json_atomic(folder / "scaling.json", scaling.to_dict())
        return {"provenance": scaling.provenance,
                "search_evaluations": scaling.search.evaluations if scaling.search else 0}

    def _say_spread(self, record, documents: int) -> None:
        """Each baseline's fitness over disjoint document sets, beside the search's result."""
        from ropebench.search.fitness import spread_lines

        spread = record.baseline_spread
        if spread:
            self._status(f"search best {record.best_fitness:.4g}; baselines on disjoint "
                         "document sets:")
            for line in spread_lines(spread, documents):
                self._status(line)

    def _train(self, ms: MethodStages, folder: Path) -> dict[str, Any]:
        from ropebench.methods import get_extender
        from ropebench.training.trainer import train_model

        scaling = self._load_scaling(ms)
        backend = self.base_backend()
        extender = get_extender(ms.method.method, ms.method.params)
        settings = settings_of("train", ms.method.train, ms.method.method)
        result = train_model(backend.model, backend.tokenizer, scaling, settings,
                             out_dir=folder / "model", layout=extender.training_layout())
        self._release()  # trained in place: never reuse it as the base model
        losses = {"losses": [list(x) for x in result.losses], "tokens": result.tokens,
                  "seconds": result.seconds}
        if self.writes:
            write_json_atomic(folder / "losses.json", losses)
        return {"tokens": result.tokens, "tokens_short": int(result.tokens_short),
                "tokens_long": int(result.tokens_long), "train_seconds": result.seconds,
                "trainable_parameters": result.trainable_parameters}

    def _evaluate(self, ms: MethodStages, task: str, folder: Path) -> dict[str, Any]:
        from ropebench.run.evaluate import run_evaluation

        scaling = self._load_scaling(ms)
        upstream = ms.train or ms.scaling
        source = self.plan.model if ms.train is None else str(self.store.path(ms.train) / "model")
        backend = self._backend("eval", source, scaling, key=upstream.key,
                                work_dir=self.run_dir / "exports" / upstream.relpath)
        e = self.plan.evaluate
        rows = run_evaluation(backend, method=ms.method.label, tasks=[task],
                              lengths=list(e.lengths), samples=e.samples, seed=e.seed,
                              out_dir=folder, options={task: e.task_options[task]},
                              progress=self.progress, identity={"scaling": scaling.identity()},
                              reuse=self.store.family(ms.evals[task]))
        return {"rows": len(rows)}

    # -- helpers -----------------------------------------------------------------------------

    def base_backend(self):
        """The original model on the HF backend (what searches and training start from)."""
        return self._backend("train", self.plan.model, None, key="base")

    def _load_scaling(self, ms: MethodStages):
        from ropebench.rope.scaling import RopeScaling

        path = self.store.path(ms.scaling) / "scaling.json"
        return RopeScaling.from_dict(json.loads(path.read_text()))

    def _backend(self, kind: str, source: str, scaling, *, key: str, work_dir: Path | None = None):
        """The backend that serves a `kind` stage, holding `source` with `scaling` applied;
        reused while consecutive stages ask for the same model (`key`) on the same backend."""
        from ropebench.backends.base import ModelSource
        from ropebench.run.backends import open_backend

        choice = self.plan.backend.for_stage(kind)
        if choice.name != self.plan.backend.name and kind not in self._announced:
            self._announced.add(kind)
            self._status(f"{kind} stages run on the {choice.name} backend: the "
                         f"{self.plan.backend.name} backend does not serve them")
        key = f"{choice.name}:{key}"
        if self._loaded is not None and self._loaded[0] == key:
            return self._loaded[1]
        self._release()
        longest = max(self.plan.evaluate.lengths)
        backend = open_backend(choice, ModelSource(source, scaling, work_dir=work_dir,
                                                   longest=longest))
        self._loaded = (key, backend)
        return backend

    def _release(self) -> None:
        from ropebench.run.backends import close_backend

        if self._loaded is not None:
            close_backend(self._loaded[1])
        self._loaded = None
        gc.collect()

    def _status(self, line: str) -> None:
        if self.progress and self.writes:
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


def settings_of(kind: str, values: dict[str, Any], method: str):
    """A plan's `search:` or `train:` values as the settings dataclass they configure."""
    from ropebench.run.plan import search_settings_class
    from ropebench.training.trainer import TrainSettings

    cls = search_settings_class(method) if kind == "search" else TrainSettings
    return parse_settings(cls, values, where=kind)
