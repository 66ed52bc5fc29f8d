"""The vLLM backend: an exported model (a vanilla HF directory) served by vLLM's offline `LLM`.

Prompts go in as token ids (`TokensPrompt`, nothing is re-tokenised); generation is greedy with
the task's `max_new_tokens` and stop ids (EOS, and every newline token when asked); span NLL comes
from `prompt_logprobs=0` (the log-prob of each actual next token), summed over the scored span
only. Texts are decoded and cut exactly as the HF engine does, so rows are identical in form.

Where vLLM's RoPE differs from transformers', the backend picks an engine that matches it, or
refuses:
- LongRoPE / LongRoPE2 (`longrope` with distinct short and long factors): vLLM uses the long
  factors for every position whenever `max_model_len` exceeds the pretrained window, transformers
  only once the sequence does. Requests that stay inside the window (prompt + answer, or the NLL
  sequence) go to a second engine whose long factors are overridden with the short ones (an
  engine with `max_model_len` = window would also use them, but cannot run the forward over
  exactly `window` tokens that a crossing generation needs); a generation that starts inside and crosses the window is re-prefilled on the long
  engine at the switch, as the HF engine does. vLLM also ignores `attention_factor` for
  `longrope` (it derives the magnitude from max_position_embeddings): the backend passes it
  as vLLM's `short_mscale` / `long_mscale`, so any magnitude transformers applies is applied.
- Dynamic NTK (`dynamic`): vLLM's is static. The backend serves it as plain RoPE with the base
  transformers uses at the request's length (the pretrained base inside the window), one engine
  per base. Generation that runs past the window cannot match (the base would change every
  step) and is refused.
- A config whose max_position_embeddings is below `max_model_len` (the model unscaled, dynamic
  NTK) gets `max_position_embeddings` raised through `hf_overrides`.

Heavy imports (vllm) happen inside the methods; `ropebench list` stays instant.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from ropebench.backends.base import (
    BACKENDS,
    Backend,
    Completion,
    ModelSource,
    Place,
    Settled,
    SpanNLL,
)
from ropebench.errors import RopebenchError
from ropebench.io import write_json_atomic
from ropebench.settings import MAX_TOKENS, parse_settings, setting

SOURCE_FILE = "ropebench_source.json"  # in an export: the content hashes of the model it came from

# vLLM CPU defaults that fit a shared machine; the user's environment wins.
_CPU_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in this process: ~10 s load, no spawn guard
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass
class VLLMOptions:
    """Engine options (`--set backend.KEY=VALUE`, a plan's `backend: {name: vllm, ...}`)."""

    batch_size: int = setting(8, min=1)  # prompts handed to the engine at once
    tensor_parallel_size: int = setting(1, min=1)
    # Data parallelism is ropebench's: launch N processes (torchrun / accelerate launch), each
    # with its own engine; inside one process it must be 1.
    data_parallel_size: int = setting(1, min=1, max=1)
    max_model_len: int | None = setting(None, min=16, max=MAX_TOKENS)
    gpu_memory_utilization: float = setting(0.9, gt=0.0, max=1.0)
    enforce_eager: bool = True
    dtype: str = setting("auto", choices=("auto", "float32", "bfloat16", "float16"))
    max_num_seqs: int = setting(16, min=1)
    max_engines: int = setting(2, min=1)  # engines kept loaded at once (LongRoPE: long + short)
    seed: int = 0

    speed_only: ClassVar[tuple[str, ...]] = (
        "batch_size", "tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization",
        "enforce_eager", "max_num_seqs", "max_engines")


@dataclass(frozen=True)
class EngineKey:
    """What distinguishes one engine from another for the same model directory."""

    max_model_len: int
    rope_theta: float | None = None  # dynamic NTK served as plain RoPE with this base
    short: bool = False  # LongRoPE served with its short factors everywhere (inside the window)
    tokenizer: bool = False  # the engine detokenizes (lm-eval's model reads text, stop strings)

    def label(self) -> str:
        theta = "" if self.rope_theta is None else f", base {self.rope_theta:.6g}"
        short = ", short factors" if self.short else ""
        return f"max_model_len {self.max_model_len}{theta}{short}"


def _on_cpu() -> bool:
    import torch  # not vllm: its environment variables must be set before it is imported

    return not torch.cuda.is_available()


def dynamic_base(config: dict[str, Any], length: int) -> float:
    """transformers' dynamic-NTK base for a forward over `length` tokens (`rope_type: dynamic`)."""
    from ropebench.rope.math import dynamic_ntk_scale, ntk_base
    from ropebench.rope.spec import RopeSpec, configured_rope

    spec = RopeSpec.from_config(config)
    return ntk_base(spec, dynamic_ntk_scale(spec, length, float(configured_rope(config)["factor"])))


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    """A model directory served by vLLM (float32 on CPU, the config's dtype on GPUs)."""

    name = "vllm"
    options_class = VLLMOptions
    owns_gpus = True

    def __init__(self, model_dir: str | Path, tokenizer=None, *,
                 options: VLLMOptions | dict[str, Any] | None = None,
                 identity: dict[str, Any] | None = None, rank: int = 0, world_size: int = 1,
                 longest: int = 0) -> None:
        self.model_dir = str(model_dir)
        self.longest = longest
        self.options = (options if isinstance(options, VLLMOptions) else
                        parse_settings(VLLMOptions, dict(options or {}), where="vllm backend option"))
        self.rank, self.world_size = rank, world_size
        config_file = Path(self.model_dir) / "config.json"
        if not config_file.is_file():
            raise RopebenchError(f"{self.model_dir} has no config.json; the vllm backend needs an "
                                 "exported HF model directory (`ropebench extend`)")
        self.config = json.loads(config_file.read_text())
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer = tokenizer
        self._identity = dict(identity or {"model": self.model_dir})
        self._files: list[list[str]] | None = None  # content hashes of the served folder
        self._engines: dict[EngineKey, Any] = {}
        self.load_seconds: dict[str, float] = {}
        if _on_cpu():
            for key, value in _CPU_ENV.items():
                os.environ.setdefault(key, value)

    @classmethod
    def check_source(cls, scaling) -> None:
        """An attention method (no export) and a machine without vllm are refused up front."""
        import importlib.util
        import sys

        from ropebench.rope.attention import engine_refusal

        if scaling is not None and scaling.extra.get("attention"):
            raise RopebenchError(engine_refusal(scaling.extra["attention"], "vLLM"))
        if "vllm" not in sys.modules and importlib.util.find_spec("vllm") is None:
            raise RopebenchError("the vllm backend needs the vllm package, which is not installed: "
                                 "pip install vllm (on a CUDA machine), or use the hf backend")

    @classmethod
    def create(cls, source: ModelSource, options: VLLMOptions | None, place: Place) -> VLLMBackend:
        """Serve `source`: the model folder itself when unscaled, else ropebench's export of the
        scaled model in `source.work_dir` (written once, by rank 0; reused while it matches)."""
        export = Path(source.work_dir or ".") / "extended-model"
        if place.rank == 0:
            export_for_vllm(source.model, source.scaling, export,
                            trust_remote_code=source.trust_remote_code)
        place.barrier()
        model_dir = export_for_vllm(source.model, source.scaling, export,
                                    trust_remote_code=source.trust_remote_code)
        return cls(model_dir, options=options, identity=source.identity, rank=place.rank,
                   world_size=place.world_size, longest=source.longest)

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.options.batch_size

    # ------------------------------------------------------------------ what results depend on
    @property
    def identity(self) -> dict[str, Any]:
        """The model, the content hashes of the folder vLLM serves, and its pretrained RoPE."""
        from ropebench.model.identity import folder_fingerprint
        from ropebench.rope.spec import RopeSpec

        if self._files is None:  # hashed once: the served files do not change under a backend
            self._files = folder_fingerprint(Path(self.model_dir))
        return {**self._identity, "files_sha256": self._files,
                "pretrained_rope": asdict(RopeSpec.from_config(self.config))}

    @property
    def params(self) -> dict[str, Any]:
        """The served config's RoPE scaling, as `rope.spec` reads it (legacy keys included)."""
        from ropebench.rope.spec import configured_rope

        return configured_rope(self.config)

    @property
    def max_length(self) -> int:
        # RULER's budget leaves BOS out (prompt + answer <= length), so a full prompt and its
        # answer hold one token more than the length the model was extended to.
        return int(self.options.max_model_len or self.config["max_position_embeddings"] + 1)

    @property
    def engine_length(self) -> int:
        """The engines' max_model_len: `max_length`, or room for the longest length asked for
        where a model is evaluated beyond its configured window (the original model)."""
        if self.options.max_model_len:
            return int(self.options.max_model_len)
        return max(self.max_length, self.longest + 1)

    @property
    def window(self) -> int:
        """The pretrained window: where switching and dynamic RoPE change behaviour."""
        p = self.params
        return int(p.get("original_max_position_embeddings") or p["max_position_embeddings"])

    @property
    def switching(self) -> bool:
        p = self.params
        return p.get("rope_type") == "longrope" and list(p.get("short_factor") or []) != list(
            p.get("long_factor") or []
        )

    @property
    def dynamic(self) -> bool:
        return self.params.get("rope_type") == "dynamic"

    # ------------------------------------------------------------------ engines
    def engine_for(self, total_tokens: int, *, nll_length: int | None = None) -> EngineKey:
        """The engine whose RoPE equals transformers' for a sequence of `total_tokens` tokens."""
        if total_tokens > self.engine_length:
            raise RopebenchError(
                f"a request of {total_tokens} tokens exceeds the vllm engine's max_model_len "
                f"{self.engine_length}; raise --set backend.max_model_len or lower --lengths"
            )
        if self.switching and total_tokens <= self.window:
            return EngineKey(self.engine_length, short=True)
        if self.dynamic:
            if nll_length is None and total_tokens > self.window:
                raise RopebenchError(
                    "vLLM's dynamic NTK is static: a generation that runs past the pretrained "
                    f"window ({self.window} tokens; this one needs {total_tokens}) cannot match "
                    "transformers, whose base grows every step; use --backend hf for dynamic-ntk "
                    "generation beyond the window"
                )
            theta = dynamic_base(self.config, nll_length or total_tokens)
            return EngineKey(self.engine_length, rope_theta=theta)
        return EngineKey(self.engine_length)

    def _engine(self, key: EngineKey):
        if key in self._engines:
            self._engines[key] = self._engines.pop(key)  # most recently used last
            return self._engines[key]
        while len(self._engines) >= self.options.max_engines:
            self._shutdown(next(iter(self._engines)))
        from vllm import LLM

        opts = self.options
        overrides: dict[str, Any] = {}
        # rope_parameters as transformers 5 writes them (the window is a top-level field).
        params = {k: v for k, v in self.params.items() if k != "max_position_embeddings"}
        if key.max_model_len > int(self.config["max_position_embeddings"]):
            overrides["max_position_embeddings"] = key.max_model_len
        if params.get("rope_type") == "longrope":
            # vLLM derives LongRoPE's magnitude from max_position_embeddings / window and ignores
            # attention_factor; transformers applies attention_factor: pass it explicitly.
            magnitude = params.get("attention_factor")
            if magnitude is not None:
                params = {**params, "short_mscale": magnitude, "long_mscale": magnitude}
                overrides["rope_parameters"] = params
        if key.short:
            # vLLM picks the long factors for every position once max_model_len exceeds the
            # window; an engine whose long factors are the short ones gives transformers' RoPE
            # for sequences inside the window at any max_model_len.
            overrides["rope_parameters"] = {**params, "long_factor": list(params["short_factor"])}
        if key.rope_theta is not None:
            overrides["rope_parameters"] = {
                "rope_type": "default",
                "rope_theta": key.rope_theta,
                "partial_rotary_factor": float(params.get("partial_rotary_factor", 1.0)),
            }
        dtype = opts.dtype
        if dtype == "auto" and _on_cpu():
            dtype = "float32"
        kwargs: dict[str, Any] = dict(
            model=self.model_dir,
            tokenizer=self.model_dir,
            skip_tokenizer_init=not key.tokenizer,
            dtype=dtype,
            max_model_len=key.max_model_len,
            enforce_eager=opts.enforce_eager,
            tensor_parallel_size=opts.tensor_parallel_size,
            gpu_memory_utilization=opts.gpu_memory_utilization,
            max_num_seqs=opts.max_num_seqs,
            seed=opts.seed,
            enable_prefix_caching=False,  # every prompt position's log-prob is computed afresh
        )
        if overrides:
            kwargs["hf_overrides"] = overrides
        start = time.perf_counter()
        try:
            llm = LLM(**kwargs)
        except Exception as err:  # noqa: BLE001
            raise RopebenchError(f"vLLM could not start the engine ({key.label()}): "
                                 f"{type(err).__name__}: {err}") from err
        self.load_seconds[key.label()] = time.perf_counter() - start
        self._engines[key] = llm
        return llm

    def _shutdown(self, key: EngineKey) -> None:
        llm = self._engines.pop(key)
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # noqa: BLE001
            pass
        del llm
        gc.collect()

    def close(self) -> None:
        """Stop every engine this backend started."""
        for key in list(self._engines):
            self._shutdown(key)

    # ------------------------------------------------------------------ requests
    def _stop_ids(self, stop_at_newline: bool) -> list[int]:
        from ropebench.backends.hf_engine import newline_token_ids

        eos = self.tokenizer.eos_token_id
        ids = [] if eos is None else [eos]
        if stop_at_newline:
            ids += newline_token_ids(self.tokenizer)
        return ids

    def generate(
        self,
        prompts: Sequence[list[int]],
        max_new_tokens: int,
        *,
        stop_at_newline: bool = False,
        settled: Settled | None = None,
        **options: Any,
    ) -> list[Completion]:
        options.pop("batch_size", None)  # the engine batches by itself
        if options:
            raise RopebenchError(
                f"unknown generation option(s) for the vllm backend: {', '.join(sorted(options))}; "
                "engine settings go in --set backend.KEY=VALUE"
            )
        stop_ids = self._stop_ids(stop_at_newline)
        stop_set = set(stop_ids)

        def text_of(tokens: list[int]) -> str:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            return text.split("\n", 1)[0] if stop_at_newline else text

        # Group requests by engine; a switching model's inside-window prompt whose answer would
        # cross the window runs on the short engine up to the switch, then resumes on the long one.
        groups: dict[EngineKey, list[int]] = {}
        budget = [max_new_tokens] * len(prompts)
        crossing: list[int] = []
        for i, ids in enumerate(prompts):
            n = len(ids)
            if self.switching and n <= self.window < n + max_new_tokens:
                budget[i] = self.window + 1 - n  # the forward on window + 1 tokens is the first long one
                crossing.append(i)
                key = EngineKey(self.engine_length, short=True)
            else:
                key = self.engine_for(n + max_new_tokens)
            groups.setdefault(key, []).append(i)
        tokens: list[list[int]] = [[] for _ in prompts]
        start = time.perf_counter()
        for key, rows in groups.items():
            self._run(key, [prompts[i] for i in rows], [budget[i] for i in rows], stop_ids, tokens, rows)
        resume = [i for i in crossing
                  if len(tokens[i]) == budget[i] and not (tokens[i] and tokens[i][-1] in stop_set)]
        if resume:
            key = self.engine_for(self.window + max_new_tokens + 1)
            key = EngineKey(self.engine_length) if self.switching else key
            self._run(key, [list(prompts[i]) + tokens[i] for i in resume],
                      [max_new_tokens - len(tokens[i]) for i in resume], stop_ids, tokens, resume,
                      append=True)
        seconds = (time.perf_counter() - start) / max(len(prompts), 1)
        out = []
        for i, ids in enumerate(prompts):
            row = tokens[i]
            if settled is not None:  # the HF engine stops a row once its score is final
                for k in range(1, len(row) + 1):
                    if row[k - 1] in stop_set:
                        break
                    if settled(i, text_of(row[:k])):
                        row = row[:k]
                        break
            out.append(Completion(text_of(row), len(ids), seconds))
        return out

    def _run(self, key, prompts, budgets, stop_ids, tokens, rows, *, append=False) -> None:
        from vllm import SamplingParams, TokensPrompt

        llm = self._engine(key)
        params = [SamplingParams(temperature=0.0, max_tokens=b, stop_token_ids=list(stop_ids),
                                 detokenize=False, skip_special_tokens=False,
                                 ignore_eos=False)
                  for b in budgets]
        outs = llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                            use_tqdm=False)
        for i, o in zip(rows, outs, strict=True):
            new = list(o.outputs[0].token_ids)
            tokens[i] = tokens[i] + new if append else new

    def lm_eval_model(self, max_length: int, batch_size: int = 1):
        from ropebench.backends.lmeval_vllm import lm_eval_vllm

        return lm_eval_vllm(self, max_length, batch_size)

    def token_logprobs(self, input_ids: list[int]) -> list[float]:
        """log p(ids[p] | ids[:p]) for p = 1 .. len(ids) - 1, from the engine that matches HF."""
        from vllm import SamplingParams, TokensPrompt

        llm = self._engine(self.engine_for(len(input_ids), nll_length=len(input_ids)))
        params = SamplingParams(prompt_logprobs=0, max_tokens=1, temperature=0.0, detokenize=False)
        res = llm.generate([TokensPrompt(prompt_token_ids=list(input_ids))], params, use_tqdm=False)
        logprobs = res[0].prompt_logprobs
        return [logprobs[p][input_ids[p]].logprob for p in range(1, len(input_ids))]

    def nll(self, input_ids: list[int], first_target: int, last_target: int | None = None) -> SpanNLL:
        return self.nll_many([(input_ids, first_target, last_target)])[0]

    def nll_many(self, requests: Sequence[tuple[list[int], int, int | None]]) -> list[SpanNLL]:
        """`nll` for several sequences at once (one engine call per engine)."""
        from vllm import SamplingParams, TokensPrompt

        groups: dict[EngineKey, list[int]] = {}
        for i, (ids, first, _last) in enumerate(requests):
            if first < 1:
                raise RopebenchError(f"first_target must be at least 1, got {first}")
            groups.setdefault(self.engine_for(len(ids), nll_length=len(ids)), []).append(i)
        out: list[SpanNLL | None] = [None] * len(requests)
        params = SamplingParams(prompt_logprobs=0, max_tokens=1, temperature=0.0, detokenize=False)
        for key, rows in groups.items():
            llm = self._engine(key)
            results = llm.generate(
                [TokensPrompt(prompt_token_ids=list(requests[i][0])) for i in rows], params,
                use_tqdm=False,
            )
            for i, res in zip(rows, results, strict=True):
                ids, first, last = requests[i]
                last = len(ids) if last is None else last
                logprobs = res.prompt_logprobs  # [None, {token: Logprob}, ...], one per position
                total = -math.fsum(logprobs[p][ids[p]].logprob for p in range(first, last))
                count = last - first
                out[i] = SpanNLL(total, count, total / max(count, 1))
        return out  # type: ignore[return-value]


