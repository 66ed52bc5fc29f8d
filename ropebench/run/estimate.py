"""How long the pending stages of a plan should take, from one timed forward on this machine.

Work is counted in forward passes over a full-length prompt: a search candidate costs one per
fitness document, a training step about three, and each task says what a length of it costs
(`Task.cost_hint`); forwards at shorter lengths are scaled by (L / target)^1.4.
"""

from __future__ import annotations

import time

from ropebench.run.runner import ComparisonRunner, settings_of
from ropebench.tasks import get_task

# Rough costs, in forward passes at the target length, for work that is not one plain forward
# (measured on the reference model's shape on CPU).
TRAIN_STEP_FORWARDS = 3.0  # forward + backward (about twice a forward) + optimizer
LENGTH_EXPONENT = 1.4  # a forward at L costs ~ (L / target)^1.4 of one at the target (attention)


def estimate_seconds(runner: ComparisonRunner) -> float:
    """Seconds the pending stages should take: work counted in forward passes, one timed here."""
    forwards = pending_forwards(runner)
    if not forwards:
        return 0.0
    # Timed on the HF backend: the one every plan can load (its searches and training run there).
    backend = runner.base_backend()
    forward = _forward_seconds(backend.model, runner.plan.target_length)
    runner._release()
    return forwards * forward


def pending_forwards(runner: ComparisonRunner) -> float:
    """The pending stages' work, in forward passes over a prompt of the target length."""
    pending = {s.key for s in runner.pending()}
    if not pending:
        return 0.0
    plan = runner.plan
    e = plan.evaluate
    forwards = 0.0
    for ms in runner.graph:
        m = ms.method
        if ms.scaling.key in pending and m.search is not None:
            s = settings_of("search", m.search, m.method)
            forwards += s.evaluations() * s.documents
        if ms.train is not None and ms.train.key in pending:
            t = settings_of("train", m.train, m.method)
            forwards += t.steps * t.batch_size * t.grad_accum * TRAIN_STEP_FORWARDS
        for task, stage in ms.evals.items():
            if stage.key not in pending:
                continue
            spec = get_task(task)
            work = spec.cost_hint(e.samples, e.task_options[task].given_values())
            if spec.per_length:
                work *= sum((length / plan.target_length) ** LENGTH_EXPONENT for length in e.lengths)
            forwards += work
    return forwards


def _forward_seconds(model, length: int) -> float:
    """The faster of two timed forwards at `length` (the first also pays warm-up costs)."""
    import torch

    ids = torch.zeros(1, length, dtype=torch.long, device=model.device)
    times = []
    with torch.no_grad():
        for _ in range(2):
            started = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            times.append(time.perf_counter() - started)
    return min(times)
