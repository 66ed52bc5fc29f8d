"""Which backend serves a stage, and the one way every command and plan stage builds it.

A plan's `backend:` section (or `--backend NAME` with `--set backend.KEY=VALUE`) names the
engine and its options:

    backend: {name: vllm, tensor_parallel_size: 2, max_model_len: 131072}

The choice is checked when the plan or command line is read (the name against the registry,
every option by the backend's options dataclass), before anything loads. A stage the chosen
backend cannot serve (a vLLM engine cannot change its RoPE in place, so it cannot score search
candidates or train) runs on the HF backend, and the run says so once.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ropebench.backends.base import BACKENDS, Backend, ModelSource, Place
from ropebench.errors import RopebenchError

DEFAULT = "hf"


@dataclass(frozen=True)
class BackendChoice:
    """A backend's registry name and its engine options as given (checked on creation)."""

    name: str = DEFAULT
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parsed_options()  # an unknown name or a bad option fails here, before any load

    @property
    def backend_class(self) -> type[Backend]:
        return BACKENDS.get(self.name)

    def parsed_options(self) -> Any:
        return self.backend_class.parse_options(self.options)

    def for_stage(self, kind: str) -> BackendChoice:
        """This choice where it serves `kind` ("eval", "search", "train"), else the HF backend."""
        return self if kind in self.backend_class.serves else BackendChoice()

    def fingerprint(self) -> dict[str, Any] | None:
        """What of this choice a result depends on: None for the HF backend (its options only
        change speed), else the name and every option that is not speed-only."""
        if self.name == DEFAULT:
            return None
        parsed = self.parsed_options()
        speed = getattr(type(parsed), "speed_only", ()) if parsed is not None else ()
        values = asdict(parsed) if parsed is not None else {}
        return {"name": self.name, **{k: v for k, v in values.items() if k not in speed}}


def backend_choice(raw: Any, where: str) -> BackendChoice:
    """A plan's `backend:` value: a name, or a mapping `{name: NAME, KEY: VALUE, ...}`."""
    if raw is None:
        return BackendChoice()
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise RopebenchError(f"{where} must be a backend name or a mapping like "
                             "{name: vllm, tensor_parallel_size: 2}")
    options = dict(raw)
    name = options.pop("name", DEFAULT)
    if not isinstance(name, str):
        raise RopebenchError(f"{where}: name must be a backend name, got {name!r}")
    try:
        return BackendChoice(name, options)
    except RopebenchError as err:
        raise RopebenchError(f"{where}: {err}") from None


def open_backend(choice: BackendChoice, source: ModelSource) -> Backend:
    """Load `source` on the chosen backend at this process's place in the job."""
    from ropebench.run.distributed import barrier, gpu_slice, process_place

    cls = choice.backend_class
    options = choice.parsed_options()
    cls.check_source(source.scaling)
    if cls.owns_gpus:  # each rank's engine gets its own tensor_parallel_size GPUs
        devices = gpu_slice(int(getattr(options, "tensor_parallel_size", 1)))
        if devices is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices
    rank, world_size, device = process_place(engine_owns_gpus=cls.owns_gpus)
    place = Place(rank, world_size, device, barrier=lambda: barrier(world_size))
    return cls.create(source, options, place)


def close_backend(backend: Backend | None) -> None:
    """Stop an engine that holds resources beyond the Python object (vLLM's workers)."""
    if backend is not None:
        getattr(backend, "close", lambda: None)()
