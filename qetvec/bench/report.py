"""Reports of `qetvec bench` / `qetvec audit` runs: JSON (everything), markdown tables with
every column explained under them, PNG plots (`qetvec.bench.plots`, ``bench`` extra)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qetvec.bench.methods import is_qetvec
from qetvec.bench.plots import by_method, line_plot, plot_mse_vs_bytes, plot_recall_vs_qps
from qetvec.io import write_bytes_atomic

METHOD_NAMES = """Method names. auto: `qetvec.fit_codec`, which measures candidate codes (PQ, QET with a
tree of depth 1 and 2, PCA with bits allocated per group, a random rotation with scalar codes,
residual stages, ...) on held-out training rows and keeps the best for the bytes; its pick is
named after the candidate (e.g. rq8: residual stages of 8-bit codebooks; pca-w2: PCA, groups of
2 components). qet-L<l>S<s>: QET as the paper defines it (arXiv 2407.03637), a swap tree of
depth l (L1: 1 level, 0.5 bit per element) in front of product quantization, s stages; L0
would be plain PQ. The others are FAISS's own codes by their `faiss.index_factory` names: pq
(PQ<M>x<bits>), opq (OPQ<M>,PQ..), rq (RQ<B>x8, residual quantizer, beam 5), rabitq (RaBitQ,
1 bit per element plus per-vector factors), sqtqmse<b> (SQtqmse<b>, TurboQuant's scalar
quantizer at b bits per element; it assumes unit-norm rows), eden<b> (EDEN<b>), sq4 / sq8
(per-dimension scalar quantizers)."""
ANSWER_LEGEND = """Columns. bytes/row: the budget, bytes each row stores (codes read from the encoded arrays;
codebooks and other shared state not counted). The MSE columns give the relative MSE on
held-out rows (lower is better) of: qetvec's pick: MSE, `qetvec.fit_codec`'s pick (named
before the colon); best FAISS code: MSE, the FAISS code with the lowest MSE among those of at
most that many bytes (named before the colon); QET, tree depth 1: MSE, the paper's QET with a
tree of depth 1 ("qet-L1S1"); FAISS PQ: MSE, FAISS's product quantizer. The queries/s columns
come from IVF search with exact re-ranking, nprobe swept, queries/s on 1 thread at recall@10 =
{target:g} interpolated along each index's curve: fastest FAISS at recall {target:g}: queries/s,
the FAISS IVF index with the most queries/s at that recall (its codes before the colon);
qetvec Auto<B>: queries/s (x fastest FAISS), qetvec's IVF index whose codec `fit_codec` picks
on the IVF residuals (its pick may differ from the MSE pick), and QET, tree depth 1: queries/s
(x fastest FAISS), the same for qet-L1S1, each with its queries/s over the fastest FAISS
index's in brackets (> 1: faster at equal recall); "never": the index does not reach that
recall at any nprobe."""
CODEC_COLUMNS = ["target_bytes", "method", "spec", "winner", "bytes_per_row", "mse", "n_train", "note",
                 "encode_rows_per_s_1thread", "encode_ratio_1thread", "encode_ratio_all"]
BUDGET_COLUMNS = ["target_bytes", "bits_per_element", "best_faiss", "best_faiss_bytes", "best_faiss_mse", "auto_mse",
                  "auto_vs_best_faiss", "best_qet", "best_qet_mse", "gaussian_rd_bound", "iid_bound"]
BUDGET_LEGEND = """Columns. target_bytes: the budget B in bytes per row; bits_per_element: 8 B / d.
best_faiss: the FAISS code with the lowest held-out MSE among those with bytes_per_row <= B
(RaBitQ excluded: its sa_decode does not reconstruct the vector, so its MSE means nothing;
compare it on recall); best_faiss_bytes: its bytes per row; best_faiss_mse: its relative MSE.
auto_mse: `fit_codec`'s pick's; auto_vs_best_faiss = auto_mse / best_faiss_mse (< 1: qetvec
better). best_qet: the best qet-L<levels>S<stages> setting at exactly B bytes; best_qet_mse:
its relative MSE. gaussian_rd_bound: the distortion-rate function of a Gaussian with the
held-out rows' covariance (reverse water-filling over its eigenvalues) at R = 8 B / d bits per
element, codes only; a code under it exploits non-Gaussian structure. iid_bound: 4^-R, the
same for i.i.d. Gaussian elements of one variance. Relative MSE: mean ||x - x_hat||^2 / mean
||x - mean||^2 on the held-out rows (lower is better)."""
CODEC_LEGEND = """Columns. target_bytes: the budget B in bytes per row; a code is listed at the smallest budget
it fits and competes at every larger one. method: the name asked for (method names above).
spec: the code as built (a FAISS factory string, or the QET settings). winner: the candidate
`fit_codec` picked. bytes_per_row: read from the encoded array (`codes.shape[1]`), everything a
row stores (RaBitQ's per-vector factors, EDEN's scale, the float16 norm of `-norm` codes)
included; codebooks, rotations and other shared state are not counted. mse: relative MSE,
mean ||x - x_hat||^2 / mean ||x - mean||^2, on the held-out rows (lower is better). n_train:
rows the code was trained on. note: caps, and codes whose MSE means nothing.
encode_rows_per_s_1thread: rows encoded per second on 1 thread; encode_ratio_1thread /
encode_ratio_all: that over faiss.ProductQuantizer's at the same code size on 1 thread / all
threads, timed alternately (> 1: faster; only with --metrics encode). No training time is
shown: on a shared machine it measures the other load as much as the method (result.json
keeps wall and CPU seconds as the cost of this run, not as a comparison)."""
IVF_COLUMNS = ["target_bytes", "method", "spec", "bytes_per_row", "memory_bytes_per_row", "max_recall",
               "nprobe_at_target", "qps_at_target_1thread", "vs_best_faiss_1thread", "vs_pq_1thread",
               "qps_at_target_all", "vs_best_faiss_all", "vs_pq_all"]
IVF_LEGEND = """Columns. target_bytes: the budget in bytes per row; method: the name asked for (method names
above). spec: the index's factory string (`qetvec.index_factory` for qetvec's, whose Auto<B>
runs `fit_codec` on the IVF residuals when the index is trained; `faiss.index_factory` for
FAISS's); every index keeps the float vectors to re-rank ({refine} B/row beside the lists) and
all share one set of coarse centroids. bytes_per_row: bytes per row in the inverted lists (ids
aside). memory_bytes_per_row: bytes per row held in memory, ids aside: the list code, the float
vector and, for qetvec's indexes, which all search with `precompute_rows` on (as FAISS IVF-PQ
uses its precomputed tables), each row's table entries and list term. max_recall: the best
recall@10 over the sweep. nprobe_at_target: the smallest swept nprobe whose recall@10 >=
{target:g}. qps_at_target_1thread / qps_at_target_all: queries/s on 1 thread / on all {threads}
threads at recall@10 = {target:g}, interpolated along the index's Pareto front of (recall,
queries/s) points (log queries/s linear in recall between the two points around {target:g});
empty: never reached. vs_best_faiss_1thread / vs_best_faiss_all: that over the fastest FAISS
index's queries/s at the same recall and thread count (> 1: faster at equal recall; the fastest
FAISS index shows 1); vs_pq_1thread / vs_pq_all: the same against FAISS IVF-PQ. Every index of
a budget is timed at each nprobe round-robin with the others, median of {repeats} runs, in this
process."""
SWEEP_LEGEND = """Columns. nprobe: lists probed per query; then one column per index (method names above),
each cell recall@10 / queries/s on 1 thread at that nprobe; empty: the index had left the sweep
(it had reached recall@10 {target:g} or levelled off)."""
SEARCH_COLUMNS = ["method", "spec", "bytes_per_row", "recall@10", "qps_1thread", "speed_ratio_1thread",
                  "qps_all", "speed_ratio_all"]
SEARCH_LEGEND = """Columns. Flat (exhaustive) search over the codes, no re-ranking. method: the name asked for
(method names above); spec: the code as built;
bytes_per_row: read from the codes; recall@10: share of the exact 10 nearest neighbours found;
qps_1thread / qps_all: queries/s on 1 thread / on all {threads} threads; speed_ratio_1thread /
speed_ratio_all: those over FAISS IndexPQ's with the same code bytes (8-bit groups, when they
divide the dimension), timed alternately with it in this run (> 1: faster than IndexPQ)."""
MATRIX_COLUMNS = ["shape", "bits_per_element", "qet", "no_tree", "pq_float"]
MATRIX_LEGEND = """Columns. The paper's own setting: one matrix compressed under one byte budget for the whole
of it (codebooks included). shape: the matrix's rows and columns; bits_per_element = 8 x budget / (rows x columns). qet: QET with
the reference implementation's defaults (tree depth 3, 2 stages, 10-bit codebooks); no_tree:
the best configuration without the tree over a small grid (1 or 2 stages, 10-bit codebooks);
pq_float: PQ with float32 codebooks. Relative MSE of the whole matrix (lower is better)."""


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


def budget_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per budget: the best FAISS code that fits, qetvec's auto and best QET setting,
    and the Gaussian bounds (see CODEC_LEGEND)."""
    measured = [r for r in result["codecs"] if "skipped" not in r and r["mse_meaningful"]]
    rows = []
    for bound in result["bounds"]:
        size = bound["target_bytes"]
        faiss_rows = [r for r in measured if not is_qetvec(r["method"]) and r["bytes_per_row"] <= size]
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


