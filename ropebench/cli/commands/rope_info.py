"""`ropebench rope-info MODEL`: a model's RoPE from its config.json alone (no weights loaded).

Prints the base, head and rotary dims, the pretrained window, the critical pair indices d_tcd and
d10_tcd, and the period of every pair. With `--method` and `--target-length` the table gains the
method's per-pair factors for that target. A config with longrope scaling (Phi-3, a released
LongRoPE2 config, a model `extend` wrote) shows its short and long factors and their LongRoPE2
decomposition: the largest pair c below which f_i = f_c^(i/c), the fit residual, f_c / s, the
upper group's range beside d_tcd and d10_tcd, and the attention factor.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ropebench.cli.commands.arguments import add_set_option
from ropebench.run.overrides import PARAMS

TAKES = (PARAMS,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument("--method", default=None, help="also show this extender's factors")
    parser.add_argument("--target-length", type=int, default=None, help="target for --method")
    add_set_option(parser, TAKES)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ropebench.errors import RopebenchError
    from ropebench.methods.base import get_extender
    from ropebench.model.load import load_config_dict
    from ropebench.rope.spec import spec_from_config_dict
    from ropebench.run.overrides import parse_set

    params = parse_set(args.overrides, TAKES, "rope-info").params
    if (args.method is None) != (args.target_length is None):
        raise RopebenchError("--method and --target-length go together; give both or neither")
    if params and args.method is None:
        raise RopebenchError("params.KEY settings configure a --method; give --method NAME "
                             "--target-length N")
    config = load_config_dict(args.model)
    spec = spec_from_config_dict(config)
    configured = _configured_scaling(config, args.model)
    longrope = _longrope_view(spec, configured["rope_parameters"], configured[
        "max_position_embeddings"]) if configured else None
    scaling = None
    if args.method is not None:
        extender = get_extender(args.method, params)
        scaling = extender.rescale(spec, args.target_length)

    layers = _layer_rows(config, spec)
    if args.json:
        info = {**_json_info(spec, scaling, configured, longrope), "layers": layers}
        print(json.dumps(info, indent=2))
        return 0
    _print_text(spec, scaling, configured, longrope)
    _print_layers(layers, args.method)
    return 0


def _json_info(spec, scaling, configured: dict | None, longrope: dict | None) -> dict:
    from ropebench.rope.math import critical_index, critical_index_10

    fields = ("model_type", "rope_type", "base", "head_dim", "rotary_dim",
              "partial_rotary_factor", "window")
    info = {
        **{k: getattr(spec, k) for k in fields},
        "n_pairs": spec.n_pairs,
        "d_tcd": critical_index(spec),
        "d10_tcd": critical_index_10(spec),
        "periods": spec.periods(),
    }
    if scaling is not None:
        info["scaling"] = scaling.to_dict()
    if configured is not None:
        info["configured"] = configured
    if longrope is not None:
        info["longrope"] = longrope
    return info


def _print_text(spec, scaling, configured: dict | None, longrope: dict | None) -> None:
    from ropebench.rope.math import critical_index, critical_index_10

    d_tcd, d10_tcd = critical_index(spec), critical_index_10(spec)
    print(f"model type        {spec.model_type} (rope_type {spec.rope_type})")
    print(f"base              {spec.base:g}")
    print(f"head dim          {spec.head_dim}")
    print(
        f"rotary dim        {spec.rotary_dim} (partial_rotary_factor {spec.partial_rotary_factor:g},"
        f" {spec.n_pairs} pairs)"
    )
    print(f"window L          {spec.window}" + ("  (pretrained)" if configured else ""))
    if configured is not None:
        params = configured["rope_parameters"]
        extra = {k: v for k, v in params.items() if k not in ("rope_type", "rope_theta")
                 and not isinstance(v, list)}
        print(f"configured        {configured.get('method') or 'extended'}: rope_type "
              f"{params.get('rope_type')}, rope_theta {params.get('rope_theta')}, "
              f"max_position_embeddings {configured['max_position_embeddings']}"
              + (f", {', '.join(f'{k}={v}' for k, v in extra.items())}" if extra else ""))
    print(f"d_tcd             {d_tcd}  (first pair with period >= L)")
    print(f"d10_tcd           {d10_tcd}  (first pair with fewer than 10 periods in L)")
    if longrope is not None:
        _print_longrope(longrope)
    if scaling is not None:
        print(
            f"{scaling.method:<17} target {scaling.target_length}, "
            f"s = {scaling.target_length / spec.window:g}, m = {scaling.attention_factor:.6f}"
        )
    _print_pairs(spec, scaling, longrope, d_tcd, d10_tcd)


def _print_pairs(spec, scaling, longrope: dict | None, d_tcd: int, d10_tcd: int) -> None:
    """One line per pair: its period, periods in the window and every factor list shown."""
    header = f"{'pair':>4}  {'period':>12}  {'periods in L':>12}"
    if longrope is not None:
        header += f"  {'short':>10}  {'long':>10}"
    if scaling is not None:
        header += f"  {'factor':>10}"
    print("\n" + header)
    for i, period in enumerate(spec.periods()):
        line = f"{i:>4}  {period:>12.1f}  {spec.window / period:>12.3f}"
        if longrope is not None:
            line += f"  {longrope['short_factor'][i]:>10.4f}  {longrope['long_factor'][i]:>10.4f}"
        if scaling is not None:
            line += f"  {scaling.long_factor[i]:>10.4f}"
        marks = [name for name, index in (("d10_tcd", d10_tcd), ("d_tcd", d_tcd)) if index == i]
        print(line + (f"  <- {', '.join(marks)}" if marks else ""))


def _configured_scaling(config: dict, model: str) -> dict | None:
    """The RoPE scaling config.json applies on top of the pretrained RoPE (an extended model), or
    None for a model as pretrained."""
    from pathlib import Path

    from ropebench.model.load import resolve_model_path
    from ropebench.rope.spec import PRETRAINED_KEY, configured_rope

    params = configured_rope(config)
    params.pop("max_position_embeddings", None)  # shown on its own
    rope_type = params["rope_type"]
    if PRETRAINED_KEY not in config and rope_type == "default":
        return None
    pretrained = config.get(PRETRAINED_KEY) or {}
    theta_changed = pretrained and params.get("rope_theta") not in (None, pretrained.get("base"))
    window_changed = pretrained and config.get("max_position_embeddings") != pretrained.get("window")
    if rope_type == "default" and not (theta_changed or window_changed):
        return None
    method = None
    scaling_file = Path(resolve_model_path(model)) / "ropebench_scaling.json"
    if scaling_file.is_file():
        try:
            method = json.loads(scaling_file.read_text()).get("method")
        except (OSError, ValueError, AttributeError):
            method = None
    return {"method": method, "rope_parameters": params,
            "max_position_embeddings": config.get("max_position_embeddings")}


def _longrope_view(spec, params: dict, target) -> dict | None:
    """A longrope config's factor lists, attention factor and LongRoPE2 decomposition, or None."""
    from ropebench.errors import RopebenchError
    from ropebench.rope.decompose import decompose
    from ropebench.rope.math import longrope_mscale
    from ropebench.rope.scaling import validate_factors

    if params.get("rope_type") != "longrope":
        return None
    try:
        long = validate_factors(spec, params.get("long_factor") or [])
        short = validate_factors(spec, params.get("short_factor") or [1.0] * spec.n_pairs)
    except RopebenchError as err:
        raise RopebenchError(f"the config's longrope factors are unusable: {err}") from err
    scale = (float(target) if target else spec.window) / spec.window
    given = params.get("attention_factor")
    parts = decompose(spec, long, scale)
    return {
        "short_factor": list(short),
        "long_factor": list(long),
        "scale": scale,
        "attention_factor": float(given) if given is not None else longrope_mscale(scale, spec.window),
        "attention_factor_given": given is not None,
        "decomposition": {**asdict(parts), "offset": parts.offset},
    }


