"""`ropebench search` and `ropebench train` end to end on a saved micro model (real fitness)."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main
from ropebench.methods import load_scaling
from ropebench.model.patch import spec_of

WINDOW, TARGET = 128, 512


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("micro")
    tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_search_writes_loadable_factors_and_resumes(model_dir, tmp_path, capsys):
    out = tmp_path / "factors.json"
    argv = ["search", str(model_dir), "--method", "longrope2", "--target-length", str(TARGET),
            "--set", "search.population=4", "--set", "search.iterations=1",
            "--set", "search.documents=1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "search longrope2" not in printed.err  # --no-progress hides the bar
    data = json.loads(out.read_text())
    # PI, NTK and YaRN scored on the same documents, printed and kept beside the result.
    assert list(data["baseline_fitness"]) == ["pi", "ntk", "yarn"]
    assert all(v > 0 for v in data["baseline_fitness"].values())
    assert f"yarn {data['baseline_fitness']['yarn']:.4f}" in printed.out
    for key in ("long_factor", "short_factor", "critical_index", "fitness_history", "settings"):
        assert key in data
    assert data["settings"]["fitness"] == "needle_ppl" and data["evaluations"] == 10  # 2 x 4 + 1 x (1 + 1)
    assert (data["settings"]["parents"], data["settings"]["mutations"]) == (2, 1)  # paper ratios
    assert len(data["fitness_history"]) == 2
    spec = spec_of(tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2))
    scaling = load_scaling(out, spec, TARGET)
    assert scaling.long_factor == tuple(data["long_factor"])
    # The checkpoint is complete: re-running evaluates nothing and writes the same factors.
    checkpoint = tmp_path / "factors.json.checkpoint.json"
    before = checkpoint.read_text()
    assert main(argv) == 0
    assert json.loads(out.read_text())["long_factor"] == data["long_factor"]
    assert json.loads(checkpoint.read_text())["state"]["cache"] == json.loads(before)["state"]["cache"]


def test_search_rejects_a_target_inside_the_window(model_dir, tmp_path, capsys):
    argv = ["search", str(model_dir), "--method", "longrope2", "--target-length", "64",
            "--out", str(tmp_path / "f.json"), "--no-progress"]
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_train_command_with_searched_factors(model_dir, tmp_path):
    import pydoc_data.topics

    data = tmp_path / "data.jsonl"
    texts = list(pydoc_data.topics.topics.values())[:8]
    data.write_text("".join(json.dumps({"text": t[:900]}) + "\n" for t in texts))
    factors = tmp_path / "f.json"
    spec = spec_of(tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=2))
    from ropebench.methods import get_extender

    get_extender("longrope2").rescale(spec, TARGET).save(factors)
    out = tmp_path / "trained"
    argv = ["train", str(model_dir), "--method", "longrope2", "--target-length", str(TARGET),
            "--factors", str(factors), "--set", f"train.data={data}", "--set", "train.steps=2",
            "--set", "train.warmup_steps=1", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "config.json").is_file() and (out / "train_log.jsonl").is_file()
    record = json.loads((out / "train_result.json").read_text())
    assert record["mixed"] is True and record["settings"]["steps"] == 2
