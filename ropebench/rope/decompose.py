"""Read a LongRoPE-style factor list back as LongRoPE2's two groups (pure, no I/O).

LongRoPE2 factors are NTK-shaped below a critical pair c, `f_i = f_c^(i/c)`, and searched from c
on. Given any factor list (a released config, a search result), `decompose` finds the largest c
for which the pairs below it follow that form, so a user can see where the real critical pair
sits against the theoretical ones (d_tcd, d10_tcd) and how far the upper group strays from s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ropebench.rope.math import critical_index, critical_index_10
from ropebench.rope.spec import RopeSpec

# Largest |f_i - f_c^(i/c)| still read as "follows the NTK form": released files print factors
# to ~10 significant digits (residual ~1e-8), while the next candidate c is off by > 1e-2.
FIT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Decomposition:
    """Where a factor list's NTK lower group ends and what its upper group spans."""

    critical_index: int  # largest c with f_i = f_c^(i/c) for every i < c (0: no such group)
    anchor: float  # f_c (the first upper factor)
    residual: float  # max |f_i - f_c^(i/c)| over i < c
    anchor_over_scale: float  # f_c / s
    upper_min: float  # smallest factor of pairs c..end
    upper_max: float  # largest factor of pairs c..end
    d_tcd: int  # the theoretical critical pair of the model
    d10_tcd: int  # the 10-period pair (lower end of the paper's candidate range)
    scale: float  # s = target / window

    @property
    def offset(self) -> int:
        """c - d_tcd: negative when the found critical pair sits below the theoretical one."""
        return self.critical_index - self.d_tcd


def ntk_residual(factors: Sequence[float], c: int) -> float:
    """max |f_i - f_c^(i/c)| over i < c (0 for c = 0: there is no lower group to fit)."""
    if c == 0:
        return 0.0
    anchor = float(factors[c])
    return max(abs(float(factors[i]) - anchor ** (i / c)) for i in range(c))


def decompose(
    spec: RopeSpec, factors: Sequence[float], scale: float, tolerance: float = FIT_TOLERANCE
) -> Decomposition:
    """The largest critical pair c whose lower group fits `f_c^(i/c)` within `tolerance`.

    c ranges over 0 .. n_pairs-1 (the anchor f_c must exist); c = 0 means no lower group, which is
    what a list whose first factor is not 1 gives (f_0 = f_c^0 = 1 always).
    """
    c = next(
        (k for k in range(len(factors) - 1, 0, -1) if ntk_residual(factors, k) <= tolerance), 0
    )
    upper = [float(f) for f in factors[c:]]
    return Decomposition(
        critical_index=c,
        anchor=float(factors[c]),
        residual=ntk_residual(factors, c),
        anchor_over_scale=float(factors[c]) / scale,
        upper_min=min(upper),
        upper_max=max(upper),
        d_tcd=critical_index(spec),
        d10_tcd=critical_index_10(spec),
        scale=scale,
    )
