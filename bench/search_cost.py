"""Cost of a LongRoPE2 search candidate against one plain forward pass over the same documents.

A candidate's cost is the search's own wall time divided by its evaluations: patching the rotary
module, the needle-driven perplexity forwards, bookkeeping and the checkpoint written after every
evaluation. The baseline is what any tool must at least do per candidate: one plain
`model(input_ids)` (full logits) over each of the same needle documents, after the same patch.
Then the demo plan's search (`ropebench demo`'s settings) is timed end to end.

    .venv/bin/python bench/search_cost.py --target-length 4096 --documents 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def plain_forward_seconds(model, documents, repeats: int = 3) -> float:
    """Best time of one `model(input_ids)` per document, summed over the documents."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            for doc in documents:
                model(input_ids=torch.tensor([doc.input_ids]))
            best = min(best, time.perf_counter() - start)
    return best


def timed_search(model, tokenizer, target_length: int, settings) -> tuple[float, int, float]:
    """(wall seconds, evaluations, best fitness) of one LongRoPE2 search with a checkpoint file."""
    from ropebench.backends.hf import HFBackend
    from ropebench.methods.evolution.ga import search_longrope2
    from ropebench.model.patch import spec_of
    from ropebench.search.fitness import make_scorer

    checkpoint = Path(tempfile.mkdtemp()) / "search.json"
    start = time.perf_counter()
    scorer = make_scorer(HFBackend(model, tokenizer), target_length, settings)
    scaling = search_longrope2(spec_of(model), target_length, scorer, settings,
                               checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    return seconds, scaling.extra["evaluations"], scaling.extra["best_fitness"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-length", type=int, default=4096)
    parser.add_argument("--documents", type=int, default=3)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--skip-demo", action="store_true", help="do not time the demo's search")
    args = parser.parse_args()

    from ropebench.methods import get_extender
    from ropebench.methods.evolution.settings import EvolutionSettings as SearchSettings
    from ropebench.model.load import load_model
    from ropebench.model.patch import apply_scaling, spec_of
    from ropebench.run.plan import load_plan
    from ropebench.tasks.needle_ppl import NeedlePPL

    model, tokenizer = load_model("reference")
    documents = NeedlePPL(tokenizer, args.target_length, args.documents).documents
    apply_scaling(model, get_extender("longrope2").rescale(spec_of(model), args.target_length))
    plain = plain_forward_seconds(model, documents)

    settings = SearchSettings(
        population=args.population,
        iterations=args.iterations,
        parents=args.population // 2,
        mutations=args.population // 2,
        crossovers=args.population // 2,
        documents=args.documents,
        baselines=(),  # scored outside the candidates: they would blur the per-candidate cost
        progress=False,
    )
    seconds, evaluations, best = timed_search(model, tokenizer, args.target_length, settings)
    per_candidate = seconds / evaluations
    print(
        f"reference model, LongRoPE2 512 -> {args.target_length}, {args.documents} needle documents"
    )
    print(f"plain forward over the documents: {plain:.3f} s")
    print(
        f"search: {evaluations} candidates in {seconds:.1f} s, {per_candidate:.3f} s each "
        f"(best needle-PPL {best:.3f})"
    )
    print(f"candidate / plain forward: {per_candidate / plain:.2f}")

    if not args.skip_demo:
        plan = load_plan(
            Path(__file__).resolve().parent.parent / "ropebench/run/plans/demo.yaml"
        )
        model, tokenizer = load_model("reference")
        demo = SearchSettings(**plan.method("longrope2").search)
        demo_seconds, demo_evals, demo_best = timed_search(
            model, tokenizer, plan.target_length, demo
        )
        print(
            f"demo search ({demo_evals} candidates at {plan.target_length}): {demo_seconds:.1f} s "
            f"(best needle-PPL {demo_best:.3f})"
        )
    print(f"ratio: {per_candidate / plain:.2f}")


if __name__ == "__main__":
    main()
