"""The HF transformers backend: an in-memory `nn.Module`, the fast greedy engine, and span NLL.

NLL runs the decoder once over the sequence and applies the output head only to the positions
whose next token is scored, a chunk at a time, so memory grows with length x hidden size, never
with length x vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ropebench.backends.base import (
    BACKENDS,
    Backend,
    Completion,
    ModelSource,
    Place,
    Settled,
    SpanNLL,
)
from ropebench.backends.hf_engine import ENGINES, greedy_completions
from ropebench.model.attention import attention_settings
from ropebench.model.identity import (
    chat_template_fingerprint,
    tokenizer_fingerprint,
    weights_fingerprint,
)
from ropebench.model.mixed import install_mixed_rotary
from ropebench.model.patch import apply_scaling
from ropebench.rope.scaling import RopeScaling
from ropebench.settings import parse_settings, setting

HEAD_CHUNK = 1024  # positions per lm_head call: caps the float32 logits at HEAD_CHUNK x vocab


@dataclass
class HFOptions:
    """The HF backend's engine options (`--set backend.KEY=VALUE`, a plan's `backend:`)."""

    batch_size: int = setting(8, min=1)  # rows per decode batch
    max_batch_tokens: int = setting(65536, min=1)  # KV-cache tokens per batch
    engine: str = setting("fast", choices=ENGINES)  # "hf": `model.generate` (same tokens)

    speed_only: ClassVar[tuple[str, ...]] = ("batch_size", "max_batch_tokens", "engine")


def decoder_and_head(model):
    """The base model (hidden states) and the output projection of a HF causal LM."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        base = model.get_decoder()
    return base, model.get_output_embeddings()


@BACKENDS.register("hf")
class HFBackend(Backend):
    """A transformers causal LM in this process (float32 on CPU, bf16 on CUDA)."""

    name = "hf"
    options_class = HFOptions
    serves = frozenset({"eval", "search", "train"})

    def __init__(self, model, tokenizer, *, identity: dict[str, Any] | None = None,
                 rank: int = 0, world_size: int = 1, options: HFOptions | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.rank, self.world_size = rank, world_size
        self.options = options or HFOptions()
        self._identity = dict(identity or {"model": getattr(model, "name_or_path", "")})
        self._content: dict[str, Any] | None = None

    @classmethod
    def create(cls, source: ModelSource, options: HFOptions | None, place: Place) -> HFBackend:
        """Load `source` on `place.device` and patch its RoPE with the source's scaling."""
        from ropebench.model.load import load_model

        model, tokenizer = load_model(source.model, device=place.device,
                                      trust_remote_code=source.trust_remote_code)
        if source.scaling is not None:
            apply_scaling(model, source.scaling)
        return cls(model, tokenizer, identity=source.identity, rank=place.rank,
                   world_size=place.world_size, options=options)

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.options.batch_size

    @property
    def identity(self) -> dict[str, Any]:
        """The model's name, the content hashes of its weights and tokenizer (chat template
        included), and its RoPE and attention method as patched now."""
        if self._content is None:  # hashed once: the weights do not change under a backend
            self._content = {
                "weights_sha256": weights_fingerprint(self.model),
                "tokenizer_sha256": tokenizer_fingerprint(self.tokenizer),
                "chat_template_sha256": chat_template_fingerprint(self.tokenizer),
            }
        params = getattr(self.model.config, "rope_parameters", None)
        identity = {**self._identity, **self._content, "rope_parameters": params,
                    "max_position_embeddings": getattr(self.model.config, "max_position_embeddings",
                                                       None)}
        attention = attention_settings(self.model)
        return identity if attention is None else {**identity, "attention": attention}

    @property
    def max_length(self) -> int:
        return int(self.model.config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def apply_scaling(self, scaling: RopeScaling) -> None:
        apply_scaling(self.model, scaling)
        n_hat = int(scaling.extra.get("n_hat", 0) or 0)
        if n_hat:  # LongRoPE v1's search keeps the first n_hat positions unscaled
            install_mixed_rotary(self.model, scaling, n_hat=n_hat)

    def generate(
        self,
        prompts: Sequence[list[int]],
        max_new_tokens: int,
        *,
        stop_at_newline: bool = False,
        settled: Settled | None = None,
        **options: Any,
    ) -> list[Completion]:
        given = parse_settings(HFOptions, options, where="generation") if options else None
        opts = self.options if given is None else replace(
            self.options, **{k: getattr(given, k) for k in options})
        return greedy_completions(
            self.model, self.tokenizer, prompts, max_new_tokens,
            batch_size=opts.batch_size, max_batch_tokens=opts.max_batch_tokens,
            stop_at_newline=stop_at_newline, settled=settled, engine=opts.engine,
        )

    @torch.inference_mode()
    def nll(self, input_ids: list[int], first_target: int, last_target: int | None = None) -> SpanNLL:
        base, head = decoder_and_head(self.model)
        ids = torch.tensor([input_ids], device=self.device)  # (1, T)
        last_target = ids.shape[1] if last_target is None else last_target
        hidden = base(input_ids=ids, use_cache=False).last_hidden_state  # (1, T, H)
        # Position p predicts token p + 1: keep only the positions whose next token is scored.
        hidden = hidden[0, first_target - 1 : last_target - 1]  # (N, H)
        labels = ids[0, first_target:last_target]  # (N,)
        total, mean = 0.0, None
        for start in range(0, labels.shape[0], HEAD_CHUNK):
            logits = head(hidden[start : start + HEAD_CHUNK]).float()  # (chunk, V)
            chunk = labels[start : start + HEAD_CHUNK]
            total += F.cross_entropy(logits, chunk, reduction="sum").item()
            if labels.shape[0] <= HEAD_CHUNK:  # one chunk: the mean as torch reduces it
                mean = F.cross_entropy(logits, chunk).item()
        count = int(labels.shape[0])
        return SpanNLL(total, count, mean if mean is not None else total / max(count, 1))

    def lm_eval_model(self, max_length: int, batch_size: int = 1):
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=self.model, tokenizer=self.tokenizer, max_length=max_length,
                    batch_size=batch_size)
