"""Content fingerprints of what a result depends on: the weights, the tokenizer, its chat template.

Rows, search checkpoints and training checkpoints store these, so a changed model (new weights
under the same path, another model with the same config) never reuses old results.

- weights: sha256 over the tensors of the model's state dict (names, dtypes, shapes, bytes), or
  over the content hashes of the weight files of the folder it was loaded from
  (`ropebench.content`: streamed, and remembered while a file's size, times and inode stay put);
- tokenizer: sha256 of its serialized vocabulary and rules, special tokens and chat template.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ropebench.content import HashCache, files_sha256

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def folder_weights_fingerprint(folder: Path) -> str | None:
    """sha256 over the content hashes of a model folder's weight files (None when it holds none)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        return None
    digest = hashlib.sha256()
    for name, sha in files_sha256((p.name, p) for p in files):
        digest.update(f"{name}:{sha}\n".encode())
    return digest.hexdigest()


# Documentation a model folder may ship: never read by a load, so it is left out of its identity.
_NOT_READ = (".md", ".png", ".jpg", ".jpeg", ".gif", ".svg")


def folder_fingerprint(folder: Path, cache: HashCache | None = None) -> list[list[str]]:
    """`[[name, sha256], ...]` of every file a load of a model folder may read (config, weights,
    tokenizer, remote code): a file overwritten in place, or copied over with its old times,
    changes it. Hidden files (locks) and documentation are left out."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")
                   and not p.name.lower().endswith(_NOT_READ))
    return files_sha256(((p.name, p) for p in files), cache)


def state_dict_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        t = t.contiguous().cpu()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def weights_fingerprint(model: torch.nn.Module) -> str:
    """The weights' fingerprint: the one recorded at load time (from the files), else the tensors'."""
    recorded = getattr(model, "_ropebench_weights_sha256", None)
    return recorded or state_dict_fingerprint(model)


def record_weights_fingerprint(model: torch.nn.Module, fingerprint: str | None) -> None:
    """Remember the loaded files' hash on the module (it stays valid until the weights change)."""
    if fingerprint:
        model._ropebench_weights_sha256 = fingerprint


def forget_weights_fingerprint(model: torch.nn.Module) -> None:
    """The weights are about to change (training): hash the tensors from now on."""
    if hasattr(model, "_ropebench_weights_sha256"):
        del model._ropebench_weights_sha256


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what turns text into ids: vocabulary and rules, special tokens, chat template."""
    if tokenizer is None:
        return ""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        try:
            vocab = tokenizer.get_vocab()
        except (AttributeError, NotImplementedError):
            vocab = {}
        digest.update(json.dumps(sorted(vocab.items())).encode())
    special = getattr(tokenizer, "special_tokens_map", {}) or {}
    template = getattr(tokenizer, "chat_template", None)
    extra = {"special": special, "chat_template": template,
             "class": type(tokenizer).__name__,
             "add_bos": getattr(tokenizer, "add_bos_token", None)}
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def chat_template_fingerprint(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
