"""The report's figures (matplotlib, Agg backend), each returned as a PNG `data:` URI.

Embedding the PNGs keeps the HTML a single file that opens offline.
"""

from __future__ import annotations

import base64
import io
import math

import pandas as pd

from ropebench.reports.results import RunResults


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def to_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _log_y(ax) -> None:
    """A log y axis labelled with plain numbers (20, 30, 100) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter

    def sparse(value: float, _) -> str:
        # Across decades only 2x and 5x are labelled: every minor tick would crowd the axis.
        low, high = ax.get_ylim()
        lead = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
        return f"{value:g}" if high < 10 * low or lead in (2, 5) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(sparse))


def _colors(results: RunResults) -> dict[str, tuple]:
    cmap = _pyplot().get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(results.labels)}


def _line(ax, xs: list[int], values: pd.Series, method: str, color) -> None:
    """One method's scores over `xs` with its 95% interval as a band and error bars."""
    ys = [float(values[str(x)]) for x in xs]
    ax.plot(xs, ys, marker="o", label=method, color=color)
    low = [float(values[f"{x} low"]) for x in xs]
    high = [float(values[f"{x} high"]) for x in xs]
    if len(xs) > 1:
        ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
    ax.errorbar(xs, ys, yerr=[[max(0.0, y - lo) for y, lo in zip(ys, low, strict=True)],
                              [max(0.0, hi - y) for y, hi in zip(ys, high, strict=True)]],
                fmt="none", ecolor=color, capsize=3, linewidth=1)


def by_length(table: pd.DataFrame, results: RunResults, *, title: str, ylabel: str,
               log_y: bool = False, ylim: tuple[float, float] | None = None,
               references: list[tuple[str, dict[int, float]]] = ()) -> str | None:
    """One line per method over context length with its 95% interval as a band (the companion
    `L low` / `L high` columns of a `cells.wide` frame), the pretrained window marked;
    `references`: (label, {length: value}) lines drawn dashed (published numbers)."""
    if table.empty:
        return None
    lengths = [c for c in table.columns if isinstance(c, str) and c.isdigit()]
    plt = _pyplot()
    colors = _colors(results)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for method, values in table.iterrows():
        xs = [int(length) for length in lengths if pd.notna(values[length])]
        if not xs:
            continue
        _line(ax, xs, values, method, colors.get(method))
    for label, values in references:
        xs = sorted(values)
        ax.plot(xs, [values[x] for x in xs], linestyle="--", marker="x", color="black",
                linewidth=1, label=label)
    window = results.spec.get("window")
    if window:
        ax.axvline(window, color="grey", linestyle=":", label=f"window {window}")
    ax.set_xscale("log", base=2)
    ticks = sorted({int(c) for c in lengths} | {x for _, values in references for x in values})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    if log_y:
        _log_y(ax)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set(title=title, xlabel="context length (tokens)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def heatmaps(results: RunResults, grids: dict[str, pd.DataFrame]) -> str | None:
    """Heatmaps (depth x length), one per method, side by side on one colour scale."""
    if not grids:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids) + 1, 3.4), squeeze=False,
                             sharey=True)
    image = None
    for ax, (method, grid) in zip(axes[0], grids.items(), strict=True):
        # Same vmin/vmax everywhere so colours compare across methods.
        image = ax.imshow(grid.values, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_title(method, fontsize=9)
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns], rotation=45, fontsize=7)
        ax.set_yticks(range(len(grid.index)), [f"{d:.0f}%" for d in grid.index], fontsize=7)
        ax.set_xlabel("length")
    axes[0][0].set_ylabel("depth")
    fig.colorbar(image, ax=axes[0].tolist(), label="score", shrink=0.85)
    return to_data_uri(fig)


