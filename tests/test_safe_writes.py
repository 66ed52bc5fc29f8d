"""Writes stay inside --out and never replace the user's files: no write through a symbolic link,
no output over files ropebench did not write (unless --force moves them aside), never into the
model being read, one writer per folder, big files staged inside --out, the user's umask kept,
and a full disk ends in one line with a state the next run resumes from."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

from ropebench import io as rio
from ropebench.cli.main import main
from ropebench.errors import RopebenchError


@pytest.fixture(scope="module")
def model_dir(model_dir32) -> Path:
    return model_dir32


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line
             and "%|" not in line]
    return code, lines


def _refused(argv, capsys, phrase: str) -> str:
    code, lines = _cli(argv, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("ropebench ") and phrase.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _eval(model: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", str(model), "--tasks", "ppl", "--lengths", "64", "--samples", "1",
            "--out", str(out), "--no-progress", "--method", "pi", "--target-length", "128",
            *extra]


def _listing(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file below `folder`: content, mtime (ns) and mode."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            found[str(path.relative_to(folder))] = (path.read_bytes(), st.st_mtime_ns, st.st_mode)
    return found


# --- links inside --out ------------------------------------------------------------------------

LINKED = (".ropebench.lock", "rows.jsonl", "rows.replaced.jsonl", "summary.csv",
          "fingerprints.json", "plan.json", "manifest.json", "runlog.jsonl", "train_log.jsonl",
          "config.json", "model.safetensors")


def _out_with_links(tmp_path: Path, outside: Path) -> Path:
    """An --out that ropebench wrote before, in which every output name and a `tables` and
    `stages` folder are links to files and a folder outside it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".keep").write_text("")  # not empty: the links are what is checked
    for name in LINKED:
        target = outside / f"target-{name.strip('.')}"
        target.write_text(f"the user's {name}\n")
        os.symlink(target, out / name)
    (outside / "folder").mkdir()
    (outside / "folder" / "notes.csv").write_text("keep me\n")
    os.symlink(outside / "folder", out / "tables")
    os.symlink(outside / "folder", out / "stages")
    return out


def test_no_command_writes_through_links_in_out(model_dir, tmp_path, capsys):
    """The issue's check: nothing outside --out changes when --out holds links to outside
    files, whichever command writes there (a listing of the targets before and after)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    out = _out_with_links(tmp_path, outside)
    before = _listing(outside)
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"model": str(model_dir), "target_length": 128, "methods": ["pi"],
                                "evaluate": {"tasks": ["ppl"], "lengths": [64],
                                             "samples": 1}}))
    commands = [
        _eval(model_dir, out),
        _eval(model_dir, out, "--force"),  # --force moves foreign files, never links
        ["train", model_dir, "--method", "pi", "--target-length", "128", "--out", out,
         "--set", "train.steps=1"],
        ["extend", model_dir, "--method", "pi", "--target-length", "128", "--out", out],
        ["compare", plan, "--out", out, "--quiet"],
        ["compare", plan, "--out", out, "--quiet", "--dry-run"],
        ["search", model_dir, "--method", "longrope2", "--target-length", "128",
         "--out", out / "plan.json"],
    ]
    for argv in commands:
        _refused(argv, capsys, "symbolic link")
    assert _listing(outside) == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*LINKED, ".keep", "tables", "stages"])


def test_writers_refuse_links_below_a_locked_folder(tmp_path):
    """Links made while a run holds its folder are refused by the writers themselves."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target.txt"
    target.write_text("mine\n")
    out = tmp_path / "out"
    out.mkdir()
    before = _listing(outside)
    with rio.FolderLock(out):
        os.symlink(target, out / "rows.jsonl")
        os.symlink(outside, out / "tables")
        with pytest.raises(RopebenchError, match="symbolic link"):
            rio.JsonlWriter(out / "rows.jsonl").write({"a": 1})
        with pytest.raises(RopebenchError, match="symbolic link"):
            rio.write_text_atomic(out / "rows.jsonl", "x\n")
        with pytest.raises(RopebenchError, match="symbolic link"):
            rio.write_text_atomic(out / "tables" / "ruler.csv", "x\n")
        with pytest.raises(RopebenchError, match="symbolic link"):
            rio.make_folder(out / "tables" / "deeper")
    assert _listing(outside) == before
    assert not (outside / "ruler.csv").exists() and not (outside / "deeper").exists()


