"""The stages of a comparison and where their artifacts live.

Every stage writes its artifact under `RUN_DIR/stages/<kind>/<label>-<key>/`, where `key` hashes
everything that determines the artifact, upstream keys included: files enter by their content
hash (`ropebench.content`), never by name, size or time. A stage is done iff its folder holds the
`done` marker, written atomically after the artifact.

An evaluation stage also has a `family`: its key without the lengths and the sample count. Stages
of one family share rows (each row carries the fingerprint of its inputs), so adding a length or a
sample computes only the rows no stage of the family holds yet.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ropebench import __version__
from ropebench.content import HashCache, content_sha256, files_sha256
from ropebench.io import write_json_atomic
from ropebench.run.plan import MethodPlan, Plan

DONE = "done"


@dataclass(frozen=True)
class Stage:
    """One unit of cached work; its key is the hash of `inputs`."""

    kind: str  # "scaling", "train" or "eval"
    label: str  # the method label (eval stages add the task)
    inputs: dict[str, Any]
    family: str | None = None  # eval stages: the key of `inputs` without lengths and samples
    # The folder's name when it is not the label: a scaling is named by its method, so entries
    # that differ only downstream (trained or not, mixed or plain) share one search.
    folder: str | None = None

    @property
    def key(self) -> str:
        canonical = json.dumps(self.inputs, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def relpath(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.folder or self.label)
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
        if not (self.path(stage) / DONE).is_file():
            return False
        if stage.kind != "eval":
            return True
        try:  # an evaluation that wrote no rows is never done (older releases marked such stages)
            record = self.record(stage)
        except (OSError, UnicodeDecodeError, ValueError):
            return False  # an unreadable marker: run the stage again
        return isinstance(record, dict) and record.get("rows") != 0

    def record(self, stage: Stage) -> dict[str, Any]:
        return json.loads((self.path(stage) / DONE).read_text())

    def open(self, stage: Stage) -> Path:
        """The stage folder, ready for work; an interrupted try's leftovers stay for resuming."""
        folder = self.path(stage)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"kind": stage.kind, "key": stage.key, **stage.inputs}
        if stage.family is not None:
            record["family"] = stage.family
        write_json_atomic(folder / "inputs.json", record)
        return folder

    def family(self, stage: Stage) -> list[Path]:
        """The other folders of `stage`'s family (finished or not): rows they hold may be reused."""
        if stage.family is None:
            return []
        found = []
        for inputs in sorted((self.run_dir / "stages" / stage.kind).glob("*/inputs.json")):
            if inputs.parent == self.path(stage):
                continue
            try:
                record = json.loads(inputs.read_text())
            except (OSError, UnicodeDecodeError, ValueError):
                continue  # a folder ropebench cannot read is simply not reused
            if isinstance(record, dict) and record.get("family") == stage.family:
                found.append(inputs.parent)
        return found

    def finish(self, stage: Stage, seconds: float, **info: Any) -> None:
        write_json_atomic(
            self.path(stage) / DONE,
            {"key": stage.key, "seconds": round(seconds, 3),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info},
        )


def model_fingerprint(name_or_path: str, cache: HashCache | None = None) -> dict[str, Any]:
    """Identify a model by the content of every file a load may read (`folder_fingerprint`)."""
    from ropebench.model.identity import folder_fingerprint
    from ropebench.model.load import resolve_model_path

    resolved = Path(resolve_model_path(name_or_path))
    if not resolved.is_dir():
        return {"model": name_or_path}  # a hub id: the name is all we know before downloading
    return {"files": folder_fingerprint(resolved, cache)}


def data_fingerprint(source: str, cache: HashCache | None = None) -> dict[str, Any]:
    """Identify training data by content: every local file it reads (path relative to the source,
    content hash); the reference corpus by the Python whose standard library it is made of."""
    import platform

    from ropebench.training.data import document_files

    files = document_files(source)
    if files is not None:
        root = Path(source).expanduser()
        named = ((str(p.relative_to(root)) if root.is_dir() else p.name, p) for p in files)
        return {"files": files_sha256(named, cache)}
    if source == "reference":
        return {"source": source, "python": platform.python_version()}
    return {"source": source}  # a dataset by name: known only by its name before loading


