"""lm-eval long-context tasks at each evaluation length, through the backend's lm-eval model.

`lmeval_long` runs installed lm-eval task configs (the `short` task's `run_lm_eval` path) with
their data read from a local folder (`data`), one lm-eval run per ropebench length:
- BABILong (`babilong_qaN`) has per-length configs (`0k`, `1k`, ... `128k`, k = 1024 tokens):
  length L reads the largest bucket of the folder whose size is at most L;
- LongBench (`longbench_*`) has none: each prompt is cut to L tokens the way LongBench's
  `pred.py` does (middle truncation: the first L/2 and the last L/2 tokens are kept).
One row per lm-eval sample, so every (length, lm-eval task) cell has its n and interval.

Folder layout (each benchmark's own record fields, one JSON object per line):
    DATA/babilong/<bucket>/<qaN>.jsonl      fields: input, question, target
    DATA/longbench/<dataset>.jsonl          fields: context, question, answers (+ all_classes)
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropebench.backends.base import Backend
from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.base import MeasuredTask, Row
from ropebench.tasks.short import lm_eval_results

BABILONG_BUCKETS = ("0k", "1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k")
# The fields each benchmark's templates and scorers read from a record.
FIELDS = {"babilong": ("input", "question", "target"),
          "longbench": ("context", "question", "answers")}


def family(task: str) -> str:
    """The benchmark an lm-eval task name belongs to; an unsupported name is an error."""
    if task.startswith("babilong_qa") and task[len("babilong_qa"):].isdigit():
        return "babilong"
    if task.startswith("longbench_") and not task.endswith("_e") and _yaml_path(task).exists():
        return "longbench"
    raise RopebenchError(
        f"lmeval_long does not support the lm-eval task {task!r}; choose babilong_qa1..20 or a "
        "longbench_<dataset> task (e.g. longbench_hotpotqa) in lmeval_long.tasks"
    )


def _yaml_path(task: str) -> Path:
    import lm_eval.tasks

    root = Path(lm_eval.tasks.__file__).parent
    if task.startswith("babilong"):
        return root / "babilong" / f"{task}.yaml"
    return root / "longbench" / f"{task.removeprefix('longbench_')}.yaml"


def _installed_config(task: str) -> dict[str, Any]:
    """The installed lm-eval YAML with its includes and `!function`s resolved."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        with warnings.catch_warnings():  # fuzzywuzzy warns about its pure-python matcher
            warnings.simplefilter("ignore")
            return load_yaml(_yaml_path(task))
    except ImportError as error:
        raise RopebenchError(f"lm-eval's {task} cannot load: {str(error).splitlines()[0]}") from None


def bucket_tokens(bucket: str) -> int:
    return int(bucket[:-1]) * 1024


def babilong_bucket(data: Path, task: str, length: int) -> tuple[str, Path]:
    """The largest BABILong bucket of the folder that fits in `length` tokens, and its file."""
    split = task.removeprefix("babilong_")
    present = [b for b in BABILONG_BUCKETS if (data / "babilong" / b / f"{split}.jsonl").is_file()]
    fitting = [b for b in present if bucket_tokens(b) <= length]
    if not fitting:
        raise RopebenchError(
            f"{task} has no length bucket of at most {length} tokens in {data / 'babilong'} "
            f"(it has {', '.join(present) or 'none'}); add DIR/babilong/<bucket>/{split}.jsonl "
            "or evaluate at a length of at least the smallest bucket"
        )
    return fitting[-1], data / "babilong" / fitting[-1] / f"{split}.jsonl"


def data_files(data: Path, task: str) -> list[Path]:
    if family(task) == "babilong":
        split = task.removeprefix("babilong_")
        return [data / "babilong" / b / f"{split}.jsonl" for b in BABILONG_BUCKETS
                if (data / "babilong" / b / f"{split}.jsonl").is_file()]
    path = data / "longbench" / f"{task.removeprefix('longbench_')}.jsonl"
    return [path] if path.is_file() else []


def check_data(data: Path, task: str) -> None:
    """Every file the task would read exists and its records carry the benchmark's fields."""
    files = data_files(data, task)
    if not files:
        raise RopebenchError(f"no data for {task} in {data}; see docs/harder-retrieval-and-"
                             "published.md for the lmeval_long.data folder layout")
    need = FIELDS[family(task)]
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or any(k not in record for k in need):
                raise RopebenchError(f"{path}: line {number} is not a {family(task)} record "
                                     f"(a JSON object with {', '.join(need)}); fix the file")