def export_for_vllm(model_name: str, scaling, out_dir: str | Path, *,
                    trust_remote_code: bool = False) -> Path:
    """The directory vLLM loads: `model_name` itself when unscaled, else ropebench's export of the
    scaled model (`save_extended`, reused when it already holds this exact scaling of a source
    with the same content: `SOURCE_FILE` records the source's file hashes)."""
    from ropebench.io import FolderLock
    from ropebench.model.export import SCALING_FILE, save_extended
    from ropebench.model.identity import folder_fingerprint
    from ropebench.model.load import load_model, resolve_model_path

    if scaling is None:
        return Path(resolve_model_path(model_name))
    resolved = Path(resolve_model_path(model_name))
    source = {"files": folder_fingerprint(resolved)} if resolved.is_dir() else {"model": model_name}
    out_dir = Path(out_dir)
    saved, recorded = out_dir / SCALING_FILE, out_dir / SOURCE_FILE
    if saved.is_file() and recorded.is_file() and (out_dir / "config.json").is_file():
        if (json.loads(saved.read_text()) == json.loads(json.dumps(scaling.to_dict()))
                and json.loads(recorded.read_text()) == source):
            return out_dir
    recorded.unlink(missing_ok=True)  # the export is being replaced: never reuse it half done
    model, tokenizer = load_model(model_name, device="cpu", trust_remote_code=trust_remote_code)
    with FolderLock(out_dir, "--out"):  # save_extended stages inside out_dir under its lock
        save_extended(model, tokenizer, scaling, out_dir)
    del model
    gc.collect()
    write_json_atomic(recorded, source)
    return out_dir