def resolved_search(m: MethodPlan) -> dict[str, Any] | None:
    """Every search setting as the search will use it, defaults included: a changed default then
    changes the key, so a cached search never stands in for one with other settings."""
    if m.search is None:
        return None
    from ropebench.run.evaluate import option_files
    from ropebench.run.plan import search_settings_class
    from ropebench.settings import parse_settings

    settings = asdict(parse_settings(search_settings_class(m.method), m.search, where="search"))
    settings.pop("progress", None)  # how the search shows itself, not what it finds
    return {**settings, **option_files(settings)}  # a haystack folder by its content


def resolved_train(m: MethodPlan) -> dict[str, Any] | None:
    """Every training setting as training will use it, defaults included (a changed default,
    such as the mixed-window token share, changes the key), less how the run is watched."""
    if m.train is None:
        return None
    from ropebench.settings import parse_settings
    from ropebench.training.trainer import _NOT_FINGERPRINTED, TrainSettings

    settings = asdict(parse_settings(TrainSettings, m.train, where="train"))
    return {k: v for k, v in settings.items() if k not in _NOT_FINGERPRINTED}


def split_params(m: MethodPlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """A method's params as (what its factors depend on, what only its training depends on)."""
    from ropebench.methods import available_extenders

    cls = available_extenders().get(m.method)
    training = cls.config_class.training_keys if cls is not None else ()
    params = dict(m.params or {})
    return ({k: v for k, v in params.items() if k not in training},
            {k: v for k, v in params.items() if k in training})


def plan_stages(plan: Plan, model_id: dict[str, Any]) -> list[MethodStages]:
    """The stage graph of a plan; pure, so `--dry-run` can say what is cached without a model
    (it reads the factor and training data files, to hash their content)."""
    from ropebench.tasks import expand_tasks

    tasks = expand_tasks(plan.evaluate.tasks)  # one eval stage per task: `ruler` gives 13
    cache = HashCache()
    graph = []
    for m in plan.methods:
        factors = None
        if m.factors is not None:
            factors = content_sha256(Path(m.factors), cache)
        rope_params, train_params = split_params(m)
        searcher = plan.backend.for_stage("search").fingerprint() if m.search else None
        scaling = Stage("scaling", m.label, {
            "version": __version__, "model": model_id, "method": m.method, "params": rope_params,
            "target_length": plan.target_length, "search": resolved_search(m), "factors": factors,
            **({"backend": searcher} if searcher else {}),
        }, folder=m.method)
        train = None
        if m.train is not None:
            train = Stage("train", m.label, {
                "version": __version__, "scaling": scaling.key, "settings": resolved_train(m),
                "params": train_params, "data": data_fingerprint(_train_data(m), cache),
            })
        evals = {task: eval_stage(plan, m.label, (train or scaling).key, task) for task in tasks}
        graph.append(MethodStages(m, scaling, train, evals))
    cache.save()
    return graph


def eval_stage(plan: Plan, label: str, upstream: str, task: str) -> Stage:
    """The evaluation of one task. The backend enters its key only where it is not the HF
    backend, and then without its speed-only options (batch size, engine workers)."""
    from ropebench.run.evaluate import option_files

    e = plan.evaluate
    # Only the options this task sees: another task's option leaves it cached.
    options = e.task_options[task].given_values()
    backend = plan.backend.for_stage("eval").fingerprint()
    shared = {"version": __version__, "upstream": upstream, "task": task, "seed": e.seed,
              "options": options, **option_files(options),
              **({"backend": backend} if backend else {})}
    family = Stage("eval", label, {**shared, "label": label}).key
    return Stage("eval", f"{label}-{task}",
                 {**shared, "lengths": list(e.lengths), "samples": e.samples}, family=family)


def _train_data(m: MethodPlan) -> str:
    """The data source a method's training reads (the setting's default when the plan has none)."""
    from ropebench.training.trainer import TrainSettings

    return str((m.train or {}).get("data", TrainSettings.data))