def middle_truncate(text: str, tokenizer, length: int) -> str:
    """LongBench's rule: a prompt over `length` tokens keeps its first and last length/2."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= length:
        return text
    half = length // 2
    return tokenizer.decode(ids[:half], skip_special_tokens=True) + tokenizer.decode(
        ids[-half:], skip_special_tokens=True)


def task_config(task: str, data: Path, length: int, tokenizer) -> tuple[dict[str, Any], str]:
    """The installed lm-eval config of `task` reading the local data at `length`, and the bucket
    (or truncation rule) it uses."""
    from lm_eval.utils import apply_template

    config = _installed_config(task)
    config.pop("tag", None)
    config["dataset_path"] = "json"
    if family(task) == "babilong":
        bucket, path = babilong_bucket(data, task, length)
        config.pop("custom_dataset", None)
        config["dataset_kwargs"] = {"data_files": {config["test_split"]: str(path)}}
        return config, bucket
    config.pop("dataset_name", None)
    config["dataset_kwargs"] = {"data_files": {"test": str(data_files(data, task)[0])}}
    template = config["doc_to_text"]
    config["doc_to_text"] = lambda doc: middle_truncate(apply_template(template, doc),
                                                        tokenizer, length)
    return config, "middle"


@dataclass
class LmevalLongOptions:
    tasks: str = "babilong_qa1,longbench_hotpotqa"  # lm-eval task names, comma-separated
    data: str = ""  # the local data folder (layout in this module's docstring)
    limit: int | None = setting(None, min=1)  # samples per lm-eval task and length (None: all)


class LmevalLong(MeasuredTask):
    name = "lmeval_long"
    title = "lm-eval long-context tasks by length (score %)"
    report = "subtasks"
    Options = LmevalLongOptions
    description = "lm-eval long-context tasks at each length (options: tasks, data, limit)"

    def cost_hint(self, samples: int, options: dict[str, Any]) -> float:
        return float(len(str(options.get("tasks", "")).split(","))) * (options.get("limit") or 20)

    def parse_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """Checked before any weights load: known tasks, and a data folder in their format."""
        parsed = super().parse_options(values)
        merged = {**vars(LmevalLongOptions()), **parsed}
        names = [t for t in str(merged["tasks"]).split(",") if t]
        for name in names:
            family(name)
        if not merged["data"]:
            raise RopebenchError("lmeval_long reads its datasets from a local folder; give "
                                 "--set lmeval_long.data=DIR (layout: docs/harder-retrieval-"
                                 "and-published.md)")
        data = Path(merged["data"]).expanduser()
        if not data.is_dir():
            raise RopebenchError(f"lmeval_long.data={data} is no folder; give the data folder")
        for name in names:
            check_data(data, name)
            _installed_config(name)
        return parsed

    def check_lengths(self, lengths: list[int], options: dict[str, Any]) -> None:
        merged = {**vars(LmevalLongOptions()), **options}
        data = Path(merged["data"]).expanduser()
        for name in [t for t in str(merged["tasks"]).split(",") if t]:
            if family(name) == "babilong":
                for length in lengths:
                    babilong_bucket(data, name, length)

    def measure(self, backend: Backend, length: int, *, samples: int, seed: int,
                options: dict[str, Any]) -> list[Row]:
        merged = {**vars(LmevalLongOptions()), **options}
        names = [t for t in str(merged["tasks"]).split(",") if t]
        data = Path(merged["data"]).expanduser()
        built = {name: task_config(name, data, length, backend.tokenizer) for name in names}
        new_tokens = max(c["generation_kwargs"].get("max_gen_toks", 256) for c, _ in built.values())
        start = time.perf_counter()
        results = lm_eval_results(backend, [c for c, _ in built.values()],
                                  max_length=length + new_tokens,
                                  limit=merged["limit"] or samples, seed=seed)
        seconds = round(time.perf_counter() - start, 3)
        rows = []
        for name, (config, bucket) in built.items():
            metric = config["metric_list"][0]["metric"]
            for record in results["samples"][name]:
                rows.append(self._row(backend, name, length, bucket, metric, record, seconds,
                                      index=len(rows)))
        return rows

    def _row(self, backend: Backend, name: str, length: int, bucket: str, metric: str,
             record: dict[str, Any], seconds: float, index: int) -> Row:
        prompt = record["arguments"][0][0]
        target = record.get("target")
        return Row(
            task=self.name, length=length, method="", score=float(record[metric]),
            prediction=str(record["filtered_resps"][0]),
            references=[str(t) for t in target] if isinstance(target, list) else [str(target)],
            input_tokens=len(backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]),
            seconds=seconds, index=index,
            metadata={"lm_eval_task": name, "doc_id": int(record["doc_id"]), "bucket": bucket,
                      "metric": metric},
        )

