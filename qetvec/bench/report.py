"""Reports of `qetvec bench` / `qetvec audit` runs: JSON (everything), markdown tables, PNG
plots (matplotlib, ``bench`` extra)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from qetvec._optional import require
from qetvec.io import write_bytes_atomic

SUMMARY_COLUMNS = ["target_bytes", "method", "mse", "ivf_spec", "nprobe", "recall@10", "reached_target",
                   "qps_1thread", "speed_ratio_1thread"]
CODEC_COLUMNS = ["target_bytes", "method", "spec", "bytes_per_row", "mse", "n_train", "train_s", "train_cpu_s", "note",
                 "encode_rows_per_s_1thread", "encode_ratio_1thread", "encode_ratio_all"]
BUDGET_COLUMNS = ["target_bytes", "bits_per_element", "best_faiss", "best_faiss_bytes", "best_faiss_mse", "auto_mse",
                  "auto_vs_best_faiss", "best_qet", "best_qet_mse", "gaussian_rd_bound", "iid_bound"]
CODEC_LEGEND = """Columns. target_bytes: the budget B in bytes per row; a code is listed at the smallest budget
it fits and competes at every larger one. bytes_per_row: read from the encoded array
(`codes.shape[1]`), everything a row stores (RaBitQ's per-vector factors, EDEN's scale, the
float16 norm of `-norm` codes) included; codebooks, rotations and other shared state are not
counted. mse: relative MSE, mean ||x - x_hat||^2 / mean ||x - mean||^2, on the held-out rows.
n_train / train_s / train_cpu_s: training rows, wall seconds and CPU seconds of the process
(all threads; on a shared machine the wall time also measures the other load). best_faiss: the FAISS code with the lowest MSE
among those with bytes_per_row <= B (RaBitQ excluded: its sa_decode does not reconstruct the
vector, so its MSE means nothing; compare it on recall). auto: `qetvec.fit_codec(x_train,
bytes_per_row=B)`'s winner; auto_vs_best_faiss = auto_mse / best_faiss_mse (< 1: qetvec
better). best_qet: the best qet-L<levels>S<stages> setting at exactly B bytes.
gaussian_rd_bound: the distortion-rate function of a Gaussian with the held-out rows'
covariance (reverse water-filling over its eigenvalues) at R = 8 B / d bits per element,
codes only; a code under it exploits non-Gaussian structure. iid_bound: 4^-R, the same for
i.i.d. Gaussian elements of one variance."""
IVF_COLUMNS = ["method", "spec", "bytes_per_row", "nprobe", "recall@10", "reached_target", "qps_1thread",
               "speed_ratio_1thread", "qps_all", "speed_ratio_all"]
SEARCH_COLUMNS = ["method", "spec", "bytes_per_row", "recall@10", "qps_1thread", "speed_ratio_1thread",
                  "qps_all", "speed_ratio_all"]
PLOT_EXTRA_COLOURS = ["#000080", "#808000", "#008080", "#800000", "#4b0082", "#ff1493"]  # after tab10's ten
MATRIX_COLUMNS = ["shape", "bits_per_element", "qet", "no_tree", "pq_float"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table of `columns`; a skipped row shows its method, budget and reason."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    keys = ("method", "target_bytes", "budget_bytes")
    for row in rows:
        if "skipped" in row:
            size = row.get("target_bytes", row.get("budget_bytes"))
            cells = [_fmt(row.get(c)) if c in keys else "" for c in columns]
            free = next(i for i, c in enumerate(columns) if c not in keys)
            cells[free] = f"skipped @ {size} B: {row['skipped']}"
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (budget, method): held-out MSE beside the IVF operating point."""
    ivf = {(r["target_bytes"], r["method"]): r for r in result.get("ivf", []) if "skipped" not in r}
    keys = dict.fromkeys((r["target_bytes"], r["method"]) for r in result.get("codecs", []) + result.get("ivf", []))
    codecs = {(r["target_bytes"], r["method"]): r for r in result.get("codecs", []) if "skipped" not in r}
    rows = []
    for key in sorted(keys, key=lambda kv: kv[0]):
        point = ivf.get(key, {})
        rows.append({"target_bytes": key[0], "method": key[1], "mse": codecs.get(key, {}).get("mse"),
                     "ivf_spec": point.get("spec"), **{c: point.get(c) for c in SUMMARY_COLUMNS[4:]}})
    return rows


def _is_faiss(method: str) -> bool:
    return method != "auto" and not method.startswith("qet-")


