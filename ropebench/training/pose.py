"""PoSE (Zhu et al. 2024): train at a short window with position ids that cover the target length.

A row of W tokens (W below the target T) is cut at uniform random points into `chunks` pieces.
Piece i keeps its tokens and their order, and its positions are shifted by a skip u_i:
u_0 = 0 and u_i drawn uniformly from [u_{i-1}, T - W], so positions keep increasing, the largest
is at most T - 1, and relative distances up to T - 1 occur between pieces. The RoPE is the
method's, for T, as in plain training; only the position ids differ. The paper's released code
also takes each piece's text from a different place in a long document; here the pieces are
consecutive text of the packed row (the positions are what PoSE is about).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ropebench.errors import RopebenchError
from ropebench.training.data import PackedRow


def sample_skips(room: int, chunks: int, rng: random.Random) -> list[int]:
    """Skips u_0 = 0 <= u_1 <= ... <= u_{chunks-1} <= room, each uniform above the previous."""
    skips = [0]
    for _ in range(chunks - 1):
        skips.append(rng.randint(skips[-1], room))
    return skips


def pose_positions(length: int, target: int, chunks: int, rng: random.Random) -> list[int]:
    """Position ids (length,) for one row of `length` tokens that reach up to `target` - 1."""
    if not 1 <= chunks <= length or length > target:
        raise RopebenchError(
            f"PoSE needs 1 <= chunks <= window <= target, got chunks={chunks}, window={length}, "
            f"target={target}; fix train.pose_chunks or train.pose_window"
        )
    bounds = [0, *sorted(rng.sample(range(1, length), chunks - 1)), length]
    skips = sample_skips(target - length, chunks, rng)
    positions: list[int] = []
    for start, end, skip in zip(bounds, bounds[1:], skips, strict=False):
        positions += range(start + skip, end + skip)
    return positions


def with_pose_positions(stream: Iterator[PackedRow], target: int, chunks: int,
                        seed: int) -> Iterator[PackedRow]:
    """The rows of `stream` (plain rows, positions 0..W-1) with PoSE position ids."""
    rng = random.Random(seed)
    for row in stream:
        positions = pose_positions(len(row.input_ids), target, chunks, rng)
        yield PackedRow(row.input_ids, positions, row.labels, long=True)  # the rescaled RoPE


def check_pose(window: int, target: int, chunks: int, mixed: bool) -> None:
    """PoSE's settings against the run, before any weights load (one line each)."""
    if window >= target:
        raise RopebenchError(
            f"train.pose_window={window} is not below the target length {target}: PoSE trains "
            f"at a shorter window; give a train.pose_window below {target}"
        )
    if chunks > window:
        raise RopebenchError(
            f"train.pose_chunks={chunks} exceeds the {window}-token PoSE window; give fewer chunks"
        )
    if mixed:
        raise RopebenchError(
            "train.positions=pose lays out its own position ids, which LongRoPE2's mixed context "
            "windows also do; drop one: --set params.mixed=false or train.positions=plain"
        )
