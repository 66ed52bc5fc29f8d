"""Save a patched model as a plain HF directory that vanilla transformers loads as is."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ropebench.errors import RopebenchError
from ropebench.extenders.base import RopeScaling
from ropebench.extenders.patch import apply_scaling

SCALING_FILE = "ropebench_scaling.json"


def save_extended(model, tokenizer, scaling: RopeScaling, out_dir: str | Path) -> Path:
    """Apply `scaling` (if not already) and write weights, config, tokenizer and the scaling.

    The config carries the scaling as transformers 5 `rope_parameters` (pi -> linear,
    ntk -> rope_theta, dynamic-ntk -> dynamic, yarn/ntk-by-parts -> yarn, llama3 -> llama3,
    longrope/longrope2 -> longrope), so loading it needs no ropebench. `ropebench_scaling.json`
    keeps the full provenance (method, factors, search history). The directory is written next
    to `out_dir` and renamed into place, so an interrupted save leaves no half model.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not _replaceable(out_dir):
        raise RopebenchError(
            f"{out_dir} exists and is not a ropebench export; choose a new or empty --out directory"
        )
    apply_scaling(model, scaling)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / SCALING_FILE).write_text(json.dumps(scaling.to_dict(), indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _replaceable(path: Path) -> bool:
    """An empty directory or an earlier export may be overwritten; anything else is kept."""
    return path.is_dir() and (not any(path.iterdir()) or (path / SCALING_FILE).is_file())
