"""The lm-eval long-context task families `lmeval_long` runs, and how each meets a length.

A family names the installed lm-eval tasks it covers, where their records live in the data folder
and what a record must carry, which lengths it can give, and how the installed config becomes one
that reads the local records at a length L (tokens):
- babilong (`babilong_qaN`): per-length buckets (`0k` ... `128k`, k = 1024 tokens); L reads the
  largest bucket of the folder whose size is at most L;
- longbench (`longbench_<dataset>`): LongBench's `pred.py` rule, a prompt over L tokens keeps its
  first L/2 and last L/2 tokens;
- longbench2 (`longbench2_<task>`): items carry LongBench v2's `length` label (short < 32k words,
  medium 32k-128k, long 128k-2M; k = 1000); L counts as L words and reads the items of the label
  whose range holds it; the whole rendered prompt is cut in the middle as LongBench v2's `pred.py`
  does (`input_ids[:max_len//2] + input_ids[-max_len//2:]`);
- infinitebench (`infinitebench_<task>`): the whole prompt, task description included, is cut in
  the middle as InfiniteBench's `truncate_by_tokens` does (first L/2 and last L/2 tokens);
- ruler (`niah_*`, `ruler_*`): lm-eval generates its own samples at `max_seq_lengths: [L]`,
  sized with the model's tokenizer (saved to a folder lm-eval loads by path); the tasks that
  download essays or QA sets while they build samples need `online`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError

BABILONG_BUCKETS = ("0k", "1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k")
# LongBench v2's length labels by the context's word count: (label, first word count past it).
LONGBENCH2_LABELS = (("short", 32_000), ("medium", 128_000), ("long", 2_000_001))
# The fields a record must carry for each family's templates and scorers.
FIELDS = {"babilong": ("input", "question", "target"),
          "longbench": ("context", "question", "answers"),
          "longbench2": ("context", "question", "answer", "length"),
          "infinitebench": ("context", "input", "answer"),
          "ruler": ()}
# lm-eval's RULER tasks that fetch data while they build their samples, and what they fetch.
ESSAYS = "Paul Graham essays (hub dataset baber/paul_graham_essays)"
RULER_DOWNLOADS = {"niah_single_2": ESSAYS, "niah_single_3": ESSAYS, "niah_multikey_1": ESSAYS,
                   "niah_multivalue": ESSAYS, "niah_multiquery": ESSAYS,
                   "ruler_qa_squad": "SQuAD v2 dev (rajpurkar.github.io)",
                   "ruler_qa_hotpot": "HotpotQA dev (hotpotqa.github.io)"}
RULER_OFFLINE = ("niah_single_1", "niah_multikey_2", "niah_multikey_3", "ruler_vt", "ruler_cwe",
                 "ruler_fwe")
# Lengths below which lm-eval's generator never ends: ruler_vt first builds a few-shot example of
# up to 500 tokens and then shrinks its sample's noise until both fit (at 512 tokens with the
# reference tokenizer it loops forever; at 1024 it builds in 0.3 s).
RULER_MIN_LENGTH = {"ruler_vt": 1024}
MC_ANSWER_TOKENS = 8  # room for a multiple-choice continuation (" A") on top of the prompt
_PREFIXES = (("longbench2_", "longbench2"), ("longbench_", "longbench"),
             ("infinitebench_", "infinitebench"), ("niah_", "ruler"), ("ruler_", "ruler"))


@dataclass
class Built:
    """An lm-eval config reading the local data at one length, the bucket or rule it used, and
    the per-sample metric a row's score is read from."""

    config: dict[str, Any]
    bucket: str
    metric: str


def family(task: str) -> str:
    """The family an lm-eval task name belongs to; an unsupported name is an error."""
    name = "babilong" if task.startswith("babilong_qa") and task[11:].isdigit() else None
    for prefix, candidate in _PREFIXES if name is None else ():
        if task.startswith(prefix):
            name = candidate
            break
    if name == "longbench" and task.endswith("_e"):  # LongBench-E: another length protocol
        name = None
    if name is None or task not in _task_index(name):
        raise RopebenchError(
            f"lmeval_long does not support the lm-eval task {task!r}; choose babilong_qa1..20, "
            "longbench_<dataset>, longbench2_<task>, infinitebench_<task> or a RULER task "
            "(niah_single_1, ruler_vt, ...) in lmeval_long.tasks"
        )
    return name


