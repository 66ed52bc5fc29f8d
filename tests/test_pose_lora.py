"""The cheaper training arms: PoSE position ids and LoRA adapters (a few steps on a micro model)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main
from ropebench.errors import RopebenchError
from ropebench.methods import get_extender
from ropebench.methods.yarn import YarnExtender
from ropebench.model.patch import spec_of
from ropebench.settings import parse_settings
from ropebench.training import pose
from ropebench.training.lora import LoraSettings, attach_lora, merge_lora
from ropebench.training.trainer import TrainSettings, check_arms, train_model

WINDOW, POSE_WINDOW, TARGET = 32, 48, 128

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def corpus(tmp_path):
    import pydoc_data.topics

    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, text in enumerate(list(pydoc_data.topics.topics.values())[:12]):
        (folder / f"{i:02d}.txt").write_text(text[:1500])
    return folder


def _settings(corpus, **changes) -> TrainSettings:
    values = {"steps": 3, "lr": 1e-2, "warmup_steps": 0, "batch_size": 2, "data": str(corpus),
              "save_every": 0, **changes}
    return parse_settings(TrainSettings, values, where="train")


class _Highest(random.Random):
    """An rng whose every skip is the largest allowed: the far end of PoSE's range."""

    def randint(self, a: int, b: int) -> int:
        return b


@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_pose_positions_keep_the_row_and_reach_the_target(chunks):
    ends = []
    for seed in range(300):
        positions = pose.pose_positions(POSE_WINDOW, TARGET, chunks, random.Random(seed))
        steps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
        assert len(positions) == POSE_WINDOW and positions[0] == 0
        assert all(step >= 1 for step in steps) and sum(step > 1 for step in steps) < chunks
        assert positions[-1] <= TARGET - 1
        ends.append(positions[-1])
    highest = pose.pose_positions(POSE_WINDOW, TARGET, chunks, _Highest(0))
    if chunks == 1:  # one piece has no skip: PoSE's first piece always starts at 0
        assert set(ends) == {POSE_WINDOW - 1} and highest == list(range(POSE_WINDOW))
    else:
        assert highest[-1] == TARGET - 1
        # The last position is spread over the whole range, not stuck at the window.
        assert min(ends) < POSE_WINDOW + 16 and max(ends) > TARGET - 16


def _record_positions(model) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True)
    return seen


def test_a_pose_run_trains_at_the_window_with_positions_up_to_the_target(corpus, tmp_path):
    model = tiny_llama(window=WINDOW, layers=1)
    scaling = get_extender("yarn").rescale(spec_of(model), TARGET)
    seen = _record_positions(model)
    settings = _settings(corpus, steps=8, positions="pose", pose_window=POSE_WINDOW)
    result = train_model(model, tiny_tokenizer(), scaling, settings, out_dir=tmp_path / "out")
    positions = torch.cat(seen)  # (steps * batch, POSE_WINDOW)
    assert positions.shape == (16, POSE_WINDOW)
    assert (positions.diff(dim=1) >= 1).all() and (positions[:, 0] == 0).all()
    assert positions.max() <= TARGET - 1 and positions.max() > 2 * POSE_WINDOW
    # The cost: W-token rows (the first token of each row is no target).
    assert result.tokens == 16 * (POSE_WINDOW - 1)


def test_pose_without_skips_equals_plain_training(corpus, tmp_path, monkeypatch):
    """With every skip 0 a PoSE row is a plain W-token row: the same losses, step for step."""
    tok = tiny_tokenizer()
    model = tiny_llama(window=WINDOW, layers=1)
    scaling = get_extender("yarn").rescale(spec_of(model), TARGET)
    plain = train_model(model, tok, dataclasses.replace(scaling, target_length=POSE_WINDOW),
                        _settings(corpus), out_dir=tmp_path / "plain")
    monkeypatch.setattr(pose, "sample_skips", lambda room, chunks, rng: [0] * chunks)
    model = tiny_llama(window=WINDOW, layers=1)
    posed = train_model(model, tok, scaling,
                        _settings(corpus, positions="pose", pose_window=POSE_WINDOW),
                        out_dir=tmp_path / "pose")
    assert [step for step, _ in posed.losses] == [1, 2, 3]
    assert [loss for _, loss in posed.losses] == pytest.approx([loss for _, loss in plain.losses],
                                                               rel=1e-6)
    assert posed.tokens == plain.tokens


