"""Reports of a `qetvec bench` run: JSON (everything), a markdown table, PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qetvec.io import write_bytes_atomic  # noqa: E402

CODEC_COLUMNS = ["method", "spec", "bits_per_row", "mse", "train_s", "encode_rows_per_s_1thread",
                 "encode_ratio_1thread", "encode_ratio_all"]
SEARCH_COLUMNS = ["method", "spec", "bytes_per_row", "recall@10", "qps_1thread", "speed_ratio_1thread",
                  "qps_all", "speed_ratio_all"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table of `columns`; skipped rows show their reason."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['method']} | skipped @ {row.get('target_bytes', row.get('budget_bytes'))} B: {row['skipped']} |"
                         + " |" * (len(columns) - 2))
        else:
            lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], x: str, y: str, path: Path, title: str, logy: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method in dict.fromkeys(r["method"] for r in rows if "skipped" not in r):
        pts = sorted((r[x], r[y]) for r in rows if r["method"] == method and "skipped" not in r and y in r)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write result.json, result.md and the plots into out_dir; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "result.json", out_dir / "result.md"]
    write_bytes_atomic(paths[0], json.dumps(result, indent=1).encode())
    parts = [f"# qetvec bench: {result['dataset']}", "", f"Command: `{result['command']}`", "",
             result["setup"], ""]
    if result.get("codecs"):
        parts += ["## Relative MSE on held-out rows (equal bytes per row)", "",
                  markdown_table(result["codecs"], CODEC_COLUMNS), ""]
        _plot(result["codecs"], "bits_per_row", "mse", out_dir / "mse_vs_bits.png",
              f"{result['dataset']}: relative MSE vs bits/row", logy=True)
        paths.append(out_dir / "mse_vs_bits.png")
    if result.get("search"):
        parts += ["## Flat search: recall@10 and queries/s (baseline: FAISS IndexPQ, same run)", "",
                  markdown_table(result["search"], SEARCH_COLUMNS), ""]
        search = [dict(r, bits_per_row=8 * r["bytes_per_row"]) for r in result["search"] if "skipped" not in r]
        _plot(search, "bits_per_row", "recall@10", out_dir / "recall_vs_bits.png",
              f"{result['dataset']}: recall@10 vs bits/row")
        _plot(search, "recall@10", "qps_1thread", out_dir / "recall_vs_qps.png",
              f"{result['dataset']}: queries/s (1 thread) vs recall@10", logy=True)
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
        rows = [dict(r, bits=r["bits_per_element"]) for r in result["matrix"] if r["dataset"] == name]
        rows += [{"method": "Gaussian R(D) bound", "bits": bpe, "mse": bound}
                 for bpe, bound in sorted({(r["bits"], r["rd_bound"]) for r in rows})]
        path = out_dir / f"matrix_{name}.png"
        _plot(rows, "bits", "mse", path, f"{name}: matrix mode, relative MSE vs bits/element", logy=True)
        paths.append(path)
    if result["vector"]:
        parts += ["## Vector mode: relative MSE on held-out rows, equal bytes per row", "",
                  markdown_table(result["vector"], ["dataset", "method", "spec", "bits_per_row", "mse"]), ""]
    write_bytes_atomic(paths[1], "\n".join(parts).encode())
    return paths


def write_rows_result(result: dict[str, Any], title: str, columns: list[str], out_dir: Path) -> str:
    """Write result.json and a result.md titled `title` with result["rows"] as a table of
    `columns` (plus result["command"] and result["setup"]); return the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / "result.json", json.dumps(result, indent=1).encode())
    table = markdown_table(result["rows"], columns)
    write_bytes_atomic(out_dir / "result.md", f"# {title}\n\nCommand: `{result['command']}`\n\n"
                       f"{result['setup']}\n\n{table}\n".encode())
    return table
