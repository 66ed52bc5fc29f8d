"""Equal terms between methods: the mixed-window short/long token share is a training setting
(the paper's ~30/70 by default) and is what training actually does; the attention temperature is
a parameter of every method with one, so YaRN and LongRoPE can run at each other's."""

from __future__ import annotations

import itertools
import math

import pytest

from ropebench.errors import RopebenchError
from ropebench.methods import get_extender
from ropebench.rope.math import longrope_mscale, yarn_mscale
from ropebench.rope.spec import RopeSpec
from ropebench.training.data import IGNORE, PackedRow, balance
from ropebench.training.trainer import TrainSettings

SPEC = RopeSpec(base=10000.0, head_dim=64, rotary_dim=64, window=512)


def row(long: bool, targets: int, length: int = 100) -> PackedRow:
    labels = [1] * targets + [IGNORE] * (length - targets)
    return PackedRow([0] * length, list(range(length)), labels, long)


def share(rows: list[PackedRow]) -> float:
    count = {True: 0, False: 0}
    for r in rows:
        count[r.long] += sum(label != IGNORE for label in r.labels)
    return count[True] / (count[True] + count[False])


def test_the_default_share_is_the_papers_split():
    assert TrainSettings().long_share == 0.7


@pytest.mark.parametrize("long_share", [0.3, 0.5, 0.7, 0.9])
def test_balance_reaches_the_token_share(long_share):
    # The data gives 9 short rows (60 targets each) for every long row (99 targets).
    source = itertools.cycle([row(False, 60)] * 9 + [row(True, 99)])
    rows = list(itertools.islice(balance(source, long_share), 400))
    assert share(rows) == pytest.approx(long_share, abs=0.02)


@pytest.mark.parametrize("long_share", [0.0, 1.0])
def test_balance_at_the_extremes_keeps_one_kind(long_share):
    source = itertools.cycle([row(False, 60), row(True, 99)])
    rows = list(itertools.islice(balance(source, long_share), 50))
    assert {r.long for r in rows} == {bool(long_share)}


def test_balance_without_the_wanted_kind_is_an_error():
    source = itertools.cycle([row(False, 60)])
    with pytest.raises(RopebenchError, match="long_share"):
        next(balance(source, 1.0))


def test_balance_without_one_kind_goes_on_with_the_other():
    source = itertools.cycle([row(True, 99)])  # no short documents in the data
    rows = list(itertools.islice(balance(source, 0.7), 5))
    assert all(r.long for r in rows)


def test_temperatures_swap_between_yarn_and_longrope():
    s = 8
    yarn_at_longrope = get_extender("yarn", {"mscale": "longrope"}).rescale(SPEC, 4096)
    longrope2_at_yarn = get_extender("longrope2", {"mscale": "yarn"}).rescale(SPEC, 4096)
    longrope_at_yarn = get_extender("longrope", {"mscale": "yarn"}).rescale(SPEC, 4096)
    assert yarn_at_longrope.attention_factor == pytest.approx(longrope_mscale(s, 512))
    assert yarn_at_longrope.attention_factor == pytest.approx(math.sqrt(1 + math.log(8) / math.log(512)))
    assert longrope2_at_yarn.attention_factor == pytest.approx(yarn_mscale(s))
    assert longrope_at_yarn.attention_factor == pytest.approx(0.1 * math.log(8) + 1)
    # The factors do not change with the temperature.
    assert yarn_at_longrope.long_factor == get_extender("yarn").rescale(SPEC, 4096).long_factor
    assert yarn_at_longrope.rope_parameters["attention_factor"] == pytest.approx(
        yarn_at_longrope.attention_factor)


def test_unknown_temperature_is_refused():
    with pytest.raises(RopebenchError, match="mscale"):
        get_extender("yarn", {"mscale": "hot"})
