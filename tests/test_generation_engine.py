"""The fast generation engine against `model.generate` (the "hf" engine): same tokens, same scores."""

from __future__ import annotations

import pytest
import torch
from helpers import complete, tiny_llama

from ropebench.backends.hf import HFBackend, HFOptions
from ropebench.backends.hf_engine import decode_batch, rope_is_static
from ropebench.methods import get_extender
from ropebench.model.patch import apply_scaling, spec_of
from ropebench.run.evaluate import run_evaluation

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Return the value of the key.",
    "def f(x):\n    return x + 1\n" * 4,
    "A short one.",
    "Numbers: 1 2 3 4 5 6 7 8 9 " * 2,
]


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_fast_engine_matches_generate_token_for_token(tok, kv_heads):
    model = tiny_llama(window=256, kv_heads=kv_heads, seed=1)
    for batch_size in (1, 3):
        hf = complete(model, tok, TEXTS, 12, batch_size=batch_size, engine="hf")
        fast = complete(model, tok, TEXTS, 12, batch_size=batch_size, engine="fast")
        assert [c.text for c in fast] == [c.text for c in hf]


def test_fast_engine_matches_generate_on_an_extended_model(tok):
    model = tiny_llama(window=32, seed=3)
    apply_scaling(model, get_extender("yarn").rescale(spec_of(model), 128))
    hf = complete(model, tok, TEXTS, 10, batch_size=4, engine="hf")
    fast = complete(model, tok, TEXTS, 10, batch_size=4, engine="fast")
    assert [c.text for c in fast] == [c.text for c in hf]


def test_rows_leave_the_batch_when_done_and_others_continue(tok):
    model = tiny_llama(window=256, seed=1)
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS[:3]]
    full = decode_batch(model, prompts, 8, lambda row, tokens: False)
    # Row 1 stops after 2 tokens; the others must be unaffected by its removal from the batch.
    cut = decode_batch(model, prompts, 8, lambda row, tokens: row == 1 and len(tokens) == 2)
    assert [len(t) for t in full] == [8, 8, 8]
    assert cut[1] == full[1][:2] and cut[0] == full[0] and cut[2] == full[2]


def test_settled_rows_stop_early_with_the_same_text_so_far(tok):
    model = tiny_llama(window=256, seed=1)
    full = complete(model, tok, TEXTS, 10)
    # Settle each row as soon as its text has 3 characters: its text is a prefix of the full one.
    early = complete(model, tok, TEXTS, 10, settled=lambda i, text: len(text) >= 3)
    for short, long in zip(early, full, strict=True):
        assert long.text.startswith(short.text)
        assert len(short.text) >= min(3, len(long.text))


def test_length_dependent_rope_goes_through_generate():
    model = tiny_llama(window=64, seed=0)
    assert rope_is_static(model.config, [10, 500], 20)
    apply_scaling(model, get_extender("dynamic-ntk").rescale(spec_of(model), 256))
    assert not rope_is_static(model.config, [10], 5)
    model = tiny_llama(window=64, seed=0)
    apply_scaling(model, get_extender("longrope2").rescale(spec_of(model), 256))
    assert rope_is_static(model.config, [100, 200], 20)  # all rows past the window throughout
    assert rope_is_static(model.config, [10, 20], 20)  # all rows inside it throughout
    assert not rope_is_static(model.config, [60], 20)  # crosses it while generating


def test_unknown_engine_is_refused(tok):
    from ropebench.errors import RopebenchError

    with pytest.raises(RopebenchError, match="engine"):
        complete(tiny_llama(), tok, ["x"], 2, engine="vllm")


@pytest.mark.slow
def test_reference_model_scores_identical_across_engines(tmp_path):
    """The shipped model really retrieves at 512 tokens, so early stopping is exercised."""
    from ropebench.model.load import load_model

    model, tokenizer = load_model("reference")
    runs = {}
    for name, (engine, options) in {
        "hf": ("hf", {"stop_when_settled": False}),
        "fast": ("fast", {"stop_when_settled": False}),
        "early": ("fast", {"stop_when_settled": True}),
    }.items():
        frame = run_evaluation(HFBackend(model, tokenizer, options=HFOptions(engine=engine)),
            method="none",
            tasks=["niah_single_1", "passkey"],
            lengths=[512],
            samples=6,
            seed=5,
            out_dir=tmp_path / name,
            progress=False,
            options=options,
        )
        runs[name] = frame.sort_values(["task", "index"]).reset_index(drop=True)
    hf, fast, early = runs["hf"], runs["fast"], runs["early"]
    assert hf["score"].sum() > 0  # the check means something only if some rows retrieve
    assert (hf["prediction"] == fast["prediction"]).all()
    assert (hf["score"] == early["score"]).all()
    for full, short in zip(fast["prediction"], early["prediction"], strict=True):
        assert full.startswith(short)
    assert (
        torch.tensor(early["prediction"].str.len().values).sum()
        < torch.tensor(fast["prediction"].str.len().values).sum()
    )