@cache
def _task_index(name: str) -> dict[str, Path]:
    """{task: its YAML} for one installed lm-eval folder (file names differ from task names)."""
    import lm_eval.tasks

    folder = Path(lm_eval.tasks.__file__).parent / name
    index = {}
    for path in sorted(folder.glob("*.yaml")):
        found = re.search(r"^task:\s*(\S+)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
        if found:
            index[found.group(1)] = path
    return index


def installed_config(task: str) -> dict[str, Any]:
    """The installed lm-eval YAML with its includes and `!function`s resolved."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        with warnings.catch_warnings():  # fuzzywuzzy warns about its pure-python matcher
            warnings.simplefilter("ignore")
            return load_yaml(_task_index(family(task))[task])
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


def longbench2_label(length: int) -> str:
    """The LongBench v2 label whose word range holds `length` (counted as words)."""
    for label, end in LONGBENCH2_LABELS:
        if length < end:
            return label
    raise RopebenchError(f"no LongBench v2 length label reaches {length} tokens (long ends at "
                         "2,000,000 words); evaluate longbench2 tasks at shorter lengths")


def data_files(data: Path, task: str) -> list[Path]:
    """The files of the data folder the task reads (those present)."""
    name = family(task)
    if name == "babilong":
        split = task.removeprefix("babilong_")
        paths = [data / "babilong" / b / f"{split}.jsonl" for b in BABILONG_BUCKETS]
    elif name == "ruler":
        paths = []
    else:
        paths = [data / name / f"{task.split('_', 1)[1]}.jsonl"]
    return [path for path in paths if path.is_file()]


def _records(path: Path) -> list[Any]:
    """One JSON value per line (None for a line that is not JSON)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append(None)
    return out


def record_ok(name: str, record: Any) -> bool:
    """The record carries what the family's templates and scorers read."""
    if not isinstance(record, dict) or any(k not in record for k in FIELDS[name]):
        return False
    if name == "longbench2":
        choices = record.get("choices")
        four = (isinstance(choices, list) and len(choices) == 4) or all(
            f"choice_{x}" in record for x in "ABCD")
        return four and record["length"] in dict(LONGBENCH2_LABELS)
    if name == "infinitebench":  # lm-eval's target is `answer[0]`: a list of answers
        return isinstance(record["answer"], list) and bool(record["answer"])
    return True


def check_data(data: Path, task: str) -> None:
    """Every file the task would read exists and its records are in the benchmark's format."""
    name = family(task)
    if name == "ruler":
        return
    files = data_files(data, task)
    if not files:
        raise RopebenchError(f"no data for {task} in {data}; see docs/harder-retrieval-and-"
                             "published.md for the lmeval_long.data folder layout")
    for path in files:
        for number, record in enumerate(_records(path), 1):
            if not record_ok(name, record):
                extra = {"longbench2": " (choices or choice_A..D; length short/medium/long)",
                         "infinitebench": " (answer a non-empty list)"}.get(name, "")
                raise RopebenchError(f"{path}: line {number} is not a {name} record (a JSON "
                                     f"object with {', '.join(FIELDS[name])}{extra}); fix the file")


def check_length(data: Path, task: str, length: int) -> None:
    """The task can give `length`: a BABILong bucket, a LongBench v2 label with items."""
    name = family(task)
    if length < RULER_MIN_LENGTH.get(task, 0):
        raise RopebenchError(f"lm-eval's {task} cannot build samples of {length} tokens (its "
                             f"generator needs at least {RULER_MIN_LENGTH[task]}); evaluate it "
                             "at longer lengths")
    if name == "babilong":
        babilong_bucket(data, task, length)
    elif name == "longbench2":
        label = longbench2_label(length)
        path = data_files(data, task)[0]
        labels = {r["length"] for r in _records(path)}
        if label not in labels:
            raise RopebenchError(
                f"{task} has no '{label}' items (LongBench v2's label for {length} tokens) in "
                f"{path} (it has {', '.join(sorted(labels))}); add such items or evaluate at "
                "lengths whose label the file has")


def middle_truncate(text: str, tokenizer, length: int) -> str:
    """LongBench's and InfiniteBench's rule: a prompt over `length` tokens keeps its first and
    last length/2."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= length:
        return text
    half = length // 2
    return tokenizer.decode(ids[:half], skip_special_tokens=True) + tokenizer.decode(
        ids[-half:], skip_special_tokens=True)


def _read_local(config: dict[str, Any], path: Path) -> None:
    """The config reads `path` (JSON lines) as its test split instead of the hub."""
    for key in ("tag", "dataset_name", "custom_dataset"):
        config.pop(key, None)
    config["dataset_path"] = "json"
    config["dataset_kwargs"] = {"data_files": {config["test_split"]: str(path)}}


def _truncate_prompt(config: dict[str, Any], tokenizer, length: int) -> None:
    """The whole rendered prompt, the task description included, is cut to `length` tokens in
    the middle (the benchmarks' harnesses truncate the prompt they send, not the context)."""
    from lm_eval.utils import apply_template

    text, description = config["doc_to_text"], config.pop("description", "") or ""

    def render(doc: dict[str, Any]) -> str:
        body = text(doc) if callable(text) else apply_template(text, doc)
        return middle_truncate(apply_template(description, doc) + body, tokenizer, length)

    config["doc_to_text"] = render


def _longbench2_docs(label: str):
    """lm-eval `process_docs`: the items of one length label, with LongBench v2's own
    `choice_A..D` records given the `choices` list lm-eval's template reads."""

    def process(dataset):
        dataset = dataset.filter(lambda doc: doc["length"] == label)
        if "choices" not in dataset.column_names:
            dataset = dataset.map(lambda doc: {"choices": [doc[f"choice_{x}"] for x in "ABCD"]})
        return dataset

    return process


def _ruler(config: dict[str, Any], length: int, tokenizer_dir: str) -> Built:
    """lm-eval's RULER generating its samples at `length` with the model's tokenizer; the score
    of a sample is its metric named after the length (added where the YAML lacks it)."""
    config.pop("tag", None)
    config["metadata"] = {**(config.get("metadata") or {}), "max_seq_lengths": [length],
                          "tokenizer": tokenizer_dir}
    metrics = config["metric_list"]
    if all(m["metric"] != str(length) for m in metrics):
        config["metric_list"] = [*metrics, {**metrics[0], "metric": str(length)}]
    return Built(config, "generated", str(length))


def build(task: str, data: Path, length: int, tokenizer, tokenizer_dir: str | None) -> Built:
    """The installed config of `task` reading the local data (or generating) at `length`."""
    name, config = family(task), installed_config(task)
    if name == "ruler":
        assert tokenizer_dir is not None, "RULER tasks size their samples with a tokenizer"
        return _ruler(config, length, tokenizer_dir)
    metric = config["metric_list"][0]["metric"]
    if name == "babilong":
        bucket, path = babilong_bucket(data, task, length)
        _read_local(config, path)
        return Built(config, bucket, metric)
    _read_local(config, data_files(data, task)[0])
    _truncate_prompt(config, tokenizer, length)
    if name == "longbench2":
        config["process_docs"] = _longbench2_docs(longbench2_label(length))
        return Built(config, longbench2_label(length), metric)
    return Built(config, "middle", metric)


def answer_tokens(config: dict[str, Any]) -> int:
    """Tokens past the prompt a sample needs: its generation budget, or a choice's continuation."""
    if config.get("output_type", "generate_until") != "generate_until":
        return MC_ANSWER_TOKENS
    return int((config.get("generation_kwargs") or {}).get("max_gen_toks", 256))
