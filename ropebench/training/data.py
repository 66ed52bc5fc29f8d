"""Training documents and their packing into rows of the target length.

Sources: `reference` (the reference corpus), a local folder or file of `.txt` (one document per
file) / `.jsonl` (one document per line, field `text`), or a Hugging Face dataset by name
(`name`, `name:config` or `name:config@split`; needs the network or a local HF cache).

Two packings:
- `pack_plain`: every document concatenated and cut into rows, positions 0..L-1, full causal
  attention (plain fine-tuning, the baselines' "same mid-training procedure").
- `pack_mixed`: LongRoPE2's mixed context window rows. Documents of at most the pretrained window
  share short rows with positions restarting at 0 for each document (so attention and RoPE stay
  per document); longer documents, truncated to L, fill long rows back to back with continuous
  positions and full causal attention, or whole, each with its own positions, with
  `per_document_mask_long`.
A padding tail always restarts its positions, so it never joins a document.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ropebench.errors import RopebenchError

IGNORE = -100  # label of tokens that are not predicted (padding, the first token of a document)


def load_documents(source: str) -> list[str]:
    """The documents of a data source, in a stable order."""
    if source == "reference":
        from ropebench.corpus import documents

        return list(documents("train"))
    path = Path(source).expanduser()
    files = document_files(source)
    if files is not None:
        docs = [doc for f in files for doc in _read_file(f)]
        if not docs:
            raise RopebenchError(f"no .txt or .jsonl documents found in {path}")
        return docs
    if source.startswith((".", "/", "~")) or path.suffix in (".txt", ".jsonl"):
        raise RopebenchError(f"data path {source} does not exist; give a folder of .txt/.jsonl files")
    return _hf_dataset(source)


def document_files(source: str) -> list[Path] | None:
    """The local files `load_documents` reads for `source`, in order (None: not a local source)."""
    if source == "reference":
        return None
    path = Path(source).expanduser()
    if not path.exists():
        return None
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())


def _read_file(path: Path) -> list[str]:
    if path.suffix == ".txt":
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        return [text] if text else []
    if path.suffix != ".jsonl":
        raise RopebenchError(f"{path}: unsupported file type; use .txt or .jsonl")
    docs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise RopebenchError(f"{path}:{number}: invalid JSON ({err})") from err
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise RopebenchError(f"{path}:{number}: each line must be an object with a 'text' string")
        docs.append(record["text"])
    return docs


def _hf_dataset(name: str) -> list[str]:
    """`name[:config][@split]` from the HF hub (or its local cache); the `text` column."""
    name, _, split = name.partition("@")
    name, _, config = name.partition(":")
    try:
        import datasets

        data = datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as err:  # offline, unknown name, missing split ... all end the same way
        raise RopebenchError(
            f"cannot load dataset {name!r}: {err}; use a local folder of .txt/.jsonl or `reference`"
        ) from err
    if "text" not in data.column_names:
        raise RopebenchError(f"dataset {name!r} has no 'text' column (columns: {data.column_names})")
    return [t for t in data["text"] if t and t.strip()]


@dataclass
class PackedRow:
    """One training row of exactly `row_length` tokens."""

    input_ids: list[int]
    position_ids: list[int]
    labels: list[int]
    long: bool  # uses the rescaled RoPE (positions reach past the pretrained window)


class _RowBuilder:
    """Appends documents to a row; `restart` makes each document's positions start at 0."""

    def __init__(self, row_length: int, pad_id: int, restart: bool):
        self.row_length, self.pad_id, self.restart = row_length, pad_id, restart
        self.ids: list[int] = []
        self.positions: list[int] = []
        self.labels: list[int] = []

    @property
    def free(self) -> int:
        return self.row_length - len(self.ids)

    def add(self, doc: Sequence[int]) -> None:
        start = 0 if self.restart else len(self.ids)
        self.ids += doc
        self.positions += range(start, start + len(doc))
        # A document's first token is never a target: it would be predicted from the previous one.
        self.labels += [IGNORE, *doc[1:]]

    def finish(self, long: bool) -> PackedRow:
        pad = self.free
        row = PackedRow(
            self.ids + [self.pad_id] * pad,
            self.positions + list(range(pad)),
            self.labels + [IGNORE] * pad,
            long,
        )
        self.ids, self.positions, self.labels = [], [], []
        return row


def _full_rows(stream: list[int], row_length: int) -> Iterator[PackedRow]:
    """Cut whole rows off the front of a token stream (in place), positions 0..L-1."""
    while len(stream) >= row_length:
        ids = stream[:row_length]
        del stream[:row_length]
        yield PackedRow(ids, list(range(row_length)), [IGNORE, *ids[1:]], long=True)


def pack_plain(docs: Iterable[Sequence[int]], row_length: int) -> Iterator[PackedRow]:
    """Concatenate every document and cut rows of `row_length` (the last partial row is dropped)."""
    stream: list[int] = []
    for doc in docs:
        stream += doc
        yield from _full_rows(stream, row_length)


