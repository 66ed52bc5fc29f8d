"""LoRA through `peft`: low-rank adapters on chosen linear layers, optionally with trainable
embeddings and norms (LongLoRA's "LoRA+"), merged into the weights before export so the trained
model is a vanilla HF directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.settings import setting, validate


@dataclass
class LoraSettings:
    r: int = setting(8, min=1)  # adapter rank
    alpha: float = setting(16.0, gt=0)  # the update is scaled by alpha / r
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names to adapt
    train_embeddings: bool = False  # also train the token embeddings in full (LongLoRA)
    train_norms: bool = False  # also train every normalization layer in full (LongLoRA)

    def __post_init__(self) -> None:
        validate(self, "train.lora")
        if not self.targets:
            raise RopebenchError("train.lora.targets is empty; name the modules to adapt, "
                                 "e.g. [q_proj, v_proj]")


def _is_norm(name: str, module) -> bool:
    return "norm" in type(module).__name__.lower() or name.rsplit(".", 1)[-1].endswith("norm")


def attach_lora(model, settings: LoraSettings):
    """`model` wrapped with adapters; only adapters (and embeddings / norms if asked) train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0, bias="none",
                        target_modules=list(settings.targets))
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as err:  # peft names the target modules it could not find
        first = str(err).strip().splitlines()[0]
        raise RopebenchError(f"train.lora.targets: {first}; name linear modules of this model "
                             "(e.g. q_proj, v_proj)") from err
    for name, module in wrapped.named_modules():
        full = (settings.train_embeddings and name.endswith("embed_tokens")) or (
            settings.train_norms and _is_norm(name, module))
        if full:
            for parameter in module.parameters(recurse=False):
                parameter.requires_grad_(True)
    return wrapped


def merge_lora(model):
    """The plain transformers model with every adapter folded into its weights."""
    return model.merge_and_unload()


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
