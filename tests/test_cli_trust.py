"""CLI behaviours that must not hide anything: rope-info on an extended model, extend without a
tokenizer, lengths that cannot fit, and a plan that runs cleanly after its dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    tiny_llama(window=32).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def test_rope_info_shows_the_scaling_of_an_extended_model(model_dir, tmp_path, capsys):
    out = tmp_path / "yarn"
    assert main(["extend", str(model_dir), "--method", "yarn", "--target-length", "128",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["rope-info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "configured        yarn: rope_type yarn" in text
    assert "max_position_embeddings 128" in text and "(pretrained)" in text
    assert main(["rope-info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["configured"]["rope_parameters"]["rope_type"] == "yarn"
    assert main(["rope-info", str(model_dir), "--json"]) == 0
    assert "configured" not in json.loads(capsys.readouterr().out)


def test_rope_info_shows_an_ntk_base_change(model_dir, tmp_path, capsys):
    out = tmp_path / "ntk"
    assert main(["extend", str(model_dir), "--method", "ntk", "--target-length", "128",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["rope-info", str(out)]) == 0
    assert "configured        ntk: rope_type default, rope_theta" in capsys.readouterr().out


def test_extend_a_weights_only_folder(tmp_path, capsys):
    weights = tmp_path / "weights"
    tiny_llama(window=32).save_pretrained(weights)  # no tokenizer files
    out = tmp_path / "out"
    assert main(["extend", str(weights), "--method", "pi", "--target-length", "64",
                 "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "config.json").is_file() and not (out / "tokenizer.json").exists()


@pytest.mark.parametrize("errno_name, words", [("ENOSPC", "No space left on device"),
                                               ("EROFS", "Read-only file system"),
                                               ("EACCES", "Permission denied")])
def test_output_failures_are_one_line(model_dir, tmp_path, capsys, monkeypatch, errno_name, words):
    import errno
    import os

    from ropebench.io import JsonlWriter

    def failing(self, record):
        code = getattr(errno, errno_name)
        raise OSError(code, os.strerror(code), str(self.path))

    monkeypatch.setattr(JsonlWriter, "write", failing)
    code = main(["eval", str(model_dir), "--tasks", "passkey", "--lengths", "256", "--samples", "1",
                 "--set", "tasks.max_new_tokens=2", "--out", str(tmp_path / "out"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.strip() and "it/s]" not in line]
    assert code == 2 and len(err) == 1, err
    assert words in err[0] and "rows.jsonl" in err[0] and "Traceback" not in err[0]


def test_an_unreachable_hub_id_fails_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    code = main(["eval", "no-such-owner/no-such-model", "--tasks", "passkey", "--out", "o"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not in the local cache" in err
    assert list(tmp_path.iterdir()) == []
