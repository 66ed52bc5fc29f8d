"""Save a patched model as a plain HF directory that vanilla transformers loads as is."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ropebench.errors import RopebenchError
from ropebench.io import check_no_links, write_text_atomic
from ropebench.model.patch import apply_scaling
from ropebench.outdir import staging_folder
from ropebench.rope.attention import engine_refusal
from ropebench.rope.scaling import RopeScaling

SCALING_FILE = "ropebench_scaling.json"


def save_extended(model, tokenizer, scaling: RopeScaling, out_dir: str | Path) -> Path:
    """Apply `scaling` (if not already) and write weights, config, tokenizer and the scaling.

    The config carries the scaling as transformers 5 `rope_parameters` (pi -> linear,
    ntk -> rope_theta, dynamic-ntk -> dynamic, yarn/ntk-by-parts -> yarn, llama3 -> llama3,
    longrope/longrope2 -> longrope), so loading it needs no ropebench. `ropebench_scaling.json`
    keeps the full provenance (method, factors, search history). Files are written to a staging
    folder inside `out_dir` and moved in one by one, so an interrupted save never leaves a
    truncated file (a killed save's staging folder is removed by the next one); other files
    already in `out_dir` (training logs) are kept. The caller holds `out_dir`'s lock.
    """
    if scaling.extra.get("attention"):  # no config field expresses an attention method
        raise RopebenchError(engine_refusal(scaling.extra["attention"], "vanilla transformers"))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RopebenchError(f"{out_dir} is a file; choose a directory for --out")
    apply_scaling(model, scaling)
    tmp = staging_folder(out_dir)
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_text_atomic(tmp / SCALING_FILE, json.dumps(scaling.to_dict(), indent=2))
        for path in sorted(tmp.iterdir()):
            check_no_links(out_dir / path.name)
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
