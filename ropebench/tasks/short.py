"""Short-context retention through lm-eval, on the patched model in memory.

`short` runs the project's offline set (`short_tasks/*.yaml`: pydoc multiple choice and next-word
generation) by default; option `short_tasks` names any lm-eval tasks instead (mmlu, hellaswag,
arc_challenge, truthfulqa_mc2, gsm8k... when the network allows). `HFLM` gets `max_length`, else it
left-truncates prompts to the config's native window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ropebench.backends.base import Backend
from ropebench.errors import RopebenchError
from ropebench.settings import MAX_TOKENS, setting
from ropebench.tasks.base import MeasuredTask, Row

SHORT_DIR = Path(__file__).resolve().parent / "short_tasks"
DEFAULT_TASKS = ("ropebench_pydoc_mc", "ropebench_pydoc_gen")
# The metric reported as a row's score, in order of preference.
PRIMARY_METRICS = ("acc", "exact_match", "acc_norm", "mc2", "f1")


def project_task_configs() -> dict[str, dict[str, Any]]:
    """The shipped YAML configs with their data files made absolute (lm-eval resolves relative
    paths against the working directory)."""
    configs = {}
    for path in sorted(SHORT_DIR.glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        files = config["dataset_kwargs"]["data_files"]
        config["dataset_kwargs"]["data_files"] = {
            split: str(SHORT_DIR / f) for split, f in files.items()
        }
        configs[config["task"]] = config
    return configs


def primary_metric(metrics: dict[str, Any]) -> tuple[str, float]:
    """lm-eval reports keys like `acc,none` or `exact_match,first_word`; pick the headline one."""
    for name in PRIMARY_METRICS:
        for key, value in metrics.items():
            if key.split(",")[0] == name and isinstance(value, int | float):
                return key, float(value)
    raise RopebenchError(
        f"no known metric among {sorted(metrics)}; report the task's metrics by hand"
    )


def run_lm_eval(
    backend: Backend,
    tasks: list[str],
    *,
    max_length: int,
    limit: int | None = None,
    batch_size: int = 1,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """lm-eval's per-task metrics for the backend's model: {task: {metric,filter: value}}."""
    configs = project_task_configs()
    results = lm_eval_results(backend, [configs.get(name, name) for name in tasks],
                              max_length=max_length, limit=limit, batch_size=batch_size, seed=seed,
                              log_samples=False)
    return {name: metrics for name, metrics in results["results"].items()}


def lm_eval_results(
    backend: Backend,
    tasks: list[str | dict[str, Any]],
    *,
    max_length: int,
    limit: int | None = None,
    batch_size: int = 1,
    seed: int = 0,
    log_samples: bool = True,
) -> dict[str, Any]:
    """lm-eval's whole answer for task names or configs, per-sample records under "samples"."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm = backend.lm_eval_model(max_length, batch_size)
    return simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=TaskManager(),
        limit=limit,
        bootstrap_iters=0,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        log_samples=log_samples,
    )


@dataclass
class ShortOptions:
    short_tasks: tuple[str, ...] = DEFAULT_TASKS  # lm-eval task names (a comma-separated list)
    short_limit: int | None = setting(None, min=1)  # samples per lm-eval task (None: all)
    max_length: int | None = setting(None, min=1, max=MAX_TOKENS)  # None: the model's configured window


class ShortTasks(MeasuredTask):
    name = "short"
    per_length = False
    title = "Short-context tasks (accuracy %)"
    report = "subtasks"
    Options = ShortOptions

    def cost_hint(self, samples: int, options: dict[str, Any]) -> float:
        return 10.0  # the offline lm-eval set at a few dozen items per task, in full forwards
    description = (
        "Short-context tasks through lm-eval (options: short_tasks, short_limit, max_length)"
    )

    def measure(
        self, backend: Backend, length: int, *, samples: int, seed: int, options: dict[str, Any]
    ) -> list[Row]:
        tasks = options.get("short_tasks") or list(DEFAULT_TASKS)
        if isinstance(tasks, str):
            tasks = [t for t in tasks.split(",") if t]
        max_length = int(options.get("max_length") or backend.max_length)
        start = time.perf_counter()
        results = run_lm_eval(
            backend,
            tasks,
            max_length=max_length,
            limit=options.get("short_limit"),
            seed=seed,
        )
        seconds = round((time.perf_counter() - start) / max(len(results), 1), 3)
        rows = []
        for index, (task, metrics) in enumerate(sorted(results.items())):
            metric, value = primary_metric(metrics)
            rows.append(
                Row(
                    task=self.name,
                    length=0,
                    method="",
                    score=value,
                    prediction="",
                    references=[],
                    input_tokens=0,
                    seconds=seconds,
                    index=index,
                    metadata={"lm_eval_task": task, "metric": metric, "metrics": _plain(metrics)},
                )
            )
        return rows


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy of lm-eval's metrics (it mixes in strings like 'N/A')."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
