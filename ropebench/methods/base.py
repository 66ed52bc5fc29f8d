"""The extender interface every RoPE extension method implements, and the registry of methods.

An extender answers three questions, each behind one method:
- `rescale(spec, target_length)`: the analytic factors for a target length (pure math, no model);
- `search(spec, target_length, scorer, settings)`: better factors, found by calling `scorer` on
  candidate scalings (default: no search, return `rescale`). The harness builds the scorer (a
  fitness over a backend), so a method never sees a model, a task or a training loop;
- `training_layout()`: how the trainer should lay out rows and RoPE when fine-tuning with this
  method (default: plain rows, one RoPE; LongRoPE2: mixed context windows).

Third-party methods register through the entry-point group `ropebench.extenders`:

    [project.entry-points."ropebench.extenders"]
    my-method = "my_package.module:MyExtender"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ropebench.errors import RopebenchError
from ropebench.registry import Registry
from ropebench.rope.scaling import RopeScaling
from ropebench.rope.spec import RopeSpec
from ropebench.settings import parse_settings, setting, validate

ENTRY_POINT_GROUP = "ropebench.extenders"

# A candidate scaling -> its fitness, lower is better (built by `ropebench.search.fitness`).
Scorer = Callable[[RopeScaling], float]

# A scorer may also score several candidates at once (data-parallel search, see
# `ropebench.run.distributed.RankScorer`): searches ask `batch_scorer(scorer)` and fall back to
# calling the scorer one candidate at a time. Optional attributes a search reads:
#   score_many(scalings) -> list[float]  the fitness of each, in order;
#   width: int                           candidates worth scoring in one call (e.g. the ranks);
#   writes_checkpoints: bool             False on processes that must not write files.


def batch_scorer(scorer: Scorer) -> Callable[[list[RopeScaling]], list[float]] | None:
    """The scorer's `score_many`, or None when it scores one candidate at a time."""
    return getattr(scorer, "score_many", None)


@dataclass
class ExtenderConfig:
    """Base of every method's configuration dataclass (subclasses add the method's knobs)."""

    # Knobs that change only how the method trains (its `TrainingLayout`), not its factors: a
    # cached scaling stays valid when they change.
    training_keys: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        validate(self, "method")  # bounds declared with `setting(...)`, finiteness of every number


@dataclass
class SearchSettings:
    """What every search shares: which fitness to optimise and on which documents.

    A method with a search subclasses this with its own budgets (see `EvolutionSettings`)."""

    fitness: str = "needle_ppl"  # a name in `ropebench.search.fitness.FITNESS`
    documents: int = setting(10, min=1)  # documents the fitness averages over
    haystack: str = "pydoc"
    seed: int = 0
    # needle_ppl: the needle at the start of the text (the paper) or at 10 depths spread over the
    # documents (the released data builders).
    needle_position: str = setting("start", choices=("start", "depths"))
    # Disjoint document sets (the search's own first) on which each baseline's fitness is measured
    # after the search, so a win on the fitness set can be read against the spread; 0: none.
    spread_sets: int = setting(3, min=0, max=100)
    progress: bool = True  # show a progress bar (how a search runs, not what it finds)

    def evaluations(self) -> int:
        """The most candidates this search scores (for time estimates)."""
        return 1


@dataclass(frozen=True)
class TrainingLayout:
    """How the trainer lays out rows and RoPE for a method.

    `mixed`: LongRoPE2's mixed context windows (short rows keep the original RoPE with
    per-document attention, long rows use the rescaled RoPE); otherwise rows of the target length
    with one RoPE. `per_document_mask_long`: long rows also restart positions per document."""

    mixed: bool = False
    per_document_mask_long: bool = False


class Extender(ABC):
    """One RoPE context-extension method. Subclasses set `name` and `config_class`, and a
    `search_settings_class` when they search."""

    name: ClassVar[str]
    config_class: ClassVar[type[ExtenderConfig]] = ExtenderConfig
    search_settings_class: ClassVar[type[SearchSettings] | None] = None
    description: ClassVar[str] = ""
    trainable: ClassVar[bool] = True  # False: an inference-time method that training refuses
    # Where the method runs: ropebench's hf backend, the vllm backend, and any engine that loads
    # the vanilla HF export (`extend`). Attention methods run on hf only, and say where else.
    engines: ClassVar[tuple[str, ...]] = ("hf", "vllm", "export")
    runs_elsewhere: ClassVar[str] = ""

    def __init__(self, config: ExtenderConfig | None = None):
        self.config = config if config is not None else self.config_class()

    @abstractmethod
    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        """Analytic factors that stretch `spec.window` to `target_length`.

        Args:
            spec: the model's pretrained RoPE (`RopeSpec.from_config`).
            target_length: the context length to reach, > `spec.window`.
        Returns:
            The scaling, with `rope_parameters` that vanilla transformers loads.
        """

    def search(
        self,
        spec: RopeSpec,
        target_length: int,
        scorer: Scorer,
        settings: SearchSettings | None = None,
        *,
        checkpoint: Path | None = None,
    ) -> RopeScaling:
        """Search factors that minimise `scorer`. Methods without a search return `rescale`.

        Args:
            spec, target_length: as for `rescale`.
            scorer: candidate scaling -> fitness (lower is better); it patches and runs the model.
            settings: an instance of `search_settings_class` (its defaults when None).
            checkpoint: a JSON file to resume from and to write progress to.
        Returns:
            The best scaling found, `provenance="searched"`, its search record in `extra`.
        """
        return self.rescale(spec, target_length)

    def training_layout(self) -> TrainingLayout:
        """How to train with this method (see `TrainingLayout`); plain rows by default."""
        return TrainingLayout()


def _check_extender(obj: Any) -> type[Extender]:
    if not (isinstance(obj, type) and issubclass(obj, Extender)):
        raise RopebenchError(
            f"extender plugin {obj!r} is not an Extender subclass; "
            "point the entry point at a ropebench.methods.base.Extender subclass"
        )
    return obj


def _import_builtins() -> None:
    import ropebench.methods  # noqa: F401  (each module registers its extenders)


EXTENDERS: Registry[type[Extender]] = Registry(
    "method", ENTRY_POINT_GROUP, check=_check_extender, builtins=_import_builtins
)


def register(cls: type[Extender]) -> type[Extender]:
    """Class decorator for built-in extenders."""
    return EXTENDERS.register(cls.name)(cls)


def plugin_names() -> set[str]:
    """Names registered through the `ropebench.extenders` entry-point group."""
    return EXTENDERS.plugin_names()


def available_extenders() -> dict[str, type[Extender]]:
    """Every extender by name: the built-ins, then the entry-point plugins that load."""
    return EXTENDERS.items()


def get_extender(name: str, overrides: dict[str, Any] | None = None) -> Extender:
    """Instantiate the extender `name`, applying `key=value` config overrides."""
    cls = EXTENDERS.get(name)
    return cls(parse_settings(cls.config_class, overrides or {}, where=name))