def budget_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per budget: the best FAISS code that fits, qetvec's auto and best QET setting,
    and the Gaussian bounds (see CODEC_LEGEND)."""
    measured = [r for r in result["codecs"] if "skipped" not in r and r["mse_meaningful"]]
    rows = []
    for bound in result["bounds"]:
        size = bound["target_bytes"]
        faiss_rows = [r for r in measured if _is_faiss(r["method"]) and r["bytes_per_row"] <= size]
        best = min(faiss_rows, key=lambda r: r["mse"], default={})
        auto = next((r for r in measured if r["method"] == "auto" and r["target_bytes"] == size), {})
        qet = min((r for r in measured if r["method"].startswith("qet-") and r["target_bytes"] == size),
                  key=lambda r: r["mse"], default={})
        rows.append({**bound, "best_faiss": best.get("spec"), "best_faiss_bytes": best.get("bytes_per_row"),
                     "best_faiss_mse": best.get("mse"), "auto_mse": auto.get("mse"),
                     "auto_vs_best_faiss": auto["mse"] / best["mse"] if auto and best else None,
                     "best_qet": qet.get("spec"), "best_qet_mse": qet.get("mse")})
    return rows


def _codec_note(row: dict[str, Any], n_train: int) -> str | None:
    notes = []
    if not row.get("mse_meaningful", True):
        notes.append("MSE not meaningful: sa_decode does not reconstruct (compare on recall)")
    if row.get("n_train", n_train) < n_train:
        notes.append(f"trained on {row['n_train']} of {n_train} rows (cap)")
    return "; ".join(notes) or None


def _family(method: str) -> str:
    """The plot series of a method: sqtqmse1..4 -> sqtqmse, eden2..4 -> eden, sq4 / sq8 -> sq."""
    match = re.fullmatch(r"(sqtqmse|eden|sq|rabitq)\d(-norm)?", method)
    return match.group(1) + (match.group(2) or "") if match else method


def plot_mse_vs_bytes(result: dict[str, Any], path: Path) -> None:
    """Relative MSE (log) vs bytes per row: one series per method family, the Gaussian bounds
    as lines; distance-only codes (RaBitQ) left out."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in result["codecs"]:
        if "skipped" not in row and row["mse_meaningful"]:
            series.setdefault(_family(row["method"]), []).append((row["bytes_per_row"], row["mse"]))
    bounds = {"Gaussian R(D) bound": [(b["target_bytes"], b["gaussian_rd_bound"]) for b in result["bounds"]],
              "i.i.d. bound 4^-R": [(b["target_bytes"], b["iid_bound"]) for b in result["bounds"]]}
    left_out = sorted({_family(r["method"]) for r in result["codecs"] if "skipped" not in r and not r["mse_meaningful"]})
    title = f"{result['dataset']}: relative MSE vs bytes per row (lower is better)"
    if left_out:
        title += f"\n{', '.join(left_out)} left out: its decode does not reconstruct (see the table)"
    _plot(series, "bytes per row (read from the codes)", "relative MSE on held-out rows (lower is better)", path,
          title, logy=True, references=bounds)


def _plot(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, path: Path, title: str,
          logx: bool = False, logy: bool = False,
          references: dict[str, list[tuple[float, float]]] | None = None) -> None:
    """Save a line plot of named (x, y) point series to `path`, each with its own colour and
    marker, and `references` as black dashed / dotted lines."""
    plt = require("matplotlib.pyplot", "bench")
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    colours = [*plt.get_cmap("tab10").colors, *PLOT_EXTRA_COLOURS]
    for i, (label, points) in enumerate(p for p in series.items() if p[1]):
        ax.plot(*zip(*sorted(points)), marker="os^vD<>ph*XP"[i % 12], color=colours[i % len(colours)],
                linestyle="-" if i < len(colours) else "--", label=label, linewidth=1.2, markersize=6, alpha=0.85)
    for (label, points), style in zip((references or {}).items(), ("--", ":", "-.")):
        ax.plot(*zip(*sorted(points)), linestyle=style, color="black", linewidth=1.2, label=label)
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


