"""Save a patched model as a plain HF directory that vanilla transformers loads as is."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ropebench.errors import RopebenchError
from ropebench.model.patch import apply_scaling
from ropebench.rope.attention import engine_refusal
from ropebench.rope.scaling import RopeScaling

SCALING_FILE = "ropebench_scaling.json"


def save_extended(model, tokenizer, scaling: RopeScaling, out_dir: str | Path) -> Path:
    """Apply `scaling` (if not already) and write weights, config, tokenizer and the scaling.

    The config carries the scaling as transformers 5 `rope_parameters` (pi -> linear,
    ntk -> rope_theta, dynamic-ntk -> dynamic, yarn/ntk-by-parts -> yarn, llama3 -> llama3,
    longrope/longrope2 -> longrope), so loading it needs no ropebench. `ropebench_scaling.json`
    keeps the full provenance (method, factors, search history). Files are written to a sibling
    temporary directory and moved in one by one, so an interrupted save never leaves a truncated
    file; other files already in `out_dir` (training logs) are kept.
    """
    if scaling.extra.get("attention"):  # no config field expresses an attention method
        raise RopebenchError(engine_refusal(scaling.extra["attention"], "vanilla transformers"))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RopebenchError(f"{out_dir} is a file; choose a directory for --out")
    apply_scaling(model, scaling)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / SCALING_FILE).write_text(json.dumps(scaling.to_dict(), indent=2))
        for path in sorted(tmp.iterdir()):
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
