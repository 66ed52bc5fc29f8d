"""The reference-model pipeline: corpus, tokenizer, training mix, a micro training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ropebench.reference.train as ref_train
from ropebench.corpus import documents
from ropebench.reference.data import MixtureConfig, TrainingMixture
from ropebench.reference.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def small_tokenizer():
    return train_tokenizer(documents("train")[:40], vocab_size=512)


def test_corpus_splits_are_disjoint_text():
    train, heldout = documents("train"), documents("heldout")
    assert len(train) > 500 and len(heldout) > 50
    assert sum(map(len, train)) > 2_000_000  # megabytes of prose, offline
    assert not set(train) & set(heldout)


def test_tokenizer_splits_digits_and_adds_bos(small_tokenizer):
    ids = small_tokenizer("The pass key is 90210.").input_ids
    assert ids[0] == small_tokenizer.bos_token_id
    digits = [small_tokenizer.decode([i]) for i in ids if small_tokenizer.decode([i]).strip().isdigit()]
    assert digits == list("90210")
    assert small_tokenizer.decode(ids, skip_special_tokens=True) == "The pass key is 90210."


def test_mixture_rows_fit_and_weight_the_answer(small_tokenizer, tmp_path):
    mix = TrainingMixture(small_tokenizer, MixtureConfig(), seed=3, work_dir=tmp_path,
                          docs=documents("train")[:40])
    ids, weights = mix.batch(24, 256)  # [B, T]
    assert ids.shape == weights.shape == (24, 256)
    assert (weights[ids == small_tokenizer.pad_token_id] == 0).all()
    assert (weights > 1).any(), "retrieval rows must weight their answer tokens"
    row, w = mix.recall_row(128)
    answer = small_tokenizer.decode([t for t, x in zip(row, w, strict=True) if x > 1]).strip()
    asked = small_tokenizer.decode(row).split("The special magic number for ")[-1]
    assert answer.rstrip(".") in small_tokenizer.decode(row[: len(row) - 8])  # the value was shown
    assert asked.endswith(answer)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "loss_log.jsonl").read_text().splitlines()]


def test_micro_training_is_deterministic_and_resumes(tmp_path, monkeypatch):
    cfg = ref_train.micro_config()
    final = ref_train.train_reference(tmp_path / "a", cfg, progress=False)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.max_position_embeddings == 128
    assert tokenizer.bos_token == "<|bos|>"
    log_a = _log(tmp_path / "a")
    assert [e["step"] for e in log_a] == list(range(1, cfg.total_steps + 1))
    # The window phase follows the curriculum: full-window rows on their own schedule.
    window = [e for e in log_a if e["phase"] == "window"]
    assert [e["step"] for e in window] == list(range(cfg.steps + 1, cfg.total_steps + 1))
    assert {e["length"] for e in window} == {128}
    assert window[0]["lr"] == pytest.approx(cfg.window_phase.lr)

    # Interrupt after the step-4 checkpoint, then resume: same log, same weights.
    real_loss, calls = ref_train.weighted_lm_loss, {"n": 0}

    def failing_loss(*args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(ref_train, "weighted_lm_loss", failing_loss)
    with pytest.raises(KeyboardInterrupt):
        ref_train.train_reference(tmp_path / "b", cfg, progress=False)
    monkeypatch.setattr(ref_train, "weighted_lm_loss", real_loss)
    final_b = ref_train.train_reference(tmp_path / "b", cfg, progress=False)
    assert [e["loss"] for e in _log(tmp_path / "b")] == [e["loss"] for e in log_a]
    model_b = AutoModelForCausalLM.from_pretrained(final_b)
    for (name, p), q in zip(model.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_warmup_rows_repeat_text_and_ask_shown_keys(small_tokenizer, tmp_path):
    mix = TrainingMixture(small_tokenizer, MixtureConfig(), seed=5, work_dir=tmp_path,
                          docs=documents("train")[:40])
    ids, weights = mix.repeat_row(65)
    half = (len(ids) - 1) // 2
    assert ids[1 : 1 + half] == ids[1 + half :], "the second stretch repeats the first"
    assert all(w > 1 for w in weights[2 + half :]) and all(w == 1 for w in weights[: 2 + half])
    mix.recall_pairs = (6, 6)
    ids, weights = mix.compact_recall_row(128)
    assert len(ids) <= 128
    text = small_tokenizer.decode(ids[1:])
    lines = text.strip("\n").split("\n")
    shown = {line.split(" ")[0]: line.split(" ")[1] for line in lines[:3]}
    assert all(shown.get(k, v) == v for k, v in (line.split(" ") for line in lines)), text
    batch_ids, _ = mix.recall_batch(8, 64)
    assert batch_ids.shape == (8, 64) and set(mix.last_kinds) <= {"repeat", "recall"}
