"""bench/gpu_check.py runs end to end on CPU with its tiny model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_tiny_on_cpu():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--device", "cpu", "--tiny", "--lengths", "128"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("parameters:") for line in lines)
    for measure in ("needle", "prefill", "decode"):
        # attn, length, measure, seconds, tok/s, TFLOP/s, peak ("-" on CPU)
        row = rf"^sdpa\s+128\s+{measure}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+-$"
        assert any(re.match(row, line) for line in lines), measure
    assert lines[-1].startswith("ratio: n/a")
