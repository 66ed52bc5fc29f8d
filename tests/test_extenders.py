"""The extender interface: registry, plugins, config overrides, factor files, search/train verbs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ropebench.errors import RopebenchError
from ropebench.methods import available_extenders, get_extender, load_scaling
from ropebench.methods.base import TrainingLayout
from ropebench.rope.math import critical_index
from ropebench.rope.scaling import RopeScaling, longrope_scaling, validate_factors
from ropebench.rope.spec import RopeSpec

BUILTINS = [
    "none",
    "pi",
    "ntk",
    "dynamic-ntk",
    "yarn",
    "ntk-by-parts",
    "llama3",
    "longrope",
    "longrope2",
]
PLUGIN_DIR = Path(__file__).parent / "plugin"
LLAMA3 = RopeSpec(base=500000.0, head_dim=128, rotary_dim=128, window=8192)
TINY = RopeSpec(base=10000.0, head_dim=16, rotary_dim=16, window=64)


def test_every_builtin_is_registered():
    assert set(BUILTINS) <= set(available_extenders())


@pytest.mark.parametrize("name", BUILTINS)
def test_rescale_is_well_formed(name):
    scaling = get_extender(name).rescale(LLAMA3, 131072)
    assert scaling.method == name
    assert (scaling.original_length, scaling.target_length) == (8192, 131072)
    assert len(scaling.long_factor) == 64
    assert all(math.isfinite(f) and f >= 1.0 for f in scaling.long_factor)
    assert scaling.rope_parameters["rope_theta"] > 0
    assert scaling.switches == (name in ("longrope", "longrope2"))
    # A saved scaling reads back identical.
    assert RopeScaling.from_dict(json.loads(json.dumps(scaling.to_dict()))) == scaling


def test_longrope2_default_is_ntk_below_critical_and_pi_above():
    scaling = get_extender("longrope2").rescale(LLAMA3, 131072)
    c = critical_index(LLAMA3)
    assert scaling.critical_index == c == 35
    assert scaling.long_factor[c:] == (16.0,) * (64 - c)
    assert scaling.long_factor[10] == pytest.approx(16.0 ** (10 / c))
    assert scaling.short_factor == (1.0,) * 64
    assert scaling.rope_parameters["rope_type"] == "longrope"


def test_longrope2_temperature_choices():
    from ropebench.rope.math import longrope_mscale, yarn_mscale

    spec = RopeSpec(base=10000.0, head_dim=64, rotary_dim=64, window=512)
    default = get_extender("longrope2").rescale(spec, 4096)
    yarn = get_extender("longrope2", {"mscale": "yarn"}).rescale(spec, 4096)
    given = get_extender("longrope2", {"mscale": "yarn", "attention_factor": "1.3"}).rescale(
        spec, 4096
    )
    assert default.attention_factor == pytest.approx(longrope_mscale(8, 512))
    assert yarn.attention_factor == pytest.approx(yarn_mscale(8))
    assert given.attention_factor == pytest.approx(1.3)
    assert yarn.long_factor == default.long_factor
    with pytest.raises(RopebenchError, match="mscale"):
        get_extender("longrope2", {"mscale": "ntk"}).rescale(spec, 4096)


def test_overrides_are_cast_to_field_types():
    ext = get_extender("yarn", {"beta_fast": "16", "truncate": "false", "factor": "none"})
    assert (
        ext.config.beta_fast == 16.0 and ext.config.truncate is False and ext.config.factor is None
    )
    ext = get_extender("longrope2", {"critical_index": "3", "upper": "[2, 2.5, 3, 3, 4]"})
    scaling = ext.rescale(TINY, 128)
    assert scaling.long_factor[3:] == (2.0, 2.5, 3.0, 3.0, 4.0)
    assert get_extender("pi", {"factor": "3"}).rescale(TINY, 128).long_factor == (3.0,) * 8


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("nope", None, "unknown method 'nope' .did you mean none or longrope..; known methods: dca, dynamic-ntk, llama3"),
        ("yarn", {"alpha": "1"}, "unknown yarn setting 'alpha'.*beta_fast"),
        ("yarn", {"beta_fast": "fast"}, "beta_fast='fast' is not a number"),
        ("longrope", {"long_factor": "1,x"}, "long_factor='x' is not a number"),
    ],
)
def test_bad_method_or_setting(name, overrides, message):
    with pytest.raises(RopebenchError, match=message):
        get_extender(name, overrides)


@pytest.mark.parametrize("name", BUILTINS)
def test_target_inside_window_is_rejected(name):
    with pytest.raises(RopebenchError, match="not above the pretrained window 64"):
        get_extender(name).rescale(TINY, 64)


def test_validate_factors():
    assert validate_factors(TINY, [1, 2, 3, 4, 5, 6, 7, 8]) == (
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
        6.0,
        7.0,
        8.0,
    )
    with pytest.raises(RopebenchError, match="has 3 entries.*exactly 8"):
        validate_factors(TINY, [1, 2, 3])
    with pytest.raises(RopebenchError, match="entry 2 is nan"):
        validate_factors(TINY, [1, 1, float("nan"), 1, 1, 1, 1, 1])
    with pytest.raises(RopebenchError, match="entry 0 is -1.0"):
        validate_factors(TINY, [-1, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(RopebenchError, match="non-decreasing from pair 4.*pair 6"):
        validate_factors(TINY, [1, 1, 1, 1, 3, 4, 3.5, 5], monotone_from=4)
    # Below the critical pair the order does not matter.
    validate_factors(TINY, [1, 9, 1, 1, 3, 4, 4, 5], monotone_from=4)


def test_longrope_scaling_rejects_non_monotone_upper_group():
    with pytest.raises(RopebenchError, match="non-decreasing"):
        get_extender("longrope2", {"critical_index": "3", "upper": "3,2,4,4,4"}).rescale(TINY, 128)


# --- factor files -----------------------------------------------------------------------------


def test_load_scaling_round_trips_a_saved_scaling(tmp_path):
    scaling = get_extender("longrope2", {"critical_index": "3", "upper": "2,2.5,3,3,4"}).rescale(
        TINY, 128
    )
    path = tmp_path / "factors.json"
    scaling.save(path)
    assert load_scaling(path, TINY) == scaling
    assert load_scaling(path, TINY, 128) == scaling


def test_load_scaling_reads_a_search_output_and_a_hf_config(tmp_path):
    long = [1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4]
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"long_factor": long, "critical_index": 3, "target_length": 256}))
    scaling = load_scaling(search, TINY)
    assert scaling.long_factor == tuple(float(x) for x in long)
    assert scaling.method == "longrope2" and scaling.provenance == "file"
    assert scaling.attention_factor == pytest.approx(math.sqrt(1 + math.log(4) / math.log(64)))

    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "max_position_embeddings": 256,
                "rope_scaling": {
                    "type": "longrope",
                    "long_factor": long,
                    "short_factor": [1.0] * 8,
                    "original_max_position_embeddings": 64,
                },
            }
        )
    )
    assert load_scaling(config, TINY).long_factor == scaling.long_factor


@pytest.mark.parametrize(
    "content, target, message",
    [
        (None, 128, "does not exist"),
        ("{not json", 128, "cannot read factors file"),
        ("[1, 2]", 128, "must hold a JSON object"),
        ('{"short_factor": [1]}', 128, "holds no `long_factor`"),
        ('{"long_factor": [1, 2, 3]}', 128, "has 3 entries"),
        ('{"long_factor": [1, 1, 1, 1, 1, 1, 1, 1]}', None, "does not say its target length"),
        ('{"long_factor": [1, 1, 1, 1, 1, 1, 1, 1], "target_length": 256}', 128, "not 128"),
        ('{"long_factor": [1, 1, 1, 1, 1, 1, 1, 1], "original_length": 32}', 128, "window of 32"),
        ('{"long_factor": [1, 1, 1, 1, 2, 1, 3, 4], "critical_index": 3}', 128, "non-decreasing"),
    ],
)
def test_load_scaling_errors(tmp_path, content, target, message):
    path = tmp_path / "factors.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RopebenchError, match=message):
        load_scaling(path, TINY, target)


# --- search and train verbs ---------------------------------------------------------------------


def test_default_search_returns_the_analytic_factors():
    never = lambda scaling: pytest.fail("a method without a search scores nothing")  # noqa: E731
    assert get_extender("yarn").search(TINY, 256, never) == get_extender("yarn").rescale(TINY, 256)


@pytest.mark.parametrize(
    "name, function", [("longrope", "search_longrope"), ("longrope2", "search_longrope2")]
)
def test_longrope_family_delegates_search(monkeypatch, name, function):
    import ropebench.methods.evolution.ga as ga

    calls = []

    def fake(spec, target_length, scorer, settings, *, checkpoint=None):
        calls.append((spec, target_length, scorer, settings, checkpoint))
        return longrope_scaling(spec, target_length, [1.0] * spec.n_pairs, method=name)

    monkeypatch.setattr(ga, function, fake)
    ext = get_extender(name, {"critical_index": "2"} if name == "longrope2" else None)
    scorer = object()
    result = ext.search(TINY, 256, scorer, checkpoint=Path("ckpt.json"))
    assert result.method == name
    ((spec, target, passed, settings, checkpoint),) = calls
    assert (spec, target, passed, checkpoint) == (TINY, 256, scorer, Path("ckpt.json"))
    assert isinstance(settings, ext.search_settings_class)
    if name == "longrope2":
        assert settings.critical_index == 2  # the extender's setting reaches the search


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("yarn", None, TrainingLayout()),
        ("longrope2", None, TrainingLayout(mixed=True)),
        ("longrope2", {"mixed": "false"}, TrainingLayout(mixed=False)),
        ("longrope2", {"per_document_mask_long": "true"},
         TrainingLayout(mixed=True, per_document_mask_long=True)),
    ],
)
def test_only_longrope2_trains_in_mixed_windows(name, overrides, expected):
    assert get_extender(name, overrides).training_layout() == expected