def pack_mixed(
    docs: Iterable[Sequence[int]],
    row_length: int,
    original_length: int,
    pad_id: int,
    *,
    per_document_mask_long: bool = False,
) -> Iterator[PackedRow]:
    """LongRoPE2's mixed rows, in document order.

    Short documents fill rows first fit; a row is padded and closed when the next one does not fit.
    Long documents (truncated to the row) are concatenated and cut into full rows, as in plain
    packing; with `per_document_mask_long` they are packed like the short ones instead, so no
    document is split and each keeps its own positions.
    """
    short = _RowBuilder(row_length, pad_id, restart=True)
    long = _RowBuilder(row_length, pad_id, restart=True)
    stream: list[int] = []
    for doc in docs:
        doc = list(doc[:row_length])
        if len(doc) > original_length and not per_document_mask_long:
            stream += doc
            yield from _full_rows(stream, row_length)
            continue
        builder = short if len(doc) <= original_length else long
        if len(doc) > builder.free:
            yield builder.finish(long=builder is long)
        builder.add(doc)
    for builder in (short, long):
        if builder.ids:
            yield builder.finish(long=builder is long)
    if len(stream) > original_length:  # the tail still reaches past the window: pad it
        tail = _RowBuilder(row_length, pad_id, restart=False)
        tail.add(stream)
        yield tail.finish(long=True)


MAX_PULLED = 256  # rows read while waiting for one row of the kind that is due


def _targets(row: PackedRow) -> int:
    return sum(label != IGNORE for label in row.labels)


def balance(stream: Iterator[PackedRow], long_share: float) -> Iterator[PackedRow]:
    """Reorder mixed rows so that long rows carry `long_share` of the target tokens.

    Each row goes to whichever kind is behind its share; rows of the other kind wait in a buffer
    (documents keep their order within a kind). When the data holds no row of the kind that is
    due within `MAX_PULLED` rows, the other kind goes on (the trained split is recorded, not
    assumed); with a share of 0 or 1 that is an error, the other kind being unwanted.
    """
    waiting: dict[bool, deque[PackedRow]] = {True: deque(), False: deque()}
    done = {True: 0, False: 0}  # target tokens emitted per kind
    while True:
        total = done[True] + done[False]
        kind = long_share >= 1 or (long_share > 0 and done[True] <= long_share * total)
        pulled = 0
        while not waiting[kind]:
            if pulled >= MAX_PULLED and waiting[not kind]:
                kind = not kind  # none of the due kind in sight: the data decides
                break
            if pulled >= MAX_PULLED:
                which = "longer" if kind else "no longer"
                raise RopebenchError(
                    f"mixed training found no document {which} than the pretrained window in "
                    f"{MAX_PULLED} rows; give such documents or change train.long_share"
                )
            row = next(stream)
            pulled += 1
            if row.long == kind or 0 < long_share < 1:
                waiting[row.long].append(row)
        row = waiting[kind].popleft()
        done[kind] += _targets(row)
        yield row


def tokenize(tokenizer, text: str) -> list[int]:
    """One document as BOS + tokens + EOS."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + ids + [tokenizer.eos_token_id]


def rows(
    tokenizer,
    texts: Sequence[str],
    row_length: int,
    *,
    original_length: int,
    mixed: bool,
    per_document_mask_long: bool = False,
    seed: int = 0,
    long_share: float | None = None,
) -> Iterator[PackedRow]:
    """An endless stream of rows: the documents in a seeded random order, reshuffled every epoch.

    Mixed rows with `long_share` are reordered so that long rows carry that share of the target
    tokens (`balance`); None keeps the order the documents give."""
    if mixed and long_share is not None:
        yield from balance(rows(tokenizer, texts, row_length, original_length=original_length,
                                mixed=True, per_document_mask_long=per_document_mask_long,
                                seed=seed), long_share)
        return
    if not texts:
        raise RopebenchError("the training data has no documents")
    rng = random.Random(seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    while True:
        order = list(range(len(texts)))
        rng.shuffle(order)
        docs = (tokenize(tokenizer, texts[i]) for i in order)
        if mixed:
            epoch = pack_mixed(docs, row_length, original_length, pad_id,
                               per_document_mask_long=per_document_mask_long)
        else:
            epoch = pack_plain(docs, row_length)
        produced = False
        for row in epoch:
            produced = True
            yield row
        if not produced:
            raise RopebenchError(
                f"the training data holds fewer than {row_length} tokens; give more documents"
            )


def collate(batch: Sequence[PackedRow]) -> dict[str, torch.Tensor]:
    """Rows -> tensors: input_ids, position_ids, labels (B, T); long [B]."""
    return {
        "input_ids": torch.tensor([r.input_ids for r in batch]),
        "position_ids": torch.tensor([r.position_ids for r in batch]),
        "labels": torch.tensor([r.labels for r in batch]),
        "long": torch.tensor([r.long for r in batch]),
    }
