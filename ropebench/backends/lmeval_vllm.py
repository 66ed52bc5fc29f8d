"""lm-eval's vLLM model over an engine of the vLLM backend.

lm-eval's `VLLM` builds its engine with `LLM(**model_args)`. Here that engine is one of the
backend's own (`VLLMBackend._engine`, counted in `max_engines`), started with its tokenizer
because lm-eval reads text and stops at strings, so lm-eval's requests run on the same exported
folder with the same RoPE corrections (LongRoPE magnitudes, raised `max_position_embeddings`) as
ropebench's rows. It is the engine `engine_for` picks for the run's whole length: a LongRoPE model
whose short and long factors differ gets the short engine for a run inside the window and the
long one beyond it (transformers switches per sequence, so a run beyond the window differs from
HF on its prompts inside the window); dynamic NTK beyond the window is refused, as for generation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ropebench.backends.vllm import VLLMBackend


def lm_eval_vllm(backend: VLLMBackend, max_length: int, batch_size: int = 1) -> Any:
    """An lm-eval `VLLM` whose engine is `backend`'s for sequences of `max_length` tokens."""
    import lm_eval.models.vllm_causallms as module

    engine = backend._engine(replace(backend.engine_for(max_length), tokenizer=True))
    build = module.LLM
    module.LLM = lambda **_: engine  # lm-eval's constructor takes the engine already running
    try:
        return module.VLLM(pretrained=backend.model_dir, max_length=max_length,
                           batch_size=batch_size, dtype=backend.options.dtype,
                           seed=backend.options.seed)
    finally:
        module.LLM = build
