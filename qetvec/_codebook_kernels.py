"""Numba kernels over the m column groups of one matrix at once: k-means, nearest-codeword
assignment and decoding.

A stage's m codebooks are m independent k-means problems on column slices of the same rows;
solving them in one kernel (parallel over groups) replaces m calls into FAISS, whose per-call
overhead dominates on matrices of a few thousand rows. The algorithm is FAISS's
(`faiss::Clustering`): random distinct rows as initial centroids, Lloyd iterations, an empty
cluster re-seeded by splitting a large one with a symmetric 1/1024 perturbation. It stops
early once no assignment changes, which leaves the result unchanged (every later iteration
would be a no-op).
"""
from __future__ import annotations

import numba
import numpy as np

SPLIT_EPS = 1.0 / 1024.0  # FAISS's EPS for splitting a cluster into an empty one
FEW_POINTS = 16  # below this, assignment loops over points (a one-row add), not codewords


@numba.njit(cache=True, fastmath=True, inline="always")
def _nearest(point, book):
    """Index of the codeword of book (k, w) nearest to point (w,) (L2; ties to the lower)."""
    low, best = np.inf, 0
    for c in range(book.shape[0]):
        dist_c = 0.0
        for j in range(point.shape[0]):
            t = point[j] - book[c, j]
            dist_c += t * t
        if dist_c < low:
            low, best = dist_c, c
    return best


@numba.njit(cache=True, fastmath=True)
def _assign(xt, books, codes, best_d, dist):
    """Nearest codeword codes (n,) of the points xt (w, n) among books (k, w).

    Loops run codeword by codeword over all points, so the innermost loop (over points)
    vectorizes with no data-dependent branch (slicing or chunking these loops stops LLVM from
    vectorizing them: 8x slower, measured); best_d and dist (n,) float32 are scratch. Ties go
    to the lower index."""
    w, n = xt.shape
    if n < FEW_POINTS:  # too few points to vectorize over: one point at a time
        for i in range(n):
            codes[i] = _nearest(xt[:, i], books)
        return
    best_d[:] = np.inf
    for c in range(books.shape[0]):
        dist[:] = 0.0
        for j in range(w):
            v = books[c, j]
            for i in range(n):
                t = xt[j, i] - v
                dist[i] += t * t
        for i in range(n):
            closer = dist[i] < best_d[i]
            best_d[i] = min(dist[i], best_d[i])
            codes[i] = c if closer else codes[i]


@numba.njit(cache=True, fastmath=True)
def _lloyd(xt, centroids, niter):
    """Lloyd iterations in place on centroids (k, w) float32 for the points xt (w, n)."""
    k, w = centroids.shape
    n = xt.shape[1]
    codes = np.full(n, -1, np.int64)
    previous = np.empty(n, np.int64)
    best_d = np.empty(n, np.float32)
    dist = np.empty(n, np.float32)
    sums = np.zeros((k, w))
    counts = np.zeros(k, np.int64)
    for _ in range(niter):
        previous[:] = codes
        _assign(xt, centroids, codes, best_d, dist)
        changed = False
        for i in range(n):  # sums and counts follow the points that moved
            if codes[i] != previous[i]:
                changed = True
                counts[codes[i]] += 1
                for j in range(w):
                    sums[codes[i], j] += xt[j, i]
                if previous[i] >= 0:
                    counts[previous[i]] -= 1
                    for j in range(w):
                        sums[previous[i], j] -= xt[j, i]
        if not changed:
            break
        _update(centroids, sums, counts)


@numba.njit(cache=True, inline="always")
def _update(centroids, sums, counts):
    """Lloyd's update in place on centroids (k, w) float32: each non-empty cluster's mean
    sums[c] / counts[c] (sums (k, w) float64, counts (k,) int64); an empty cluster is
    re-seeded by splitting the largest one with a symmetric SPLIT_EPS perturbation."""
    k, w = centroids.shape
    for c in range(k):
        if counts[c] > 0:
            for j in range(w):
                centroids[c, j] = sums[c, j] / counts[c]
    sizes = counts.copy()  # split bookkeeping only: sums and counts stay exact
    for c in range(k):
        if sizes[c] == 0:
            big = np.argmax(sizes)
            for j in range(w):
                sign = 1.0 if j % 2 == 0 else -1.0
                centroids[c, j] = centroids[big, j] * (1.0 + sign * SPLIT_EPS)
                centroids[big, j] = centroids[big, j] * (1.0 - sign * SPLIT_EPS)
            sizes[c] = sizes[big] // 2
            sizes[big] -= sizes[c]