def _by_method(rows: list[dict[str, Any]], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    """{method: [(row[x], row[y]), ...]} over the rows that were not skipped and have both."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if "skipped" not in row and row.get(x) is not None and row.get(y) is not None:
            series.setdefault(row["method"], []).append((row[x], row[y]))
    return series


def matrix_text(line: dict[str, Any]) -> str:
    """The matrix-mode line as a one-row markdown table."""
    return markdown_table([line], MATRIX_COLUMNS)


def write_reports(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write result.json, result.md and the plots of a `qetvec bench` run; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "result.json", out_dir / "result.md"]
    write_bytes_atomic(paths[0], json.dumps(result, indent=1).encode())
    parts = [f"# qetvec bench: {result['dataset']}", "", f"Command: `{result['command']}`", "",
             result["setup"], "", f"Machine: {result['machine']}; measured in {result['seconds']:.0f} s.", ""]
    if result.get("ivf"):
        parts += ["## What you get for your bytes (speed ratio > 1: faster than FAISS PQ, same run)", "",
                  markdown_table(summary_rows(result), SUMMARY_COLUMNS), ""]
    if "matrix" in result:
        parts += ["## Matrix mode: relative MSE on one real matrix, whole-matrix budget", "",
                  matrix_text(result["matrix"]), ""]
    if result.get("codecs"):
        n_train = result["options"]["n_train"]
        codecs = [dict(r, note=_codec_note(r, n_train)) if "skipped" not in r else r for r in result["codecs"]]
        parts += ["## Relative MSE on held-out rows: the best FAISS code that fits each budget, qetvec, and the "
                  "Gaussian bounds (lower is better)", "", markdown_table(budget_rows(result), BUDGET_COLUMNS), "",
                  "## Every code (held-out relative MSE, bytes read from the codes)", "",
                  markdown_table(codecs, CODEC_COLUMNS), "", CODEC_LEGEND, ""]
        plot_mse_vs_bytes(result, out_dir / "mse_vs_bytes.png")
        paths.append(out_dir / "mse_vs_bytes.png")
    if result.get("ivf"):
        parts += [f"## IVF + re-ranking at recall@10 >= {result['options']['target_recall']}", "",
                  markdown_table(result["ivf"], IVF_COLUMNS), ""]
        sweeps = {f"{r['method']} @ {r['target_bytes']} B": [tuple(p) for p in r["sweep"]]
                  for r in result["ivf"] if "skipped" not in r}
        _plot(sweeps, "nprobe", "recall@10", out_dir / "ivf_recall_vs_nprobe.png",
              f"{result['dataset']}: IVF + RFlat, recall@10 vs nprobe", logx=True)
        _plot(_by_method(result["ivf"], "bytes_per_row", "qps_1thread"), "bytes per row",
              "queries/s at the operating point (1 thread)", out_dir / "ivf_qps_vs_bytes.png",
              f"{result['dataset']}: IVF + RFlat, queries/s at recall@10 >= target", logy=True)
        paths += [out_dir / "ivf_recall_vs_nprobe.png", out_dir / "ivf_qps_vs_bytes.png"]
    if result.get("search"):
        parts += ["## Flat search: recall@10 and queries/s (baseline: FAISS IndexPQ, same run)", "",
                  markdown_table(result["search"], SEARCH_COLUMNS), ""]
        search = [dict(r, bits_per_row=8 * r["bytes_per_row"]) for r in result["search"] if "skipped" not in r]
        _plot(_by_method(search, "bits_per_row", "recall@10"), "bits per row", "recall@10",
              out_dir / "recall_vs_bits.png", f"{result['dataset']}: recall@10 vs bits/row")
        _plot(_by_method(search, "recall@10", "qps_1thread"), "recall@10", "queries/s (1 thread)",
              out_dir / "recall_vs_qps.png", f"{result['dataset']}: queries/s (1 thread) vs recall@10", logy=True)
        paths += [out_dir / "recall_vs_bits.png", out_dir / "recall_vs_qps.png"]
    write_bytes_atomic(paths[1], "\n".join(parts).encode())
    return paths


def write_audit(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the audit's result.json, result.md and mse-vs-budget plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "result.json", out_dir / "result.md"]
    write_bytes_atomic(paths[0], json.dumps(result, indent=1).encode())
    parts = ["# qetvec audit: QET's claims, measured", "", f"Command: `{result['command']}`", "",
             "Matrices: " + "; ".join(f"{k}: {v}" for k, v in result["matrices"].items()), "",
             "## Claims (matrix mode: whole-matrix budget, codebooks included)", "",
             "tree_pays_ratio = best-qet / best-no-tree over the same search grid (< 1: the tree pays); "
             "rd_bound: Gaussian rate-distortion bound of the matrix's covariance (codes only).", "",
             markdown_table(result["claims"], ["dataset", "bits_per_element", "qet", "qet_pct_of_best_pq_opq",
                                               "best_single_ingredient", "best_qet", "best_no_tree",
                                               "tree_pays_ratio", "transform", "rd_bound"]), "",
             "## Matrix mode: relative MSE on the compressed matrix", "",
             markdown_table(result["matrix"], ["dataset", "bits_per_element", "method", "m", "config", "nbytes",
                                               "budget_bytes", "mse", "rd_bound"]), ""]
    for name in result["matrices"]:
        path = out_dir / f"matrix_{name}.png"
        rows = [r for r in result["matrix"] if r["dataset"] == name]
        rows += [{"method": "Gaussian R(D) bound", "bits_per_element": bpe, "mse": bound}
                 for bpe, bound in sorted({(r["bits_per_element"], r["rd_bound"]) for r in rows})]
        _plot(_by_method(rows, "bits_per_element", "mse"), "bits per element", "relative MSE", path,
              f"{name}: matrix mode, relative MSE vs bits/element", logy=True)
        paths.append(path)
    if result["vector"]:
        parts += ["## Vector mode: relative MSE on held-out rows, equal bytes per row", "",
                  markdown_table(result["vector"], ["dataset", "method", "spec", "bits_per_row", "mse"]), ""]
    write_bytes_atomic(paths[1], "\n".join(parts).encode())
    return paths
