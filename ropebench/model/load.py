"""Load a causal LM and its tokenizer: a local HF directory, a hub id (when online) or `reference`.

float32 on CPU (bf16 matmuls are hundreds of times slower on typical CPUs), bf16 on CUDA. The
rotary inverse frequencies always stay float32 (see `ropebench.model.patch`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ropebench.errors import RopebenchError
from ropebench.model.identity import folder_weights_fingerprint, record_weights_fingerprint

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json",
                   "spiece.model", "vocab.txt")

REFERENCE_NAME = "reference"


def reference_model_dir() -> Path:
    """The shipped reference checkpoint (a tiny Llama, 512-token window, trained by ropebench)."""
    return Path(__file__).resolve().parents[1] / "reference" / "checkpoint"


def resolve_model_path(name_or_path: str) -> str:
    """Map `reference` to the shipped checkpoint; check that a local path looks like a model."""
    if name_or_path == REFERENCE_NAME:
        path = reference_model_dir()
        if not (path / "config.json").is_file():
            raise RopebenchError(
                f"the reference model is not built at {path}; run `ropebench reference train` first"
            )
        return str(path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise RopebenchError(
                f"{path} has no config.json; point MODEL at a HF model directory or use `reference`"
            )
        return str(path)
    owner = name_or_path.split("/")[0]
    if (name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~"))
            and not Path(owner).exists()):
        return name_or_path  # a hub id: transformers resolves it when the network allows
    raise RopebenchError(
        f"model directory {name_or_path!r} does not exist; give a local HF model directory, "
        "a hub id, or `reference`"
    )


def has_tokenizer_files(resolved: str) -> bool:
    """Whether a model folder ships a tokenizer (a hub id: assume it does)."""
    path = Path(resolved)
    return not path.is_dir() or any((path / name).is_file() for name in TOKENIZER_FILES)


def check_hub_reachable(repo_id: str) -> None:
    """A hub id that is neither cached nor reachable fails at once, in one line (instead of
    transformers' retries and its multi-line message)."""
    import os
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return  # cached: transformers loads it offline
    except Exception:  # noqa: BLE001  (an odd id: let transformers judge it)
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline:
        host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
        try:
            socket.create_connection((host, 443), timeout=3).close()
            return
        except OSError:
            pass
    raise RopebenchError(
        f"{repo_id!r} is not a local folder, and as a hub id it is not in the local cache and the "
        "hub cannot be reached; check the path, or download the model where you are online"
    )


def load_config_dict(name_or_path: str) -> dict:
    """config.json as a dict, without loading weights (a hub id goes through transformers)."""
    resolved = resolve_model_path(name_or_path)
    local = Path(resolved) / "config.json"
    if local.is_file():
        from ropebench.bounded import MAX_CONFIG_BYTES, read_bounded

        try:
            config = json.loads(read_bounded(local, "model config", MAX_CONFIG_BYTES))
        except json.JSONDecodeError as err:
            raise RopebenchError(f"cannot read {local}: {err}; check the file is valid JSON") from err
        if not isinstance(config, dict):
            raise RopebenchError(f"{local} holds a JSON {type(config).__name__}, not an object; "
                                 "point MODEL at a folder with a HF config.json")
        return config
    from transformers import AutoConfig

    check_hub_reachable(resolved)
    try:
        return AutoConfig.from_pretrained(resolved).to_dict()
    except OSError as err:
        raise RopebenchError(f"cannot load the config of {name_or_path!r}: {err}") from err


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _local_weights_fingerprint(resolved: str) -> str | None:
    """The content hash of a local folder's weight files (None for a hub id)."""
    if not Path(resolved).is_dir():
        return None
    try:
        return folder_weights_fingerprint(Path(resolved))
    except OSError as err:
        raise RopebenchError(f"cannot read the weights of {resolved}: {err}") from err


def load_model(
    name_or_path: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    need_tokenizer: bool = True,
):
    """Return `(model, tokenizer)` in eval mode on `device`, float32 on CPU and bf16 on CUDA.

    `need_tokenizer=False` (extend: RoPE needs no tokenizer): the tokenizer is None when the
    folder has no tokenizer files. The weights' content hash is recorded on the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model_path(name_or_path)
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    if attn_implementation is None:
        attn_implementation = "sdpa"
        if device.type == "cuda":
            try:
                import flash_attn  # noqa: F401

                attn_implementation = "flash_attention_2"
            except ImportError:
                pass
    # Hashed before the load: weights replaced during it then read as changed next time, never
    # as the weights these results came from.
    fingerprint = _local_weights_fingerprint(resolved)
    try:
        tokenizer = None
        if need_tokenizer or has_tokenizer_files(resolved):
            tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            resolved,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
        )
    except RopebenchError:
        raise
    except Exception as err:  # noqa: BLE001  (corrupt weights raise many kinds: one line for all)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RopebenchError(
            f"cannot load model {name_or_path!r}: {first}; check that its weight and tokenizer "
            "files are complete (re-download or re-export them)"
        ) from err
    if not Path(resolved).is_dir():
        fingerprint = getattr(model.config, "_commit_hash", None)
        fingerprint = f"hub:{name_or_path}@{fingerprint}" if fingerprint else None
    record_weights_fingerprint(model, fingerprint)
    if tokenizer is not None and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, tokenizer