def test_a_linked_lock_file_is_never_truncated(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate\n")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(target, out / rio.LOCK_FILE)
    with pytest.raises(RopebenchError, match="symbolic link"):
        with rio.FolderLock(out):
            pass
    assert target.read_text() == "do not truncate\n"


def test_out_itself_may_be_a_link(tmp_path):
    """The user chose --out; only links *inside* it are refused."""
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "via-link")
    with rio.FolderLock(tmp_path / "via-link"):
        rio.JsonlWriter(tmp_path / "via-link" / "rows.jsonl").write({"a": 1})
        rio.write_text_atomic(tmp_path / "via-link" / "tables" / "x.csv", "x\n")
    assert (real / "rows.jsonl").read_text() == '{"a": 1}\n'
    assert (real / "tables" / "x.csv").read_text() == "x\n"


def test_report_refuses_a_manifest_path_out_of_the_run(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere" / "eval"
    elsewhere.mkdir(parents=True)
    (elsewhere / "rows.jsonl").write_text(json.dumps(
        {"task": "passkey", "length": 64, "method": "pi", "score": 1.0, "index": 0}) + "\n")
    for path in ("../elsewhere/eval", str(elsewhere)):
        run = tmp_path / f"run-{len(path)}"
        run.mkdir()
        stage = {"path": path, "key": "k", "done": True}
        (run / "manifest.json").write_text(json.dumps({
            "methods": [{"label": "pi", "method": "pi", "scaling": stage, "train": None,
                         "evals": {"passkey": stage}}], "target_length": 128}))
        _refused(["report", run], capsys, "outside the run folder")
        assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]


def test_report_never_writes_through_a_tables_link(model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code, lines = _cli(["compare", "--model", model_dir, "--target-length", "128", "--methods",
                        "pi", "--tasks", "ppl", "--lengths", "64", "--samples", "1",
                        "--out", run, "--quiet"], capsys)
    assert code == 0, lines
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "summary.md").write_text("mine\n")
    os.symlink(outside, run / "tables")
    before = _listing(outside)
    _refused(["report", run], capsys, "symbolic link")
    assert _listing(outside) == before
    os.unlink(run / "tables")
    code, lines = _cli(["report", run], capsys)
    assert code == 0 and (run / "tables").is_dir() and (run / "report.html").is_file(), lines


# --- the user's files --------------------------------------------------------------------------


def test_eval_refuses_an_out_with_the_users_files_and_force_moves_them_aside(
        model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("my own numbers\n")
    (out / "notes").mkdir()
    (out / "notes" / "a.txt").write_text("a\n")
    _refused(_eval(model_dir, out), capsys, "did not write")
    assert (out / "summary.csv").read_text() == "my own numbers\n"
    assert sorted(p.name for p in out.iterdir()) == ["notes", "summary.csv"]

    code, lines = _cli(_eval(model_dir, out, "--force"), capsys)
    assert code == 0, lines
    aside = [p for p in out.iterdir() if p.name.startswith("set-aside-")]
    assert len(aside) == 1
    assert (aside[0] / "summary.csv").read_text() == "my own numbers\n"
    assert (aside[0] / "notes" / "a.txt").read_text() == "a\n"
    assert (out / "rows.jsonl").is_file() and (out / "summary.csv").read_text() != "my own numbers\n"
    # Now the folder is ropebench's: a re-run needs no --force and moves nothing.
    code, lines = _cli(_eval(model_dir, out), capsys)
    assert code == 0, lines
    assert len([p for p in out.iterdir() if p.name.startswith("set-aside-")]) == 1


def test_compare_refuses_a_run_dir_with_the_users_plan_json(model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "plan.json").write_text('{"mine": true}\n')
    argv = ["compare", "--model", model_dir, "--target-length", "128", "--methods", "pi",
            "--tasks", "ppl", "--lengths", "64", "--samples", "1", "--out", out, "--quiet"]
    _refused(argv + ["--dry-run"], capsys, "did not write")
    _refused(argv, capsys, "did not write")
    assert (out / "plan.json").read_text() == '{"mine": true}\n'
    assert [p.name for p in out.iterdir()] == ["plan.json"]


@pytest.mark.parametrize("inside", ["", "sub", "sub/deeper"])
def test_no_command_writes_into_the_model_it_reads(model_dir, tmp_path, capsys, inside):
    before = _listing(model_dir)
    out = model_dir / inside if inside else model_dir
    for argv in (["train", model_dir, "--method", "pi", "--target-length", "128", "--out", out,
                  "--set", "train.steps=1"],
                 ["extend", model_dir, "--method", "pi", "--target-length", "128", "--out", out],
                 _eval(model_dir, out),
                 ["search", model_dir, "--method", "longrope2", "--target-length", "128",
                  "--out", out / "f.json"]):
        _refused(argv, capsys, "model folder")
    assert _listing(model_dir) == before
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        p.split("/")[0] for p in before)