def _print_longrope(view: dict) -> None:
    parts, s = view["decomposition"], view["scale"]
    source = "from the config" if view["attention_factor_given"] else "sqrt(1 + ln s / ln L), not in the config"
    print(f"attention factor  {view['attention_factor']:.6f}  ({source}; s = {s:g})")
    short = view["short_factor"]
    print("short factors     " + ("all 1" if all(f == 1 for f in short)
                                  else f"{min(short):.4g} .. {max(short):.4g}"))
    long = view["long_factor"]
    print(f"long factors      {min(long):.4g} .. {max(long):.4g}")
    c = parts["critical_index"]
    if c < 2 or parts["anchor"] <= 1:
        print(f"decomposition     no NTK lower group (largest c with f_i = f_c^(i/c) below it: {c}, "
              f"f_c = {parts['anchor']:.4g}): not LongRoPE2-shaped")
        return
    print(f"decomposition     c = {c}: f_i = f_c^(i/c) for pairs 0..{c - 1} "
          f"(max residual {parts['residual']:.2g}); f_c = {parts['anchor']:.4g} = "
          f"{parts['anchor_over_scale']:.4g} s")
    print(f"upper group       pairs {c}..{len(long) - 1}: {parts['upper_min']:.4g} .. "
          f"{parts['upper_max']:.4g} ({parts['upper_min'] / s:.4g} s .. {parts['upper_max'] / s:.4g} s)")
    print(f"critical pair     c = {c} vs d_tcd = {parts['d_tcd']} (c - d_tcd = {parts['offset']:+d}), "
          f"d10_tcd = {parts['d10_tcd']}")


def _layer_rows(config: dict, spec) -> list[dict]:
    """One row per layer type: its layers, base, pairs, d_tcd and what a method changes."""
    import dataclasses

    from ropebench.rope.layout import change_of, layer_groups, normalized_config
    from ropebench.rope.math import critical_index

    rows = []
    for group in layer_groups(normalized_config(config), spec):
        d_tcd = None
        if group.base is not None:
            # A local layer never sees a distance past its window: that is its L.
            seen = min(spec.window, group.span or spec.window)
            d_tcd = critical_index(dataclasses.replace(
                spec, base=group.base, rotary_dim=group.rotary_dim, window=seen))
        rows.append({"type": group.name, "layers": list(group.layers), "base": group.base,
                     "pairs": group.n_pairs, "d_tcd": d_tcd, "change": change_of(group)})
    return rows


def _print_layers(rows: list[dict], method: str | None) -> None:
    print(f"\nlayers            {sum(len(r['layers']) for r in rows)} in {len(rows)} group(s)")
    print(f"  {'type':<20} {'layers':<12} {'base':>10} {'pairs':>5} {'d_tcd':>5}  "
          f"change by {method or 'a method'}")
    for r in rows:
        span = r["layers"]
        where = ",".join(map(str, span)) if len(span) <= 4 else f"{len(span)} layers"
        base = "-" if r["base"] is None else f"{r['base']:g}"
        d_tcd = "-" if r["d_tcd"] is None else r["d_tcd"]
        print(f"  {r['type']:<20} {where:<12} {base:>10} {r['pairs']:>5} {d_tcd:>5}  {r['change']}")
