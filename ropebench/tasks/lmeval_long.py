"""lm-eval long-context tasks at each evaluation length, through the backend's lm-eval model.

`lmeval_long` runs installed lm-eval task configs (the `short` task's `run_lm_eval` path), one
lm-eval run per ropebench length, with their data read from a local folder (`data`) or, for
lm-eval's RULER, generated at the length. How each family meets a length (buckets, LongBench v2's
labels, middle truncation, `max_seq_lengths`) is in `lmeval_families`. One row per lm-eval
sample, so every (length, lm-eval task) cell has its n and interval.

Folder layout (each benchmark's own record fields, one JSON object per line):
    DATA/babilong/<bucket>/<qaN>.jsonl      fields: input, question, target
    DATA/longbench/<dataset>.jsonl          fields: context, question, answers (+ all_classes)
    DATA/longbench2/<task>.jsonl            fields: context, question, answer, length, and
                                            choices (lm-eval's) or choice_A..D (LongBench v2's)
    DATA/infinitebench/<task>.jsonl         fields: context, input, answer (a list) (+ options)
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropebench.backends.base import Backend
from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.base import MeasuredTask, Row
from ropebench.tasks.lmeval_families import (
    RULER_DOWNLOADS,
    RULER_OFFLINE,
    Built,
    answer_tokens,
    build,
    check_data,
    check_length,
    family,
    installed_config,
)
from ropebench.tasks.short import lm_eval_results


@dataclass
class LmevalLongOptions:
    tasks: str = "babilong_qa1,longbench_hotpotqa"  # lm-eval task names, comma-separated
    data: str = ""  # the local data folder (layout in this module's docstring)
    limit: int | None = setting(None, min=1)  # samples per lm-eval task and length (None: all)
    online: bool = False  # let lm-eval's RULER fetch the essays / QA sets some of its tasks build on


def _names(options: dict[str, Any]) -> list[str]:
    return [t for t in str(options["tasks"]).split(",") if t]


def _check_offline(name: str) -> None:
    """A RULER task that downloads while it builds samples ends here, unless `online`."""
    if name in RULER_DOWNLOADS:
        raise RopebenchError(
            f"lm-eval's {name} downloads {RULER_DOWNLOADS[name]} while it builds its samples; "
            "where the network allows give --set lmeval_long.online=true, or choose a RULER "
            f"task that needs no data ({', '.join(RULER_OFFLINE)})")


class LmevalLong(MeasuredTask):
    name = "lmeval_long"
    title = "lm-eval long-context tasks by length (score %)"
    report = "subtasks"
    Options = LmevalLongOptions
    description = "lm-eval long-context tasks at each length (options: tasks, data, limit, online)"

    def cost_hint(self, samples: int, options: dict[str, Any]) -> float:
        return float(len(str(options.get("tasks", "")).split(","))) * (options.get("limit") or 20)

    def parse_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """Checked before any weights load: known tasks, data they can run on, a data folder in
        their format."""
        parsed = super().parse_options(values)
        merged = {**vars(LmevalLongOptions()), **parsed}
        names = _names(merged)
        families = {name: family(name) for name in names}
        for name in names:
            installed_config(name)
            if families[name] == "ruler" and not merged["online"]:
                _check_offline(name)
        if all(f == "ruler" for f in families.values()):
            return parsed  # lm-eval generates RULER's samples: no folder to read
        if not merged["data"]:
            raise RopebenchError("lmeval_long reads its datasets from a local folder; give "
                                 "--set lmeval_long.data=DIR (layout: docs/harder-retrieval-"
                                 "and-published.md)")
        data = Path(merged["data"]).expanduser()
        if not data.is_dir():
            raise RopebenchError(f"lmeval_long.data={data} is no folder; give the data folder")
        for name in names:
            check_data(data, name)
        return parsed

    def check_lengths(self, lengths: list[int], options: dict[str, Any]) -> None:
        merged = {**vars(LmevalLongOptions()), **options}
        data = Path(merged["data"]).expanduser()
        for name in _names(merged):
            for length in lengths:
                check_length(data, name, length)

    def measure(self, backend: Backend, length: int, *, samples: int, seed: int,
                options: dict[str, Any]) -> list[Row]:
        merged = {**vars(LmevalLongOptions()), **options}
        names = _names(merged)
        data = Path(merged["data"]).expanduser()
        with tempfile.TemporaryDirectory(prefix="ropebench-tokenizer-") as folder:
            # lm-eval's RULER loads its tokenizer by name: the backend's own, saved here
            backend.tokenizer.save_pretrained(folder)
            built = {name: build(name, data, length, backend.tokenizer, folder) for name in names}
            new_tokens = max(answer_tokens(b.config) for b in built.values())
            start = time.perf_counter()
            results = lm_eval_results(backend, [b.config for b in built.values()],
                                      max_length=length + new_tokens,
                                      limit=merged["limit"] or samples, seed=seed)
        seconds = round(time.perf_counter() - start, 3)
        rows = []
        for name, one in built.items():
            for record in results["samples"][name]:
                rows.append(self._row(backend, name, length, one, record, seconds, len(rows)))
        return rows

    def _row(self, backend: Backend, name: str, length: int, built: Built,
             record: dict[str, Any], seconds: float, index: int) -> Row:
        prompt = record["arguments"][0][0]
        prediction, references = _answers(built.config, record)
        return Row(
            task=self.name, length=length, method="", score=float(record[built.metric]),
            prediction=prediction, references=references,
            input_tokens=len(backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]),
            seconds=seconds, index=index,
            metadata={"lm_eval_task": name, "doc_id": int(record["doc_id"]),
                      "bucket": built.bucket, "metric": built.metric},
        )


def _answers(config: dict[str, Any], record: dict[str, Any]) -> tuple[str, list[str]]:
    """The row's prediction and references: the generated text and the targets, or for a
    multiple-choice sample the choice of highest log-likelihood and the gold one."""
    target = record.get("target")
    if config.get("output_type") == "multiple_choice":
        choices = [str(args[1]).strip() for args in record["arguments"]]
        scores = [float(resp[0]) for resp in record["filtered_resps"]]
        gold = choices[target] if isinstance(target, int) else str(target)  # an index or a letter
        return choices[scores.index(max(scores))], [gold]
    references = [str(t) for t in target] if isinstance(target, list) else [str(target)]
    return str(record["filtered_resps"][0]), references
