"""Plots of `qetvec bench` / `qetvec audit` runs (matplotlib, ``bench`` extra): every series
with its own colour and marker, axes with units, titles that say which way is better."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qetvec._optional import require
from qetvec.bench.methods import family, is_qetvec
from qetvec.bench.tradeoff import pareto_front

EXTRA_COLOURS = ["#000080", "#808000", "#008080", "#800000", "#4b0082", "#ff1493"]  # after tab10's ten
MARKERS = "os^vD<>ph*XP"


def _colours(plt: Any) -> list[Any]:
    return [*plt.get_cmap("tab10").colors, *EXTRA_COLOURS]


def line_plot(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, path: Path, title: str,
              logx: bool = False, logy: bool = False,
              references: dict[str, list[tuple[float, float]]] | None = None,
              baselines: frozenset[str] = frozenset()) -> None:
    """Save a line plot of named (x, y) point series to `path`, each with its own colour and
    marker (the n-th series of `series` always gets the n-th, so plots that list the same
    names in the same order colour them alike), and `references` as black dashed / dotted lines
    (a reference of one point, which a line cannot show, as a black "_" / "x" / "+" mark).
    Series named in `baselines` are drawn dashed with larger hollow markers, so that a point of
    another series at the same place still shows inside them."""
    plt = require("matplotlib.pyplot", "bench")
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    colours = _colours(plt)
    for i, (label, points) in enumerate(series.items()):  # an empty series keeps its colour unused
        if not points:
            continue
        colour, hollow = colours[i % len(colours)], label in baselines
        ax.plot(*zip(*sorted(points)), marker=MARKERS[i % len(MARKERS)], color=colour,
                linestyle="--" if hollow or i >= len(colours) else "-", label=label, linewidth=1.2,
                markersize=10 if hollow else 6, markerfacecolor="none" if hollow else colour,
                markeredgewidth=1.5 if hollow else 1.0, zorder=2 if hollow else 3)
    for (label, points), style, mark in zip((references or {}).items(), ("--", ":", "-."), "_x+"):
        ax.plot(*zip(*sorted(points)), linestyle=style, color="black", linewidth=1.2, label=label,
                marker=mark if len(points) == 1 else None, markersize=12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def by_method(rows: list[dict[str, Any]], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    """{method: [(row[x], row[y]), ...]} over the rows that were not skipped and have both."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if "skipped" not in row and row.get(x) is not None and row.get(y) is not None:
            series.setdefault(row["method"], []).append((row[x], row[y]))
    return series


def plot_mse_vs_bytes(result: dict[str, Any], path: Path) -> None:
    """Relative MSE (log) vs bytes per row: one series per method family, the Gaussian bounds
    as lines; distance-only codes (RaBitQ) left out."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in result["codecs"]:
        if "skipped" not in row and row["mse_meaningful"]:
            name = family(row["method"])
            label = ("qetvec fit_codec's pick (auto)" if name == "auto" else f"qetvec {name}" if is_qetvec(name)
                     else f"FAISS {name}" + (" (a point per bit width)" if name != row["method"] else ""))
            series.setdefault(label, []).append((row["bytes_per_row"], row["mse"]))
    curve = result.get("bound_curve", result["bounds"])
    bounds = {"Gaussian R(D) bound": [(b["target_bytes"], b["gaussian_rd_bound"]) for b in curve],
              "i.i.d. bound 4^-R": [(b["target_bytes"], b["iid_bound"]) for b in curve]}
    left_out = sorted({family(r["method"]) for r in result["codecs"] if "skipped" not in r and not r["mse_meaningful"]})
    title = f"{result['dataset']}: relative MSE vs bytes per row (lower is better)"
    if left_out:
        title += f"\n{', '.join(left_out)} left out: its decode does not reconstruct (see the table)"
    line_plot(series, "bytes per row (read from the codes)", "relative MSE on held-out rows (log; lower is better)",
              path, title, logy=True, references=bounds,
              baselines=frozenset(label for label in series if label.startswith("FAISS")))


def _ivf_label(row: dict[str, Any], threads: str, target: float) -> str:
    """"qetvec Auto10 (picked rq8): 2268 q/s at 0.9, 0.63x PQ", "FAISS RaBitQ: never 0.9 (best
    0.835)": the library, the codes in the lists (the factory string without IVF and RFlat)
    and the queries/s at the target recall (the star) over FAISS IVF-PQ's."""
    codec = "+".join(p for p in row["spec"].split(",") if not p.startswith("IVF") and p != "RFlat")
    picked = f" (picked {row['winner']})" if row.get("winner") else ""
    qps, ratio = row[f"qps_at_target_{threads}"], row.get(f"vs_pq_{threads}")
    if qps is None:
        speed = f"never {target:g} (best {row['max_recall']:.3f})"
    else:
        speed = f"{qps:.0f} q/s at {target:g}" + (f", {ratio:.2f}x PQ" if ratio is not None and row["method"] != "pq" else "")
    return f"{'qetvec' if row['library'] == 'qetvec' else 'FAISS'} {codec}{picked}: {speed}"


def plot_recall_vs_qps(result: dict[str, Any], path: Path, threads: str = "1thread") -> None:
    """Queries/s (log) vs recall@10 of every IVF index, one panel per budget: each index's
    Pareto front over the nprobe sweep, the target recall as a vertical line, a star where
    each front crosses it (the interpolated queries/s the tables compare)."""
    plt = require("matplotlib.pyplot", "bench")
    rows = [r for r in result["ivf"] if "skipped" not in r]
    budgets = sorted({r["target_bytes"] for r in rows})
    target = result["options"]["target_recall"]
    column = 2 + ("1thread", "all").index(threads)
    colours, kinds = _colours(plt), list(dict.fromkeys(family(r["method"]) for r in rows))
    fig, axes = plt.subplots(1, len(budgets), figsize=(6.4 * len(budgets), 5.6), squeeze=False, sharey=True)
    for ax, budget in zip(axes[0], budgets):
        for row in (r for r in rows if r["target_bytes"] == budget):
            i = kinds.index(family(row["method"]))
            ours = row["library"] == "qetvec"
            front = pareto_front([(p[1], p[column]) for p in row["curve"]])
            ax.plot(*zip(*front), marker=MARKERS[i % len(MARKERS)], color=colours[i % len(colours)],
                    linestyle="-" if ours else "--", linewidth=2.0 if ours else 1.2, markersize=5,
                    label=_ivf_label(row, threads, target))
            crossing = row[f"qps_at_target_{threads}"]
            if crossing is not None:
                ax.plot([target], [crossing], marker="*", markersize=13, color=colours[i % len(colours)],
                        markeredgecolor="black", linestyle="none")
        ax.axvline(target, color="black", linestyle=":", linewidth=1.2, label=f"recall@10 = {target:g}")
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@10 (exact re-ranking of {result['options']['k_factor'] * 10:g} candidates)")
        ax.set_title(f"{budget} bytes per row in the lists")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7.5, loc="lower left")
    thread_text = "1 thread" if threads == "1thread" else f"{result['threads_all']} threads"
    axes[0][0].set_ylabel(f"queries/s, {thread_text} (log)")
    fig.suptitle(f"{result['dataset']}: IVF{result['options']['nlist']} over nprobe, queries/s vs recall@10 "
                 f"(up and right is better)\nsolid: qetvec, dashed: FAISS; each line one index's Pareto front over "
                 f"nprobe; star: where it crosses recall {target:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