def test_an_out_that_holds_the_model_is_refused(model_dir, tmp_path, capsys):
    _refused(["extend", model_dir, "--method", "pi", "--target-length", "128",
              "--out", model_dir.parent], capsys, "holds the model folder")


# --- one writer, staging inside --out, modes -----------------------------------------------------


def test_extend_takes_the_folder_lock(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / rio.LOCK_FILE, os.O_RDWR | os.O_CREAT)  # another process's lock
    os.pwrite(fd, b"4242", 0)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        _refused(["extend", model_dir, "--method", "pi", "--target-length", "128", "--out", out],
                 capsys, "another ropebench process")
    finally:
        os.close(fd)
    assert sorted(p.name for p in out.iterdir()) == [rio.LOCK_FILE]


def test_extend_stages_inside_out_and_cleans_a_killed_runs_leftovers(model_dir, tmp_path, capsys):
    out = tmp_path / "parent" / "out"
    out.mkdir(parents=True)
    (out / rio.LOCK_FILE).write_text("")
    killed = out / ".ropebench-staging-killed"  # what `kill -9` mid-save leaves
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"\0" * 1024)
    code, lines = _cli(["extend", model_dir, "--method", "pi", "--target-length", "128",
                        "--out", out], capsys)
    assert code == 0, lines
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no hidden sibling
    assert not [p for p in out.iterdir() if p.name.startswith(".ropebench-staging")]
    assert (out / "model.safetensors").is_file() and (out / "ropebench_scaling.json").is_file()


def test_atomic_writes_keep_the_users_umask(tmp_path, monkeypatch):
    monkeypatch.setattr(rio, "_UMASK", [])
    old = os.umask(0o027)
    try:
        rio.write_text_atomic(tmp_path / "a.json", "{}")
        rio.JsonlWriter(tmp_path / "b.jsonl").write({})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b.jsonl").stat().st_mode) == 0o640


def test_extend_outputs_are_readable_like_any_new_file(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, lines = _cli(["extend", model_dir, "--method", "pi", "--target-length", "128",
                        "--out", out], capsys)
    assert code == 0, lines
    expected = 0o666 & ~rio.user_umask()
    for name in ("ropebench_scaling.json", "config.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == expected, name


# --- a full disk --------------------------------------------------------------------------------


def _full_disk_after(monkeypatch, calls: int) -> None:
    """`io.sync` (every atomic write goes through it) fails with ENOSPC from call `calls` on."""
    seen = iter(range(10**6))
    real = rio.sync

    def sync(fd: int) -> None:
        if next(seen) >= calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(rio, "sync", sync)


def test_a_full_disk_during_extend_is_one_line_and_the_next_run_finishes(
        model_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["extend", model_dir, "--method", "pi", "--target-length", "128", "--out", out]
    _full_disk_after(monkeypatch, 0)
    _refused(argv, capsys, "free some space")
    assert not (out / "config.json").exists()  # nothing half-saved in place
    assert not [p for p in out.iterdir() if p.name.startswith(".ropebench-staging")]
    monkeypatch.undo()
    code, lines = _cli(argv, capsys)
    assert code == 0, lines
    assert json.loads((out / "ropebench_scaling.json").read_text())["method"] == "pi"


def test_a_full_disk_during_compare_resumes(model_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["compare", "--model", model_dir, "--target-length", "128", "--methods", "pi",
            "--tasks", "ppl", "--lengths", "64", "--samples", "2", "--out", out, "--quiet"]
    _full_disk_after(monkeypatch, 6)  # plan, manifest and a few stage files get written
    _refused(argv, capsys, "free some space")
    monkeypatch.undo()
    code, lines = _cli(argv, capsys)
    assert code == 0, lines
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(stage["done"] for m in manifest["methods"] for stage in m["evals"].values())


def test_a_full_disk_during_train_resumes_from_the_checkpoint(
        model_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "trained"
    argv = ["train", model_dir, "--method", "pi", "--target-length", "128", "--out", out,
            "--set", "train.steps=2", "--set", "train.save_every=1", "--set",
            "train.batch_size=1", "--set", "train.data=reference", "--set", "train.warmup_steps=0"]
    import ropebench.model.export as export

    def save_extended(*args, **kwargs):  # the disk fills up while the trained model is saved
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export, "save_extended", save_extended)
    _refused(argv, capsys, "free some space")
    assert (out / "checkpoint" / "progress.json").is_file()
    monkeypatch.undo()
    code, lines = _cli(argv, capsys)
    assert code == 0, lines
    assert (out / "model.safetensors").is_file() and not (out / "checkpoint").exists()
