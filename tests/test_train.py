"""Packing rules and the training loop on a micro model (a few steps, float32 on CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_llama, tiny_tokenizer

from ropebench.errors import RopebenchError
from ropebench.methods import get_extender
from ropebench.methods.base import TrainingLayout
from ropebench.model.patch import spec_of
from ropebench.training.data import IGNORE, load_documents, pack_mixed, pack_plain
from ropebench.training.trainer import TrainSettings, learning_rate, train_model

WINDOW, TARGET = 32, 96


pytestmark = pytest.mark.usefixtures("one_thread")


def test_pack_mixed_rows():
    short = [[1, 5, 6, 2], [1, 7, 2]]
    long = [[1] + list(range(10, 60)) + [2]]  # 52 tokens > window 32
    rows = list(pack_mixed(short + long, 64, 32, pad_id=0))
    assert [r.long for r in rows] == [False, True]
    s, lg = rows
    assert s.input_ids[:7] == [1, 5, 6, 2, 1, 7, 2] and s.input_ids[7:] == [0] * 57
    assert s.position_ids[:7] == [0, 1, 2, 3, 0, 1, 2]  # restart per document
    assert s.labels[:7] == [IGNORE, 5, 6, 2, IGNORE, 7, 2] and set(s.labels[7:]) == {IGNORE}
    assert lg.position_ids[:52] == list(range(52))  # continuous: full causal attention
    assert lg.position_ids[52:] == list(range(12))  # padding is a sequence of its own
    assert set(lg.labels[52:]) == {IGNORE}
    assert all(len(r.input_ids) == len(r.position_ids) == len(r.labels) == 64 for r in rows)


def test_pack_mixed_long_documents_fill_rows_back_to_back():
    docs = [[1] * 20, [3] * 40, [1] * 20, [4] * 200, [5] * 40]
    rows = list(pack_mixed(docs, 48, 32, pad_id=0))
    assert [r.long for r in rows] == [True, True, False]
    first, second, short = rows
    assert first.input_ids == [3] * 40 + [4] * 8 and first.position_ids == list(range(48))
    assert second.input_ids == [4] * 40 + [5] * 8  # the 200-token document was cut to 48
    assert short.input_ids[:40] == [1] * 40 and short.position_ids[:40] == [*range(20), *range(20)]


def test_pack_mixed_per_document_long_rows_keep_documents_whole():
    long = [1] + list(range(10, 60)) + [2]  # 52 tokens
    rows = list(pack_mixed([long, long, long], 128, 32, pad_id=0, per_document_mask_long=True))
    assert [r.long for r in rows] == [True, True]
    assert rows[0].position_ids[:104] == [*range(52), *range(52)]
    assert rows[0].labels[52] == IGNORE  # no document predicts the next one's first token
    assert rows[1].input_ids[:52] == long


def test_pack_plain_cuts_the_stream():
    rows = list(pack_plain([[1, 2, 3, 4, 5], [1, 6, 7, 8, 9, 10]], 4))
    assert [r.input_ids for r in rows] == [[1, 2, 3, 4], [5, 1, 6, 7], [8, 9, 10]][:2]
    assert all(r.position_ids == [0, 1, 2, 3] and r.labels[0] == IGNORE for r in rows)


def test_load_documents_from_a_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "b.jsonl").write_text('{"text": "second"}\n\n{"text": "third"}\n')
    assert load_documents(str(tmp_path)) == ["first document", "second", "third"]
    (tmp_path / "c.jsonl").write_text('{"body": 1}\n')
    with pytest.raises(RopebenchError, match="c.jsonl:1"):
        load_documents(str(tmp_path))
    with pytest.raises(RopebenchError, match="does not exist"):
        load_documents("./no/such/folder")


def test_learning_rate_schedule():
    s = TrainSettings(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(0, s) == pytest.approx(1e-4)
    assert learning_rate(9, s) == pytest.approx(1e-3)
    assert learning_rate(10, s) == pytest.approx(1e-3)
    assert learning_rate(55, s) == pytest.approx(0.55e-3)
    assert learning_rate(100, s) == pytest.approx(1e-4)


@pytest.fixture()
def corpus(tmp_path):
    """Short and long documents of stdlib text (the tokenizer's own training text)."""
    import pydoc_data.topics

    folder = tmp_path / "corpus"
    folder.mkdir()
    texts = list(pydoc_data.topics.topics.values())[:20]
    for i, text in enumerate(texts):
        (folder / f"{i:02d}.txt").write_text(text[: 60 if i % 2 else 1200])
    return folder


@pytest.mark.parametrize("mixed", [True, False])
def test_training_lowers_the_loss_and_exports(corpus, tmp_path, mixed):
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    model = tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2)
    scaling = get_extender("longrope2").rescale(spec_of(model), TARGET)
    settings = TrainSettings(steps=12, lr=3e-3, warmup_steps=2, batch_size=2, grad_accum=2,
                             data=str(corpus), log_every=4, save_every=0)
    out = tmp_path / "out"
    result = train_model(model, tok, scaling, settings, out_dir=out,
                         layout=TrainingLayout(mixed=mixed))
    first = sum(loss for _, loss in result.losses[:3]) / 3
    last = sum(loss for _, loss in result.losses[-3:]) / 3
    assert last < first - 0.3
    assert result.tokens > 0 and len(result.losses) == 12
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 4, 8, 12]
    long_rows = [r["long_rows"] for r in log]  # of 4 rows per step
    if mixed:
        assert any(n < 4 for n in long_rows) and any(n > 0 for n in long_rows)  # both kinds
    else:
        assert long_rows == [4] * 4
    # Round trip: vanilla transformers loads the result with the same RoPE and weights.
    loaded = AutoModelForCausalLM.from_pretrained(out, attn_implementation="sdpa").eval()
    assert loaded.config.rope_parameters["rope_type"] == "longrope"
    ids = torch.randint(3, 384, (1, TARGET), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    assert not (out / "checkpoint").exists()


def test_interrupted_training_resumes(corpus, tmp_path):
    tok = tiny_tokenizer()
    kw = dict(lr=3e-3, warmup_steps=2, batch_size=2, data=str(corpus), log_every=1, save_every=3)

    def fresh():
        return tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2)

    scaling = get_extender("yarn").rescale(spec_of(fresh()), TARGET)

    full = train_model(fresh(), tok, scaling, TrainSettings(steps=6, **kw), out_dir=tmp_path / "a",
                       layout=TrainingLayout())
    # Stop after step 4 (checkpoint at 3, one logged step beyond it), then run to 6 again.
    part = TrainSettings(steps=6, **kw)
    model = fresh()
    original_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def failing_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return original_step(self, *a, **k)

    torch.optim.AdamW.step = failing_step
    try:
        with pytest.raises(KeyboardInterrupt):
            train_model(model, tok, scaling, part, out_dir=tmp_path / "b", layout=TrainingLayout())
    finally:
        torch.optim.AdamW.step = original_step
    assert (tmp_path / "b" / "checkpoint" / "progress.json").is_file()
    resumed = train_model(fresh(), tok, scaling, part, out_dir=tmp_path / "b", layout=TrainingLayout())
    # Bit for bit: the checkpoint restores weights, optimizer, rng and the data stream exactly.
    assert resumed.losses == full.losses and [s for s, _ in resumed.losses] == list(range(1, 7))
    assert (resumed.tokens, resumed.tokens_long) == (full.tokens, full.tokens_long)
    logs = [_log_without_times(tmp_path / n) for n in ("a", "b")]
    assert logs[0] == logs[1] and [r["step"] for r in logs[1]] == [1, 2, 3, 4, 5, 6]
    assert set(logs[1][0]) == {"step", "loss", "lr", "tokens", "long_rows", "rows"}
    assert _weights(tmp_path / "a") == _weights(tmp_path / "b")


