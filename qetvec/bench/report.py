"""Reports of `qetvec bench` / `qetvec audit` runs: JSON (everything), markdown tables, PNG
plots (matplotlib, ``bench`` extra)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qetvec._optional import require
from qetvec.io import write_bytes_atomic

SUMMARY_COLUMNS = ["target_bytes", "method", "mse", "ivf_spec", "nprobe", "recall@10", "reached_target",
                   "qps_1thread", "speed_ratio_1thread"]
CODEC_COLUMNS = ["method", "spec", "bits_per_row", "mse", "train_s", "encode_rows_per_s_1thread",
                 "encode_ratio_1thread", "encode_ratio_all"]
IVF_COLUMNS = ["method", "spec", "bytes_per_row", "nprobe", "recall@10", "reached_target", "qps_1thread",
               "speed_ratio_1thread", "qps_all", "speed_ratio_all"]
SEARCH_COLUMNS = ["method", "spec", "bytes_per_row", "recall@10", "qps_1thread", "speed_ratio_1thread",
                  "qps_all", "speed_ratio_all"]
MATRIX_COLUMNS = ["shape", "bits_per_element", "qet", "no_tree", "pq_float"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table of `columns`; skipped rows show their reason."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if "skipped" in row:
            size = row.get("target_bytes", row.get("budget_bytes"))
            lines.append(f"| {row['method']} | skipped @ {size} B: {row['skipped']} |"
                         + " |" * (len(columns) - 2))
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


def _plot(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, path: Path, title: str,
          logx: bool = False, logy: bool = False) -> None:
    """Save a line plot of named (x, y) point series to `path`."""
    plt = require("matplotlib.pyplot", "bench")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, points in series.items():
        if points:
            ax.plot(*zip(*sorted(points)), marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
    if result.get("codecs") or result.get("ivf"):
        parts += ["## What you get for your bytes (speed ratio > 1: faster than FAISS PQ, same run)", "",
                  markdown_table(summary_rows(result), SUMMARY_COLUMNS), ""]
    if "matrix" in result:
        parts += ["## Matrix mode: relative MSE on one real matrix, whole-matrix budget", "",
                  matrix_text(result["matrix"]), ""]
    if result.get("codecs"):
        parts += ["## Relative MSE on held-out rows (equal bytes per row)", "",
                  markdown_table(result["codecs"], CODEC_COLUMNS), ""]
        _plot(_by_method(result["codecs"], "bits_per_row", "mse"), "bits per row", "relative MSE",
              out_dir / "mse_vs_bits.png", f"{result['dataset']}: relative MSE vs bits/row", logy=True)
        paths.append(out_dir / "mse_vs_bits.png")
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
             "## auto (`compress_matrix(x, budget)`) against the best no-tree configuration and the bounds", "",
             "rd_bound: Gaussian R(D) of the covariance of the side where it has full rank (rd_side); "
             "iid_bound: 4^-R. Ratios are auto's MSE over each.", "",
             markdown_table(result["claims"], ["dataset", "bits_per_element", "auto", "auto_method", "best_no_tree",
                                               "auto_vs_best_no_tree", "rd_bound", "auto_vs_rd_bound", "iid_bound",
                                               "auto_vs_iid_bound"]), "",
             "Bounds computed on: " + "; ".join(sorted({f"{r['dataset']}: {r['rd_side']}" for r in result["matrix"]})),
             "", "Summary: " + ", ".join(f"{k} {v}" for k, v in result.get("auto_summary", {}).items()), "",
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
