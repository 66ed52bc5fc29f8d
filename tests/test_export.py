"""Export round trip: a saved extended model loads in vanilla transformers with identical logits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import tiny_llama, tiny_tokenizer

from ropebench.errors import RopebenchError
from ropebench.methods import get_extender, load_scaling
from ropebench.model.export import SCALING_FILE, save_extended
from ropebench.model.patch import spec_of

# (model type, method, HF rope_type in the saved config)
CASES = [
    ("llama", "none", "default"),
    ("llama", "pi", "linear"),
    ("llama", "ntk", "default"),
    ("llama", "dynamic-ntk", "dynamic"),
    ("llama", "yarn", "yarn"),
    ("llama", "ntk-by-parts", "yarn"),
    ("llama", "llama3", "llama3"),
    ("llama", "longrope", "longrope"),
    ("llama", "longrope2", "longrope"),
    ("qwen2", "longrope2", "longrope"),
    ("phi3", "yarn", "longrope"),
    ("phi3", "longrope2", "longrope"),
]

# Runs in a fresh interpreter where importing ropebench is impossible.
VANILLA_CHECK = textwrap.dedent(
    """
    import json, sys
    sys.modules["ropebench"] = None  # any `import ropebench...` now raises ImportError
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = {}
    for directory in sys.argv[1:]:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        AutoTokenizer.from_pretrained(directory)
        ids = torch.load(directory + "/ids.pt")
        with torch.no_grad():
            logits = model(ids).logits
        expected = torch.load(directory + "/logits.pt")
        report[directory] = {
            "max_diff": (logits - expected).abs().max().item(),
            "rope_type": model.config.rope_parameters["rope_type"],
            "inv_freq_dtype": str(model.model.rotary_emb.inv_freq.dtype),
        }
    print(json.dumps(report))
    """
)


def test_export_round_trip_through_vanilla_transformers(tmp_path):
    tokenizer = tiny_tokenizer()
    dirs = {}
    for model_type, method, _ in CASES:
        model = tiny_llama(model_type=model_type, window=32)
        scaling = get_extender(method).rescale(spec_of(model), 128)
        out = save_extended(model, tokenizer, scaling, tmp_path / f"{model_type}-{method}")
        # 100 tokens: past the window, so long factors and the grown dynamic base are exercised.
        ids = torch.randint(3, 300, (2, 100))
        with torch.no_grad():
            torch.save(model(ids).logits, out / "logits.pt")
        torch.save(ids, out / "ids.pt")
        dirs[str(out)] = (model_type, method)

    result = subprocess.run(
        [sys.executable, "-c", VANILLA_CHECK, *dirs],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for directory, (model_type, method) in dirs.items():
        expected_type = next(t for mt, m, t in CASES if (mt, m) == (model_type, method))
        entry = report[directory]
        assert entry["max_diff"] <= 1e-5, (model_type, method, entry)
        assert entry["rope_type"] == expected_type
        assert entry["inv_freq_dtype"] == "torch.float32"


def test_export_writes_the_scaling_and_keeps_other_files(tmp_path):
    model = tiny_llama(window=32)
    scaling = get_extender("longrope2").rescale(spec_of(model), 128)
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_log.jsonl").write_text("{}\n")
    save_extended(model, None, scaling, out)
    assert (out / "train_log.jsonl").is_file()
    assert load_scaling(out / SCALING_FILE, spec_of(model)) == scaling
    config = json.loads((out / "config.json").read_text())
    assert config["max_position_embeddings"] == 128
    assert config["rope_parameters"]["original_max_position_embeddings"] == 32
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_export_refuses_a_file_as_out(tmp_path):
    model = tiny_llama(window=32)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RopebenchError, match="is a file"):
        save_extended(
            model, None, get_extender("pi").rescale(spec_of(model), 64), tmp_path / "file"
        )
