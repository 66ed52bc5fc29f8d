"""The backend seam: what tasks, fitness functions and the evaluation loop ask of an engine.

A backend owns a model and its tokenizer and answers two kinds of request, always in token ids
(tasks tokenize once, every engine sees the same prompts):
- `generate`: greedy completions of prompts, with stop rules and an optional early stop;
- `nll`: the negative log-likelihood of a span of a sequence given its prefix.
It also carries where it runs in a data-parallel job (`rank`, `world_size`) and what its results
depend on (`identity`, stored with rows and checkpoints so a changed model never reuses them).

Every command and every plan stage builds its backend the same way: the registry gives the
class, `parse_options` reads the engine options (`--set backend.KEY=VALUE`, a plan's `backend:`
section) strictly, and `create` loads the model at a `Place`. A backend states which stages it
can serve (`serves`): evaluation only, unless it can also change its RoPE in place (a search
scores candidates that way) or hand over a trainable module.

Third-party backends register through the entry-point group `ropebench.backends`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ropebench.registry import Registry
from ropebench.rope.scaling import RopeScaling
from ropebench.settings import parse_settings

STAGES = ("eval", "search", "train")  # what a plan asks of a backend, stage by stage


@dataclass
class Completion:
    """A greedy completion: its text (cut at a newline when asked), the prompt's token count, and
    this row's share of its batch's wall time."""

    text: str
    input_tokens: int
    seconds: float


@dataclass(frozen=True)
class SpanNLL:
    """Summed NLL of `count` scored tokens; `mean` is their mean as the engine reduced it."""

    total: float
    count: int
    mean: float


# (prompt index, text so far) -> True once more text cannot change the row's score.
Settled = Callable[[int, str], bool]


@dataclass(frozen=True)
class ModelSource:
    """What a backend serves: a model as the user named it (a folder, a hub id, `reference`),
    the RoPE scaling applied to it (None: as pretrained), and a folder inside the run's output
    where the backend may write what it serves (an engine that loads from disk exports there)."""

    model: str
    scaling: RopeScaling | None = None
    work_dir: Path | None = None
    trust_remote_code: bool = False
    # The longest evaluation length it will be asked for (0: unknown); an engine that sizes its
    # context up front (vLLM) makes room for it even where the config's window is shorter.
    longest: int = 0

    @property
    def identity(self) -> dict[str, Any]:
        return {"model": self.model}


@dataclass(frozen=True)
class Place:
    """Where a backend runs in a data-parallel job: its rank, the job's size, the torch device
    for in-process engines, and a barrier (one process writes shared files, the others wait)."""

    rank: int = 0
    world_size: int = 1
    device: Any = None
    barrier: Callable[[], None] = field(default=lambda: None, compare=False)


class Backend(ABC):
    """An inference engine behind ropebench's tasks.

    Attributes:
        name: the registry name (`--backend NAME`).
        tokenizer: a transformers tokenizer (tasks build prompts with it).
        rank, world_size: this process's place in a data-parallel job (0 and 1 alone).
        identity: JSON-able description of what results depend on (model, weights, RoPE).
    """

    name: ClassVar[str] = ""
    # The dataclass of its engine options (`--set backend.KEY=VALUE`); None: it takes none. Its
    # `speed_only` class attribute names the fields that change speed, never a result (they stay
    # out of every fingerprint).
    options_class: ClassVar[type | None] = None
    # The plan stages it can serve; a search and training need the HF backend's in-place RoPE.
    serves: ClassVar[frozenset[str]] = frozenset({"eval"})
    # True for an engine that starts its own GPU workers (vLLM): its process keeps CUDA untouched.
    owns_gpus: ClassVar[bool] = False
    tokenizer: Any
    rank: int = 0
    world_size: int = 1
    # Prompts handed to `generate` at once; the evaluation loop writes rows after each batch.
    batch_size: int = 8

    @classmethod
    def parse_options(cls, values: dict[str, Any]) -> Any:
        """The engine options as `options_class`, every key and value checked (one-line errors)."""
        from ropebench.errors import RopebenchError

        if cls.options_class is None:
            if values:
                raise RopebenchError(f"the {cls.name} backend takes no backend.KEY settings; "
                                     f"remove backend.{next(iter(values))}")
            return None
        return parse_settings(cls.options_class, dict(values), where=f"{cls.name} backend option")

    @classmethod
    def check_source(cls, scaling: RopeScaling | None) -> None:
        """Refuse, before any weights load, a scaling or environment this engine cannot serve
        (every scaling, by default)."""
        return None

    @classmethod
    def create(cls, source: ModelSource, options: Any, place: Place) -> Backend:
        """Load `source` with parsed `options` at `place` (what every command and stage calls)."""
        raise NotImplementedError(f"the {cls.name} backend cannot be built from a model source; "
                                  "give it a `create` classmethod")

    @property
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What this backend's results depend on (stored with rows and checkpoints): the model
        as loaded, not a scaling applied to it afterwards."""

    @property
    @abstractmethod
    def max_length(self) -> int:
        """The context length the model is configured for (`max_position_embeddings`)."""

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[list[int]],
        max_new_tokens: int,
        *,
        stop_at_newline: bool = False,
        settled: Settled | None = None,
        **options: Any,
    ) -> list[Completion]:
        """Greedy completions, one per prompt, in order.

        Args:
            prompts: token ids, BOS and chat wrapper included as the model must see them.
            max_new_tokens: the most tokens generated per prompt.
            stop_at_newline: also stop at (and cut the text at) the first newline.
            settled: an early stop; rows end once it returns True for their text so far.
            options: engine-specific knobs of a direct caller; unknown ones are errors (the
                evaluation loop passes none: a backend's options are set when it is built).
        Returns:
            One `Completion` per prompt.
        """

    @abstractmethod
    def nll(self, input_ids: list[int], first_target: int, last_target: int | None = None) -> SpanNLL:
        """NLL of `input_ids[first_target:last_target]` given their prefixes (`first_target >= 1`).

        Args:
            input_ids: one sequence of shape (T,) as a list.
            first_target, last_target: the scored span; `last_target=None` scores to the end.
        Returns:
            `SpanNLL` over the span's tokens.
        """

    def apply_scaling(self, scaling: RopeScaling) -> None:
        """Use `scaling`'s RoPE from now on (searches score candidates this way)."""
        raise NotImplementedError(f"the {self.name} backend cannot change its RoPE in place")

    def lm_eval_model(self, max_length: int, batch_size: int = 1) -> Any:
        """An lm-eval `LM` over this backend's model (short-context tasks)."""
        raise NotImplementedError(f"the {self.name} backend has no lm-eval model")


def _import_builtins() -> None:
    import ropebench.backends.hf  # noqa: F401
    import ropebench.backends.vllm  # noqa: F401  (vllm itself is imported on first use)


BACKENDS: Registry[type[Backend]] = Registry(
    "backend", "ropebench.backends", builtins=_import_builtins
)