def _log_without_times(out) -> list[dict]:
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def _weights(out) -> bytes:
    return (out / "model.safetensors").read_bytes()


def _settings(corpus, **changes):
    kw = dict(steps=8, lr=3e-3, warmup_steps=2, batch_size=2, data=str(corpus), log_every=1,
              save_every=3)
    return TrainSettings(**{**kw, **changes})


def _fresh():
    return tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2)


def test_kill_inside_the_checkpoint_write_resumes_from_the_last_whole_one(corpus, tmp_path):
    from accelerate import Accelerator

    tok = tiny_tokenizer()
    scaling = get_extender("yarn").rescale(spec_of(_fresh()), TARGET)
    full = train_model(_fresh(), tok, scaling, _settings(corpus), out_dir=tmp_path / "a")

    original = Accelerator.save_state
    calls = {"n": 0}

    def killed_inside(self, output_dir=None, **kw):
        calls["n"] += 1
        result = original(self, output_dir, **kw)  # new weights and optimizer are on disk ...
        if calls["n"] == 2:
            raise KeyboardInterrupt  # ... and the process dies before progress.json
        return result

    Accelerator.save_state = killed_inside
    try:
        with pytest.raises(KeyboardInterrupt):
            train_model(_fresh(), tok, scaling, _settings(corpus), out_dir=tmp_path / "b")
    finally:
        Accelerator.save_state = original
    progress = json.loads((tmp_path / "b" / "checkpoint" / "progress.json").read_text())
    assert progress["step"] == 3  # the step-6 state never became the checkpoint
    resumed = train_model(_fresh(), tok, scaling, _settings(corpus), out_dir=tmp_path / "b")
    assert resumed.losses == full.losses and [s for s, _ in resumed.losses] == list(range(1, 9))
    assert _weights(tmp_path / "a") == _weights(tmp_path / "b")
    assert not any((tmp_path / "b" / n).exists() for n in ("checkpoint", "checkpoint.tmp"))


@pytest.mark.parametrize("change", ["lr", "method", "model"])
def test_a_checkpoint_of_another_run_is_refused(corpus, tmp_path, change):
    tok = tiny_tokenizer()
    scaling = get_extender("yarn").rescale(spec_of(_fresh()), TARGET)
    original = torch.optim.AdamW.step
    calls = {"n": 0}

    def failing_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    torch.optim.AdamW.step = failing_step
    try:
        with pytest.raises(KeyboardInterrupt):
            train_model(_fresh(), tok, scaling, _settings(corpus), out_dir=tmp_path)
    finally:
        torch.optim.AdamW.step = original
    model, settings = _fresh(), _settings(corpus)
    if change == "lr":
        settings = _settings(corpus, lr=1e-3)
    elif change == "method":
        scaling = get_extender("pi").rescale(spec_of(model), TARGET)
    else:
        model = tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2, seed=3)
    with pytest.raises(RopebenchError, match="written by another training run.*delete"):
        train_model(model, tok, scaling, settings, out_dir=tmp_path)


def test_train_settings_are_bounded():
    for bad in ({"lr": float("nan")}, {"lr": -1}, {"steps": 0}, {"batch_size": 0},
                {"betas": (0.9, 1.5)}, {"max_grad_norm": float("inf")}):
        with pytest.raises(RopebenchError):
            TrainSettings(**bad)