@numba.njit(cache=True)
def update_centroids(x, codes, centroids):
    """`_lloyd`'s update step in place on centroids (k, d) float32 for rows x (n, d)
    float32 assigned to codes (n,) int64 (the assignment step done elsewhere)."""
    k, d = centroids.shape
    sums = np.zeros((k, d))
    counts = np.zeros(k, np.int64)
    for i in range(x.shape[0]):
        counts[codes[i]] += 1
        for j in range(d):
            sums[codes[i], j] += x[i, j]
    _update(centroids, sums, counts)


@numba.njit(cache=True, inline="always")
def _columns(x, rows, a, w):
    """x[rows, a:a + w] transposed: (w, len(rows)) float32, contiguous."""
    xt = np.empty((w, rows.shape[0]), np.float32)
    for i in range(rows.shape[0]):
        for j in range(w):
            xt[j, i] = x[rows[i], a + j]
    return xt


@numba.njit(cache=True, parallel=True)
def kmeans_groups(x, rows, bounds, ksubs, init, niter):
    """Codebooks (m, k_max, w_max) float32, zero-padded past each group's codewords and width.

    x (n, d) float32; rows (s,) int64: the training rows; bounds (m + 1,) int64: group g is
    columns bounds[g]:bounds[g + 1]; ksubs (m,) int64: group g's codewords; init (m, k_max)
    int64: in init[g, :ksubs[g]], positions in `rows` of group g's initial centroids (distinct)."""
    m, k_max = init.shape
    w_max = 0
    for g in range(m):
        w_max = max(w_max, bounds[g + 1] - bounds[g])
    out = np.zeros((m, k_max, w_max), np.float32)
    for g in numba.prange(m):
        a, w, k = bounds[g], bounds[g + 1] - bounds[g], ksubs[g]
        xt = _columns(x, rows, a, w)
        centroids = np.ascontiguousarray(xt[:, init[g, :k]].T)
        _lloyd(xt, centroids, niter)
        out[g, :k, :w] = centroids
    return out


@numba.njit(cache=True, parallel=True)
def assign_groups(x, bounds, books, ksubs):
    """Nearest codeword (n, m) int64 of every row of x (n, d) in every group's codebook
    books (m, k_max, w_max), group g's being books[g, :ksubs[g], :its width]."""
    n, m = x.shape[0], books.shape[0]
    codes = np.empty((m, n), np.int64)
    every_row = np.arange(n)
    for g in numba.prange(m):
        a, w = bounds[g], bounds[g + 1] - bounds[g]
        best_d = np.empty(n, np.float32)
        dist = np.empty(n, np.float32)
        _assign(_columns(x, every_row, a, w), books[g, :ksubs[g], :w], codes[g],
                best_d, dist)
    return np.ascontiguousarray(codes.T)


@numba.njit(cache=True)
def assign_few_rows(x, bounds, books, ksubs):
    """`assign_groups` for fewer than FEW_POINTS rows (a one-row add): the same codes, in
    one serial pass with no scratch arrays and no parallel region to start."""
    n, m = x.shape[0], books.shape[0]
    codes = np.empty((n, m), np.int64)
    for i in range(n):
        for g in range(m):
            a, w = bounds[g], bounds[g + 1] - bounds[g]
            codes[i, g] = _nearest(x[i, a:a + w], books[g, :ksubs[g], :w])
    return codes


@numba.njit(cache=True, parallel=True)
def gather_groups(codes, bounds, books):
    """Decoded rows (n, d) float32: row i's group g is books[g, codes[i, g], :width of g]."""
    n, m = codes.shape
    y = np.empty((n, bounds[m]), np.float32)
    for i in numba.prange(n):
        for g in range(m):
            a, w = bounds[g], bounds[g + 1] - bounds[g]
            y[i, a:a + w] = books[g, codes[i, g], :w]
    return y