@pytest.mark.parametrize("train_norms", [False, True])
def test_lora_changes_only_the_targeted_parameters(corpus, tmp_path, train_norms):
    model = tiny_llama(window=WINDOW, layers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scaling = get_extender("yarn").rescale(spec_of(model), TARGET)
    lora = {"r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"], "train_norms": train_norms}
    result = train_model(model, tiny_tokenizer(), scaling, _settings(corpus, lora=lora),
                         out_dir=tmp_path / "out")
    after = model.state_dict()
    assert set(after) == set(before)  # merged: no adapter weights left
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    targeted = {k for k in before if k.endswith(("q_proj.weight", "v_proj.weight"))}
    norms = {k for k in before if "norm" in k} if train_norms else set()
    assert changed == targeted | norms
    # Adapters: r * (in + out) for each of 2 targets in 2 layers, plus the norms' weights.
    hidden = model.config.hidden_size
    expected = 2 * 2 * 4 * (hidden + hidden) + sum(before[k].numel() for k in norms)
    assert result.trainable_parameters == expected
    record = json.loads((tmp_path / "out" / "train_result.json").read_text())
    assert record["trainable_parameters"] == expected


def test_full_fine_tuning_counts_every_parameter(corpus, tmp_path):
    model = tiny_llama(window=WINDOW, layers=1)
    scaling = get_extender("yarn").rescale(spec_of(model), TARGET)
    result = train_model(model, tiny_tokenizer(), scaling, _settings(corpus, steps=1),
                         out_dir=tmp_path / "out")
    assert result.trainable_parameters == sum(p.numel() for p in model.parameters())


def test_merged_export_equals_the_adapter_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from ropebench.model.export import save_extended
    from ropebench.model.patch import apply_scaling

    model = tiny_llama(window=WINDOW, layers=2)
    scaling = get_extender("yarn").rescale(spec_of(model), TARGET)
    apply_scaling(model, scaling)
    adapted = attach_lora(model, LoraSettings(r=4, alpha=8, train_embeddings=True))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:  # B starts at 0: give the adapters an effect
                parameter.normal_(std=0.05)
    ids = torch.randint(3, 384, (1, TARGET - 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = adapted(input_ids=ids).logits
        unadapted = adapted.get_base_model()
        with adapted.disable_adapter():
            plain = unadapted(ids).logits
    assert (want - plain).abs().max() > 1e-3
    save_extended(merge_lora(adapted), tiny_tokenizer(), scaling, tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    assert not any("lora" in key for key in loaded.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, want, rtol=0, atol=1e-5)


class _InferenceOnly(YarnExtender):
    name = "inference-only"
    trainable = False


def test_check_arms_refuses_what_cannot_train():
    spec_window = WINDOW
    pose_on = parse_settings(TrainSettings, {"positions": "pose"}, where="train")
    with pytest.raises(RopebenchError, match="cannot be trained"):
        check_arms(pose_on, _InferenceOnly(), spec_window, TARGET)
    with pytest.raises(RopebenchError, match="mixed"):
        check_arms(pose_on, get_extender("longrope2"), spec_window, TARGET)
    check_arms(pose_on, get_extender("longrope2", {"mixed": False}), spec_window, TARGET)
    for method in ("none", "pi", "ntk", "dynamic-ntk", "yarn", "llama3", "longrope"):
        check_arms(pose_on, get_extender(method), spec_window, TARGET)


@pytest.fixture(scope="module")
def config_only(tmp_path_factory):
    """A model folder without weights: a refusal from it proves nothing loaded."""
    folder = tmp_path_factory.mktemp("config-only")
    tiny_llama(window=WINDOW).config.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("sets, message", [
    (["train.lora={r: 0}"], "train.lora.r=0 is below its minimum 1"),
    (["train.positions=pose", f"train.pose_window={TARGET}"], "is not below the target"),
    (["train.positions=pose", "train.pose_window=8", "train.pose_chunks=9"], "fewer chunks"),
    (["train.positions=posed"], "did you mean pose"),
    (["train.lora={r: 4, targets: []}"], "targets is empty"),
])
def test_bad_arm_settings_end_in_one_line(config_only, tmp_path, capsys, sets, message):
    argv = ["train", str(config_only), "--method", "yarn", "--target-length", str(TARGET),
            "--out", str(tmp_path / "out")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_pose_on_the_mixed_layout_is_refused_before_loading(config_only, tmp_path, capsys):
    argv = ["train", str(config_only), "--method", "longrope2", "--target-length", str(TARGET),
            "--out", str(tmp_path / "out"), "--set", "train.positions=pose"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "params.mixed=false" in err and len(err.splitlines()) == 1


def test_a_plan_with_a_bad_arm_is_refused_before_it_runs(config_only, tmp_path, capsys):
    import yaml

    plan = {"model": str(config_only), "target_length": TARGET,
            "train": {"steps": 1, "positions": "pose", "pose_window": TARGET},
            "methods": ["yarn"], "evaluate": {"tasks": ["passkey"], "lengths": [64]}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    assert main(["compare", str(path), "--out", str(tmp_path / "run"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "methods[1] (yarn): train: train.pose_window=128 is not below" in err
    assert len(err.splitlines()) == 1