def factors_figure(results: RunResults) -> str | None:
    """Rescale factor per RoPE pair for every method, critical indices marked."""
    scalings = {m.label: m.scaling for m in results.methods if m.scaling}
    if not scalings:
        return None
    plt = _pyplot()
    colors = _colors(results)
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    for label, scaling in scalings.items():
        factors = scaling["long_factor"]
        ax.plot(range(len(factors)), factors, label=label, color=colors.get(label), linewidth=1.4)
        if scaling.get("critical_index") is not None:
            c = int(scaling["critical_index"])
            ax.axvline(c, color=colors.get(label), linestyle="--", linewidth=0.9)
    theory = _theoretical_critical(results.spec)
    if theory is not None:
        ax.axvline(theory, color="black", linestyle=":", label=f"d_tcd = {theory}")
    _log_y(ax)
    ax.set(title=f"Rescale factors per RoPE pair (target {results.target_length})",
           xlabel="pair index i", ylabel="factor f_i (inv_freq_i = theta_i / f_i)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def _theoretical_critical(spec: dict) -> int | None:
    if not spec:
        return None
    from ropebench.rope.math import critical_index
    from ropebench.rope.spec import RopeSpec

    return critical_index(RopeSpec(**spec))


def fitness_figure(results: RunResults) -> str | None:
    """Best fitness per generation of every searched method, with the analytic methods' fitness on
    the same documents as dashed lines: whether the search beat them is the question it answers."""
    searched = [m for m in results.methods if m.fitness_history]
    if not searched:
        return None
    plt = _pyplot()
    colors = _colors(results)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for m in searched:
        history = m.fitness_history
        ax.plot(range(len(history)), history, marker="o", label=m.label, color=colors.get(m.label))
        for name, value in m.baseline_fitness.items():
            if math.isfinite(value):
                ax.axhline(value, linestyle="--", linewidth=1, color=colors.get(name, "0.5"),
                           label=f"{name} factors ({m.label}'s documents)")
    values = [v for m in searched for v in [*m.fitness_history, *m.baseline_fitness.values()]
              if math.isfinite(v) and v > 0]
    if values and max(values) > 3 * min(values):
        _log_y(ax)  # PI's needle-PPL can be several times the others'
    ax.set(title="Search: best fitness per generation", xlabel="generation",
           ylabel="fitness (lower is better)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def loss_figure(results: RunResults) -> str | None:
    trained = {m.label: m.losses for m in results.methods if m.losses}
    if not trained:
        return None
    plt = _pyplot()
    colors = _colors(results)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for label, losses in trained.items():
        steps, values = zip(*losses, strict=True)
        ax.plot(steps, values, label=label, color=colors.get(label))
    finite = [v for losses in trained.values() for _, v in losses if math.isfinite(v)]
    if finite and max(finite) / max(min(finite), 1e-9) > 20:
        _log_y(ax)
    ax.set(title="Training loss", xlabel="step", ylabel="loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def retention_figure(results: RunResults) -> str | None:
    """Long-context score (at the longest length) against short-context retention (at the original
    window), one point per method with both 95% intervals: the two halves of the claim at once."""
    from ropebench.reports.retention import RETAINED, retentions

    view = next((r for r in retentions(results) if r.long is not None and r.long != r.short), None)
    if view is None:
        return None
    plt = _pyplot()
    colors = _colors(results)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    table, column = view.table, view.long_column
    for method in table.index:
        x, y = table.loc[method, RETAINED], table.loc[method, column]
        if pd.isna(x) or pd.isna(y):
            continue
        x_low, x_high = table.loc[method, f"{RETAINED} low"], table.loc[method, f"{RETAINED} high"]
        y_low, y_high = table.loc[method, f"{column} low"], table.loc[method, f"{column} high"]
        # An unbounded upper end (the original model scored 0 within its interval) is drawn to 400%.
        xerr = None if pd.isna(x_low) else [[x - x_low], [min(x_high, 400.0) - x]]
        yerr = None if pd.isna(y_low) else [[max(0.0, y - y_low)], [max(0.0, y_high - y)]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", capsize=3, color=colors.get(method),
                    label=method + (" (original model)" if method == results.baseline else ""))
    ax.axvline(100, color="grey", linestyle=":", linewidth=1)
    ax.set(title=f"{view.section.title}: long context vs short context kept",
           xlabel=f"retained at {view.short} tokens (% of the original model)",
           ylabel=f"score at {view.long} tokens "
                  f"({'0-100' if view.section.unit == 'fraction' else view.section.unit})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def all_figures(results: RunResults) -> dict[str, str | None]:
    """The run-wide figures (factors, search fitness, training loss); sections draw their own."""
    return {
        "factors": factors_figure(results),
        "fitness": fitness_figure(results),
        "loss": loss_figure(results),
        "retention": retention_figure(results),
    }
