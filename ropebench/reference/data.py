"""The reference model's training mix: natural text plus retrieval tasks in the evaluation formats.

Every retrieval example comes from the same generators the evaluation uses (`ropebench.tasks`), so
the model learns exactly the formats it is tested on; only the answer differs from a test sample:
it is included, and its tokens weigh `answer_weight` times more in the loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ropebench.errors import RopebenchError
from ropebench.settings import field_names

# task name -> share of the retrieval examples. Multi-key tasks come in from the start and take
# most of the mix: a model that mostly sees one needle learns to copy "the number" rather than to
# match its key, and one needle is the easy case of every multi-needle task anyway. The word-list
# tasks (vt, cwe, fwe) are left to evaluation: a model this small does not learn them.
DEFAULT_TASK_MIX: dict[str, float] = {
    "niah_single_1": 0.10,
    "niah_single_2": 0.08,
    "niah_multikey_1": 0.18,
    "niah_multikey_2": 0.18,
    "niah_multivalue": 0.14,
    "niah_multiquery": 0.14,
    "passkey": 0.18,
}

# The window phase (see `reference.train.WindowPhase`): after the curriculum the model copies one
# needle but picks the wrong one among several; most rows now need a key matched, and variable
# tracking (follow a chain of assignments) joins at the full window, where its example fits.
WINDOW_TASK_MIX: dict[str, float] = {
    "niah_single_1": 0.05,
    "niah_single_2": 0.04,
    "niah_multikey_1": 0.18,
    "niah_multikey_2": 0.18,
    "niah_multivalue": 0.14,
    "niah_multiquery": 0.14,
    "vt": 0.17,
    "passkey": 0.10,
}

MIN_LENGTH = {"vt": 256, "cwe": 512, "fwe": 256}

# Options of the training rows (and of the model card's measurement, which reads them from here):
# RULER's one-shot vt example takes 500 tokens and the smallest one (5 noise lines) over 200: in a
# 512-token window vt runs without it.
TASK_OPTIONS: dict[str, dict] = {"vt": {"example_length": 0}}
# Tasks whose rows always take the whole row: the smallest vt prompt (5 noise lines, 5 statements)
# needs about 400 tokens of this tokenizer.
FULL_ROW = ("vt",)


@dataclass
class MixtureConfig:
    natural_share: float = 0.35  # rows of plain corpus text
    recall_share: float = 0.15  # rows of dense key-value recall (short, many pairs)
    # Digits of the values in the compact recall rows: the evaluation's needles carry 7 digits, and
    # copying a long number from among several needles (digits repeat across them) is the hard part.
    recall_digits: tuple[int, int] = (2, 7)
    repeat_share: float = 0.3  # warm-up rows that repeat a stretch of text (see `repeat_row`)
    answer_weight: float = 5.0
    text_haystacks: int = 8  # shuffled copies of the train corpus used as essay-style haystacks
    task_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_MIX))


class TrainingMixture:
    """Draws rows of exactly `length` tokens: `(input_ids, loss_weights)`, padding weighted 0."""

    def __init__(self, tokenizer, config: MixtureConfig, seed: int, work_dir: Path,
                 docs: tuple[str, ...]):
        self.tok = tokenizer
        self.work_dir = work_dir
        self.config = config
        self.rng = random.Random(seed)
        self.docs = docs
        ids: list[int] = []
        for doc_ids in tokenizer(list(docs), add_special_tokens=False).input_ids:
            ids += [tokenizer.bos_token_id, *doc_ids, tokenizer.eos_token_id]
        self.stream = torch.tensor(ids, dtype=torch.long)  # [n_tokens] the whole train corpus
        self._tasks: dict = {}
        self._haystacks: list[str] = []
        self.recall_pairs = (3, 6)  # (min, max) pairs per compact recall row; the trainer widens it
        # Per row of the last batch: "text", "repeat", "recall" or "task" (the trainer logs the answer loss
        # of recall and task rows apart: the task rows tell whether retrieval transfers).
        self.last_kinds: list[str] = []

    def use(self, config: MixtureConfig) -> None:
        """Draw the next rows from `config` (the trainer switches mixes between phases)."""
        self.config = config

    def _task(self, name: str):
        if name not in self._tasks:
            from ropebench.tasks import get_task

            self._tasks[name] = get_task(name)
        if not self._haystacks:
            self._haystacks = self._write_text_haystacks()
        return self._tasks[name]

    def _write_text_haystacks(self) -> list[str]:
        """Essay-style tasks read the *first* words of a haystack, so give them several orders of
        the training corpus: the model must not get to memorise one fixed filler text."""
        docs = self.docs
        folders = []
        for k in range(self.config.text_haystacks):
            folder = self.work_dir / "haystacks" / f"train-{k}"
            if not folder.is_dir():
                folder.mkdir(parents=True)
                order = random.Random(k).sample(range(len(docs)), len(docs))
                # File names sort in the shuffled order: the haystack reads files sorted by name.
                for rank, i in enumerate(order[:64]):  # 64 modules: far more text than a row needs
                    (folder / f"{rank:03d}.txt").write_text(docs[i])
            folders.append(str(folder))
        return folders

    def natural_row(self, length: int) -> tuple[list[int], list[float]]:
        start = self.rng.randrange(0, len(self.stream) - length)
        ids = self.stream[start : start + length].tolist()
        return ids, [1.0] * length

    def recall_row(self, length: int) -> tuple[list[int], list[float]]:
        """Dense key-value recall: as many needles as fit in `length` tokens, then one is asked."""
        from ropebench.tasks.ruler.words import random_key

        pairs: list[tuple[str, str]] = []
        lines: list[int] = []
        while True:
            digits = self.rng.randint(*self.config.recall_digits)
            key, value = random_key(self.rng), str(self.rng.randrange(10 ** (digits - 1), 10**digits))
            line = self.tok(f"One of the special magic numbers for {key} is: {value}.\n",
                            add_special_tokens=False).input_ids
            asked_key, asked_value = self.rng.choice(pairs) if pairs else (key, value)
            question = self.tok(f"What is the special magic number for {asked_key}? "
                                f"The special magic number for {asked_key} is:",
                                add_special_tokens=False).input_ids
            answer = self.tok(f" {asked_value}.", add_special_tokens=False).input_ids
            if pairs and 1 + len(lines) + len(line) + len(question) + len(answer) > length:
                break
            pairs.append((key, value))
            lines += line
        # Re-draw the question among all pairs (the loop above drew it before the last pair).
        key, value = self.rng.choice(pairs)
        question = self.tok(f"What is the special magic number for {key}? "
                            f"The special magic number for {key} is:", add_special_tokens=False).input_ids
        answer = self.tok(f" {value}.", add_special_tokens=False).input_ids
        ids = ([self.tok.bos_token_id] + lines + question)[: length - len(answer)] + answer
        weights = [1.0] * (len(ids) - len(answer)) + [self.config.answer_weight] * len(answer)
        return ids, weights

    def task_row(self, length: int) -> tuple[list[int], list[float]]:
        # Word-list tasks (cwe, fwe, vt) carry a one-shot example and need longer rows.
        names = [n for n in self.config.task_mix if length >= MIN_LENGTH.get(n, 0)]
        name = self.rng.choices(names, weights=[self.config.task_mix[n] for n in names])[0]
        task = self._task(name)
        # Spread needle distances over the whole window with a few total lengths (each length's
        # haystack size is searched once and cached by the task), leaving room for the answer.
        budget = max(112, self.rng.choice([length // 4, length // 2, 3 * length // 4, length])) - 24
        if name in FULL_ROW:
            budget = length - 24
        for _ in range(4):
            try:
                seed = self.rng.randrange(1 << 30)
                wanted = {"haystack": self.rng.choice(self._haystacks), "max_new_tokens": 0,
                          "fill": "tight", **TASK_OPTIONS.get(name, {})}
                known = field_names(task.options_class())  # passkey has no haystack option
                sample = task.samples(self.tok, budget, 1, seed,
                                      **{k: v for k, v in wanted.items() if k in known})[0]
            except RopebenchError:  # the template alone outgrows a short row
                return self.recall_row(length)
            prompt = self.tok(sample.prompt + sample.answer_prefix).input_ids  # BOS included
            # EOS after the answer: generation then stops by itself instead of running on.
            answer = self.tok(sample.answer, add_special_tokens=False).input_ids + [self.tok.eos_token_id]
            if len(prompt) + len(answer) <= length:
                weights = [1.0] * len(prompt) + [self.config.answer_weight] * len(answer)
                return prompt + answer, weights
            budget = max(32, budget - (len(prompt) + len(answer) - length) - 8)
        return self.recall_row(length)

    def compact_recall_row(self, length: int) -> tuple[list[int], list[float]]:
        """The warm-up format: `key value` lines, then keys asked back one after another.

        Compact pairs put many retrievals in a short row; every answer is weighted. The value
        follows its key directly, so "find the earlier occurrence of this token and copy what came
        next" (an induction head) solves it; a small model learns that circuit here, where the
        pattern is plain, and reuses it in the wordier evaluation formats.
        """
        from ropebench.tasks.ruler.words import random_key

        ids = [self.tok.bos_token_id]
        weights = [1.0]
        pairs: list[tuple[list[int], list[int]]] = []
        n_pairs = self.rng.randint(self.recall_pairs[0], self.recall_pairs[1])
        for _ in range(n_pairs):
            key = self.tok(random_key(self.rng), add_special_tokens=False).input_ids
            digits = self.rng.randint(*self.config.recall_digits)
            number = self.rng.randrange(10 ** (digits - 1), 10**digits)
            value = self.tok(f" {number}\n", add_special_tokens=False).input_ids
            if len(ids) + len(key) + len(value) > 3 * length // 5:
                break
            pairs.append((key, value))
            ids += key + value
            weights += [1.0] * (len(key) + len(value))
        while True:
            key, value = self.rng.choice(pairs)
            if len(ids) + len(key) + len(value) > length:
                break
            ids += key + value
            weights += [1.0] * len(key) + [self.config.answer_weight] * len(value)
        return ids, weights

    def repeat_row(self, length: int) -> tuple[list[int], list[float]]:
        """A stretch of corpus text, then the same stretch again, the repeat weighted as answers.

        The plainest signal for an induction head ("find the earlier occurrence of this token and
        copy what came next"): models form it within a few hundred steps here, where key-value
        rows alone leave a deeper model at chance; the recall rows then build key matching on it.
        """
        half = (length - 1) // 2
        start = self.rng.randrange(0, len(self.stream) - half)
        span = self.stream[start : start + half].tolist()
        ids = [self.tok.bos_token_id] + span + span
        weights = [1.0] * (1 + half) + [1.0] + [self.config.answer_weight] * (half - 1)
        return ids, weights

    def _draw(self, length: int) -> tuple[str, tuple[list[int], list[float]]]:
        draw = self.rng.random()
        if draw < self.config.natural_share:
            return "text", self.natural_row(length)
        if draw < self.config.natural_share + self.config.recall_share:
            # Half compact (many pairs, many queries), half in the needle wording.
            if self.rng.random() < 0.5:
                return "recall", self.compact_recall_row(min(length, 128))
            return "recall", self.recall_row(min(length, 128))
        return "task", self.task_row(length)

    def batch(self, batch_size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(input_ids [B, length], weights [B, length])`; weight 0 marks padding."""
        drawn = [self._draw(length) for _ in range(batch_size)]
        self.last_kinds = [kind for kind, _ in drawn]
        return self._stack([row for _, row in drawn], length)

    def recall_batch(self, batch_size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The warm-up: repeated text, compact recall, and recall in the evaluation's needle wording."""
        rows, self.last_kinds = [], []
        for _ in range(batch_size):
            draw = self.rng.random()
            if draw < self.config.repeat_share:
                rows.append(self.repeat_row(length))
                self.last_kinds.append("repeat")
                continue
            if draw < self.config.repeat_share + 0.6 * (1 - self.config.repeat_share):
                rows.append(self.compact_recall_row(length))
            else:
                rows.append(self.recall_row(length))
            self.last_kinds.append("recall")
        return self._stack(rows, length)

    def _stack(self, rows: list[tuple[list[int], list[float]]], length: int):
        input_ids = torch.full((len(rows), length), self.tok.pad_token_id, dtype=torch.long)
        weights = torch.zeros(len(rows), length)
        for b, (ids, w) in enumerate(rows):
            input_ids[b, : len(ids)] = torch.tensor(ids)
            weights[b, : len(w)] = torch.tensor(w)
        return input_ids, weights