def _ivf_by_budget(result: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """{budget: its IVF rows that ran, fastest at the target recall (1 thread) first}."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for row in result.get("ivf", []):
        if "skipped" not in row:
            rows.setdefault(row["target_bytes"], []).append(row)
    return {b: sorted(r, key=lambda row: -(row["qps_at_target_1thread"] or 0)) for b, r in sorted(rows.items())}


def _named(row: dict[str, Any] | None, value: str, name: str = "method") -> str:
    """"<name>: <value>" of a row, "" without one."""
    return "" if not row or row.get(value) is None else f"{row.get(name)}: {_fmt(row[value])}"


def answer_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per budget: what the bytes buy, memory (held-out MSE) and search (queries/s at
    the target recall), qetvec's pick beside FAISS's best and the paper's QET (ANSWER_LEGEND)."""
    target = result["options"]["target_recall"]
    codecs = [r for r in result.get("codecs", []) if "skipped" not in r]
    memory = {r["target_bytes"]: r for r in budget_rows(result)} if codecs else {}
    search = _ivf_by_budget(result)
    rows = []
    for budget in sorted(set(memory) | set(search)):
        def mse(method: str) -> dict[str, Any] | None:
            return next((r for r in codecs if r["method"] == method and r["target_bytes"] == budget), None)
        best = memory.get(budget, {})
        ivf = {r["method"]: r for r in search.get(budget, [])}
        fastest = next((r for r in search.get(budget, []) if r["library"] == "faiss"
                        and r["qps_at_target_1thread"] is not None), None)

        def speed(method: str) -> str:
            row = ivf.get(method)
            if row is None:
                return ""
            if row["qps_at_target_1thread"] is None:
                return f"never (best recall {row['max_recall']:.3f})"
            ratio = row.get("vs_best_faiss_1thread")
            return f"{row['qps_at_target_1thread']:.0f}" + (f" ({ratio:.2f}x)" if ratio is not None else "")
        auto = mse("auto")
        rows.append({
            "bytes/row": budget,
            "qetvec's pick: MSE": _named(auto, "mse", "winner"),
            "best FAISS code: MSE": (f"{best['best_faiss']}: {_fmt(best['best_faiss_mse'])}"
                                     if best.get("best_faiss") else ""),
            "QET, tree depth 1: MSE": _fmt((mse("qet-L1S1") or {}).get("mse")),
            "FAISS PQ: MSE": _fmt((mse("pq") or {}).get("mse")),
            f"fastest FAISS at recall {target:g}: queries/s": (
                f"{fastest['spec'].split(',')[-2]}: {fastest['qps_at_target_1thread']:.0f}" if fastest else ""),
            "qetvec Auto<B>: queries/s (x fastest FAISS)": speed("auto"),
            "QET, tree depth 1: queries/s (x fastest FAISS)": speed("qet-L1S1"),
        })
    return rows


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """The nprobe sweep of one budget's IVF indexes: recall@10 and queries/s (1 thread) per
    nprobe, one column per index."""
    nprobes = sorted({point[0] for row in rows for point in row["curve"]})
    table = []
    for nprobe in nprobes:
        line: dict[str, Any] = {"nprobe": nprobe}
        for row in rows:
            point = next((p for p in row["curve"] if p[0] == nprobe), None)
            line[row["method"]] = "" if point is None else f"{point[1]:.3f} / {point[2]:.0f}"
        table.append(line)
    return markdown_table(table, ["nprobe", *(row["method"] for row in rows)])


def _parts_text(parts: dict[str, dict[str, float]]) -> str:
    """" (mse 80 s wall / 95 s CPU, ...)": what each part of the run cost, or ""."""
    shown = ", ".join(f"{name} {t['wall_s']:.0f} s wall / {t['cpu_s']:.0f} s CPU" for name, t in parts.items())
    return f" ({shown})" if shown else ""


def write_reports(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write result.json, result.md and the plots of a `qetvec bench` run; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "result.json", out_dir / "result.md"]
    write_bytes_atomic(paths[0], json.dumps(result, indent=1).encode())
    opt = result["options"]
    parts = [f"# qetvec bench: {result['dataset']}", "", f"Command: `{result['command']}`", "",
             result["setup"], "", f"Machine: {result['machine']}; measured in {result['seconds']:.0f} s"
             + _parts_text(result.get("seconds_by_part", {})) + ".", ""]
    answers = answer_rows(result)
    if answers:
        parts += ["## What you get for your bytes", "", markdown_table(answers, list(answers[0])), "",
                  ANSWER_LEGEND.format(target=result["options"]["target_recall"]), "", METHOD_NAMES, ""]
    if result.get("ivf"):
        parts += [f"## Search: IVF{opt['nlist']} + exact re-ranking, queries/s at recall@10 = {opt['target_recall']:g}",
                  "", "Plot: `ivf_recall_vs_qps.png` (1 thread), `ivf_recall_vs_qps_all_threads.png`.", "",
                  markdown_table([r for rows in _ivf_by_budget(result).values() for r in rows]
                                 + [r for r in result["ivf"] if "skipped" in r], IVF_COLUMNS), "",
                  IVF_LEGEND.format(refine=4 * result["dimension"], target=opt["target_recall"],
                                    threads=result["threads_all"], repeats=opt["repeats"]), ""]
        for budget, rows in _ivf_by_budget(result).items():
            parts += [f"### The sweep at {budget} bytes per row: recall@10 / queries/s (1 thread) per nprobe", "",
                      sweep_table(rows), "", SWEEP_LEGEND.format(target=opt["target_recall"]), ""]
        plot_recall_vs_qps(result, out_dir / "ivf_recall_vs_qps.png")
        plot_recall_vs_qps(result, out_dir / "ivf_recall_vs_qps_all_threads.png", "all")
        paths += [out_dir / "ivf_recall_vs_qps.png", out_dir / "ivf_recall_vs_qps_all_threads.png"]
    if result.get("codecs"):
        n_train = opt["n_train"]
        codecs = [dict(r, note=_codec_note(r, n_train)) if "skipped" not in r else r for r in result["codecs"]]
        parts += ["## Memory: relative MSE on held-out rows, the best FAISS code that fits each budget, qetvec, "
                  "and the Gaussian bounds (lower is better)", "", "Plot: `mse_vs_bytes.png`.", "",
                  markdown_table(budget_rows(result), BUDGET_COLUMNS), "", BUDGET_LEGEND, "",
                  "### Every code (held-out relative MSE, bytes read from the codes)", "",
                  markdown_table(codecs, CODEC_COLUMNS), "", CODEC_LEGEND, ""]
        plot_mse_vs_bytes(result, out_dir / "mse_vs_bytes.png")
        paths.append(out_dir / "mse_vs_bytes.png")
    if "matrix" in result:
        parts += ["## Matrix mode: relative MSE on one real matrix, whole-matrix budget", "",
                  markdown_table([result["matrix"]], MATRIX_COLUMNS), "", MATRIX_LEGEND, ""]
    if result.get("search"):
        parts += ["## Flat search: recall@10 and queries/s (baseline: FAISS IndexPQ, same run)", "",
                  markdown_table(result["search"], SEARCH_COLUMNS), "",
                  SEARCH_LEGEND.format(threads=result["threads_all"]), ""]
        search = [dict(r, bits_per_row=8 * r["bytes_per_row"]) for r in result["search"] if "skipped" not in r]
        line_plot(by_method(search, "bits_per_row", "recall@10"), "bits per row", "recall@10 (higher is better)",
                  out_dir / "recall_vs_bits.png", f"{result['dataset']}: flat search, recall@10 vs bits/row")
        line_plot(by_method(search, "recall@10", "qps_1thread"), "recall@10", "queries/s, 1 thread (log)",
                  out_dir / "recall_vs_qps.png",
                  f"{result['dataset']}: flat search, queries/s vs recall@10 (up and right is better)", logy=True)
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
    methods = list(dict.fromkeys(r["method"] for r in result["matrix"]))  # one order (and colour) in every plot
    for name in result["matrices"]:
        path = out_dir / f"matrix_{name}.png"
        rows = [r for r in result["matrix"] if r["dataset"] == name]
        bounds = {label: sorted({(r["bits_per_element"], r[key]) for r in rows if r.get(key) is not None})
                  for label, key in (("Gaussian R(D) bound", "rd_bound"), ("i.i.d. Gaussian bound 4^-R", "iid_bound"))}
        series = by_method(rows, "bits_per_element", "mse")
        line_plot({method: series.get(method, []) for method in methods},
                  "bits per element (codebooks and side data included)", "relative MSE (lower is better)", path,
                  f"{name}: matrix mode, relative MSE vs bits/element", logy=True,
                  references={label: points for label, points in bounds.items() if points})
        paths.append(path)
    if result["vector"]:
        parts += ["## Vector mode: relative MSE on held-out rows, equal bytes per row", "",
                  markdown_table(result["vector"], ["dataset", "method", "spec", "bits_per_row", "mse"]), ""]
    write_bytes_atomic(paths[1], "\n".join(parts).encode())
    return paths
