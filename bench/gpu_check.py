"""Time of the long-context forwards ropebench runs, per attention kernel and context length.

A Llama-shaped model (about 1.1B parameters by default) is built with random weights, its RoPE
extended with ropebench's YaRN extender (8K -> 128K by default) so the scaled rotary path is the
one timed. For each attention implementation (sdpa, and flash_attention_2 when `flash_attn`
imports) and each length L, on random token ids:

- needle:  needle-driven perplexity scoring as `NeedlePPL.score` does it: one decoder forward over
           L tokens, the output head applied to the last few (answer) positions only;
- prefill: RULER-style prefill, `model(ids, use_cache=True, logits_to_keep=1)`;
- decode:  a few greedy decode steps on that KV cache, timed per token.

Each is reported in seconds, tokens/s, TFLOP/s from an analytic FLOP count and peak allocated
memory. One warm-up at the smallest length precedes each implementation's measurements; an
out-of-memory cell prints OOM. The last line is `ratio: X`, flash-attention 2 prefill time over
sdpa prefill time at the longest length both measured.

On a GPU machine, from the repository root (bench/gpu_check.sh wraps this):
    PYTHONPATH=. python3 bench/gpu_check.py --lengths 16384,32768,65536,131072
CPU smoke test on a 2-layer model:
    .venv/bin/python bench/gpu_check.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import gc
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ropebench.backends.hf import decoder_and_head
from ropebench.methods.base import get_extender
from ropebench.model.patch import apply_scaling, spec_of

ROPE_THETA = 500000.0  # Llama-3's base for an 8K window
FLASH = "flash_attention_2"

# Model shape and lengths: --tiny picks the second; any option given on the command line wins.
FULL = dict(
    hidden=2048,
    layers=16,
    heads=32,
    kv_heads=8,
    intermediate=8192,
    vocab=32000,
    window=8192,
    lengths="16384,32768,65536,131072",
)
TINY = dict(
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    intermediate=128,
    vocab=1000,
    window=64,
    lengths="256,512",
)


@dataclass
class Cell:
    """One measurement: `seconds` is per call (per token for decode); None when not measured."""

    attn: str
    length: int
    measure: str  # needle, prefill or decode
    seconds: float | None = None
    tokens: int = 0  # tokens produced or scored in `seconds`
    flops: float = 0.0
    peak_gib: float | None = None
    status: str = "ok"  # ok, OOM or skipped

    def line(self) -> str:
        head = f"{self.attn:18s} {self.length:8d} {self.measure:8s}"
        if self.seconds is None:
            return f"{head} {self.status:>10s}"
        peak = "-" if self.peak_gib is None else f"{self.peak_gib:.2f}"
        return (
            f"{head} {self.seconds:10.4f} {self.tokens / self.seconds:11.1f} "
            f"{self.flops / self.seconds / 1e12:9.2f} {peak:>9s}"
        )


TABLE_HEADER = (
    f"{'attn':18s} {'length':>8s} {'measure':8s} {'seconds':>10s} {'tok/s':>11s} "
    f"{'TFLOP/s':>9s} {'peak GiB':>9s}"
)


class Model:
    """The model under test and the analytic FLOP counts of its forwards."""

    def __init__(self, args: argparse.Namespace, device: torch.device, dtype: torch.dtype):
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=args.vocab,
            hidden_size=args.hidden,
            intermediate_size=args.intermediate,
            num_hidden_layers=args.layers,
            num_attention_heads=args.heads,
            num_key_value_heads=args.kv_heads,
            max_position_embeddings=args.window,
            rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
            tie_word_embeddings=False,
        )
        torch.manual_seed(args.seed)
        # Built directly on the device: initialising 1B float32 weights on the host is slow.
        with device:
            model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=dtype)
        self.model = model.to(device).eval()
        scaling = get_extender("yarn").rescale(spec_of(self.model), args.target)
        apply_scaling(self.model, scaling)
        self.scaling = scaling

        self.params = sum(p.numel() for p in self.model.parameters())
        embed = self.model.get_input_embeddings().weight.numel()
        self.head_params = self.model.get_output_embeddings().weight.numel()
        self.nonembed = self.params - embed - self.head_params
        self.layers = args.layers
        self.q_dim = args.heads * config.head_dim  # = hidden for Llama shapes

    # FLOPs of a forward over L tokens with the output head on k positions:
    #   2 * N * L                 every non-embedding weight (N of them) is one multiply-add per token
    # + 2 * L^2 * d_q * layers    causal attention: Q K^T and P V each cost 2 * d_q per query-key
    #                             pair, and a causal mask keeps L^2 / 2 pairs (d_q = heads x head_dim)
    # + 2 * V * d * k             the output head (V x d) on k positions
    # A decode step is the same with one new token against C cached ones:
    #   2 * N + 4 * C * d_q * layers + 2 * V * d.
    def forward_flops(self, length: int, head_positions: int) -> float:
        return (
            2 * self.nonembed * length
            + 2 * length**2 * self.q_dim * self.layers
            + 2 * self.head_params * head_positions
        )

    def decode_flops(self, context: int) -> float:
        return 2 * self.nonembed + 4 * context * self.q_dim * self.layers + 2 * self.head_params


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None  # the host allocator keeps no peak to reset per measurement
    return torch.cuda.max_memory_allocated(device) / 2**30


@torch.inference_mode()
def needle_score(model, ids: torch.Tensor, answer_tokens: int) -> float:
    """Perplexity of the last `answer_tokens` tokens, computed as `NeedlePPL.score` does."""
    base, head = decoder_and_head(model)
    hidden = base(input_ids=ids, use_cache=False).last_hidden_state  # (1, L, H)
    logits = head(hidden[0, -answer_tokens - 1 : -1]).float()  # (answer_tokens, V)
    return math.exp(F.cross_entropy(logits, ids[0, -answer_tokens:]).item())


@torch.inference_mode()
def prefill_and_decode(
    model, ids: torch.Tensor, steps: int, device: torch.device
) -> tuple[float, float | None, float, float | None]:
    """(prefill seconds, prefill peak, decode seconds per token, decode peak) of greedy decoding."""
    sync(device)
    reset_peak(device)
    start = time.perf_counter()
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    sync(device)
    prefill = time.perf_counter() - start
    prefill_peak = peak_gib(device)

    # transformers renamed `past_key_values` to `cache` within 5.x; take whichever this one has.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cache = out[name]
    del out
    reset_peak(device)  # the decode peak still counts the cache, which stays allocated
    start = time.perf_counter()
    for _ in range(steps):
        out = model(input_ids=token, use_cache=True, **{name: cache})
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        cache = out[name]
    sync(device)
    decode = (time.perf_counter() - start) / steps
    return prefill, prefill_peak, decode, peak_gib(device)


def best_of(repeats: int, run: Callable[[], tuple]) -> tuple:
    """The run with the smallest first element (its time) over `repeats` runs."""
    return min((run() for _ in range(repeats)), key=lambda result: result[0])


def out_of_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_length(
    m: Model, attn: str, length: int, args: argparse.Namespace, device: torch.device
) -> list[Cell]:
    """The needle, prefill and decode cells of one (attention implementation, length)."""
    ids = torch.randint(0, args.vocab, (1, length), device=device)
    needle = Cell(
        attn, length, "needle", tokens=length, flops=m.forward_flops(length, args.answer_tokens)
    )
    prefill = Cell(attn, length, "prefill", tokens=length, flops=m.forward_flops(length, 1))
    # Decode step i sees length + i cached tokens; the middle step stands for them all.
    decode = Cell(
        attn, length, "decode", tokens=1, flops=m.decode_flops(length + args.decode_steps // 2)
    )

    def needle_run() -> tuple[float, float | None]:
        sync(device)
        reset_peak(device)
        start = time.perf_counter()
        needle_score(m.model, ids, args.answer_tokens)
        sync(device)
        return time.perf_counter() - start, peak_gib(device)

    try:
        needle.seconds, needle.peak_gib = best_of(args.repeats, needle_run)
    except torch.cuda.OutOfMemoryError:
        needle.status = "OOM"
    if needle.status == "OOM":  # outside the handler, so the traceback's tensors are freed
        out_of_memory(device)

    try:
        prefill.seconds, prefill.peak_gib, decode.seconds, decode.peak_gib = best_of(
            args.repeats, lambda: prefill_and_decode(m.model, ids, args.decode_steps, device)
        )
    except torch.cuda.OutOfMemoryError:
        prefill.status = decode.status = "OOM"
    if prefill.status == "OOM":
        out_of_memory(device)
    return [needle, prefill, decode]


def flash_problem(device: torch.device) -> str | None:
    """Why flash-attention 2 cannot run here, or None when it can."""
    if device.type != "cuda":
        return "flash-attn needs CUDA"
    try:
        import flash_attn  # noqa: F401
    except ModuleNotFoundError:
        return "flash-attn not installed"
    except (ImportError, OSError) as err:  # e.g. a wheel built for another torch / CUDA
        return f"flash-attn does not load: {err}"
    return None


def ratio_line(cells: list[Cell], skipped: dict[str, str]) -> str:
    """flash-attention 2 prefill time / sdpa prefill time at the longest length both measured."""
    if FLASH in skipped:
        return f"ratio: n/a ({skipped[FLASH]})"
    times = {(c.attn, c.length): c.seconds for c in cells if c.measure == "prefill" and c.seconds}
    common = [length for attn, length in times if attn == FLASH and ("sdpa", length) in times]
    if not common:
        return "ratio: n/a (no length measured with both sdpa and flash_attention_2)"
    longest = max(common)
    return f"ratio: {times[(FLASH, longest)] / times[('sdpa', longest)]:.3f}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="2-layer hidden-64 model (smoke test)")
    parser.add_argument("--lengths", help="comma-separated context lengths")
    parser.add_argument("--attn", default=f"sdpa,{FLASH}", help="attention implementations")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--kv-heads", type=int)
    parser.add_argument("--intermediate", type=int)
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--window", type=int, help="pretrained RoPE window")
    parser.add_argument("--target", type=int, help="YaRN target length (default: longest length)")
    parser.add_argument("--dtype", help="default: bfloat16 on CUDA, float32 elsewhere")
    parser.add_argument("--answer-tokens", type=int, default=8, help="positions scored by needle")
    parser.add_argument("--decode-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell, best kept")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="cells starting after this many seconds are skipped",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.lengths = sorted(int(x) for x in args.lengths.split(","))
    args.target = args.target or args.lengths[-1]
    return args


def main() -> None:
    began = time.perf_counter()
    args = parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))

    m = Model(args, device, dtype)
    s = m.scaling
    print(
        f"model: {args.layers} layers, hidden {args.hidden}, {args.heads} heads "
        f"({args.kv_heads} KV), intermediate {args.intermediate}, vocab {args.vocab}, {dtype}"
    )
    print(f"parameters: {m.params:,} ({m.nonembed:,} non-embedding)")
    print(
        f"rope: {s.method} {s.original_length} -> {s.target_length} "
        f"(factor {s.rope_parameters['factor']:g}, attention factor {s.attention_factor:.4f})"
    )
    if device.type == "cuda":
        print(f"weights: {torch.cuda.memory_allocated(device) / 2**30:.2f} GiB on {device}")

    cells: list[Cell] = []
    skipped: dict[str, str] = {}
    for attn in args.attn.split(","):
        problem = flash_problem(device) if attn == FLASH else None
        if problem is None:
            try:
                m.model.set_attn_implementation(attn)
            except (ImportError, ValueError) as err:
                problem = f"transformers refuses {attn}: {err}"
        if problem:
            skipped[attn] = problem
            print(f"{attn}: skipped ({problem})")
            continue
        print(f"{attn}: warm-up at {args.lengths[0]} tokens")
        measure_length(m, attn, args.lengths[0], args, device)
        print(TABLE_HEADER)
        for length in args.lengths:
            if time.perf_counter() - began > args.budget_s:
                found = [
                    Cell(attn, length, x, status="skipped (time budget)")
                    for x in ("needle", "prefill", "decode")
                ]
            else:
                found = measure_length(m, attn, length, args, device)
            for cell in found:
                print(cell.line())
            cells += found

    print()
    print(
        f"decode: seconds and TFLOP/s per token, mean of {args.decode_steps} greedy steps; "
        f"times are the best of {args.repeats} runs"
    )
    print(TABLE_HEADER)
    for cell in cells:
        print(cell.line())
    print(f"total: {time.perf_counter() - began:.1f} s")
    print(ratio_line(cells, skipped))


if __name__ == "__main__":
    main()
