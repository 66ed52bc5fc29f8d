"""Claiming an output folder before anything is written to it (or any weights load).

An --out folder is ropebench's only if ropebench made it: it holds the lock file every writer
creates (`io.LOCK_FILE`). A folder that holds other files is the user's; writing there could
replace their `summary.csv` or `plan.json`, so it is refused, or with --force those files are
moved aside into a dated folder inside it (never deleted). A folder with a symbolic link
anywhere inside is refused (a link would carry a write outside), and so is an --out that is,
holds or lies inside the model folder being read (`train MODEL --out MODEL`).

Big files (a model's weights) are staged inside --out, in `.ropebench-staging-*` folders that the
next writer of the folder removes when a kill left one behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

from ropebench.errors import RopebenchError
from ropebench.io import LOCK_FILE, make_folder

STAGING_PREFIX = ".ropebench-staging-"
SET_ASIDE_PREFIX = "set-aside-"


def claim_output(out: str | Path, *, force: bool = False, model: str | Path | None = None,
                 what: str = "--out", dry_run: bool = False) -> None:
    """Refuse (one line) an output folder ropebench must not write to; with `force`, move the
    files ropebench did not write into `out/set-aside-<time>/` (unless `dry_run`)."""
    out = Path(out)
    if model is not None:
        check_not_model(out, model, what)
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise RopebenchError(f"{what} {out} is a file; give a folder")
    link = first_link(out)
    if link is not None:
        raise RopebenchError(
            f"{what} {out} holds a symbolic link ({link}); ropebench never writes through links: "
            f"remove it, or choose another {what}")
    entries = sorted(os.listdir(out))
    if not entries or is_ropebench_folder(out):
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    if not force:
        raise RopebenchError(
            f"{what} {out} holds files ropebench did not write ({shown}); choose a new or empty "
            f"folder, or add --force to move them into {out}/{SET_ASIDE_PREFIX}<time>/")
    if dry_run:
        print(f"--force: {shown} would be moved into {out}/{SET_ASIDE_PREFIX}<time>/",
              file=sys.stderr)
        return
    aside = out / f"{SET_ASIDE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir()
    for name in entries:
        os.replace(out / name, aside / name)  # a rename: never follows a link, never copies
    print(f"--force: moved {shown} into {aside}", file=sys.stderr)


# A regular file of one of these names marks a folder ropebench wrote: the lock every writer
# takes, or the provenance file of a model `extend` saved before extend took a lock.
MARKERS = (LOCK_FILE, "ropebench_scaling.json")


def is_ropebench_folder(folder: Path) -> bool:
    """Whether ropebench wrote this folder (one of its MARKERS is there, as a regular file)."""
    for name in MARKERS:
        try:
            if stat.S_ISREG(Path(folder, name).lstat().st_mode):
                return True
        except OSError:
            continue
    return False


def first_link(folder: Path) -> Path | None:
    """The first symbolic link anywhere below `folder` (links to folders are not entered)."""
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(root, name)
            if path.is_symlink():
                return path
    return None


def check_not_model(out: Path, model: str | Path, what: str = "--out") -> None:
    """Refuse an output path that is, holds or lies inside the (local) model folder."""
    model_path = Path(model).expanduser()
    if not model_path.is_dir():
        return  # a hub id: nothing local to protect
    real_out, real_model = Path(os.path.realpath(out)), Path(os.path.realpath(model_path))
    if real_out == real_model or real_model in real_out.parents:
        raise RopebenchError(
            f"{what} {out} is the model folder {model} or inside it; ropebench never writes "
            f"into the model it reads: choose a {what} outside it")
    if real_out in real_model.parents:
        raise RopebenchError(
            f"{what} {out} holds the model folder {model}; give the output a folder of its own")


def staging_folder(out: Path) -> Path:
    """A fresh folder inside `out` to build big files in, after removing what a killed run left.
    Call it while holding `out`'s lock: no other writer can be using an older one."""
    make_folder(out)
    for old in Path(out).glob(f"{STAGING_PREFIX}*"):
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
