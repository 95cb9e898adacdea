"""Numba kernels of trellis-coded quantization (`qetvec.trellis` states the conventions)."""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _nearest_in_subset(levels, lo, hi, pos, x, r):
    """Index in [lo, hi) of the level nearest x among those with (index - lo) % 4 == r, given
    pos = first index whose level is >= x (levels[lo:hi] sorted)."""
    best, best_err = -1, np.inf
    below = pos - 1 - ((pos - 1 - lo - r) % 4)  # largest index < pos in the subset
    if below >= lo:
        best, best_err = below, (x - levels[below]) ** 2
    above = below + 4
    if above < hi:
        err = (x - levels[above]) ** 2
        if err < best_err:
            best, best_err = above, err
    return best, best_err


@numba.njit(cache=True, inline="always")
def _step(cost, new, cand, cand_err, next_state, chosen_t, came_from_t, base):
    """One position of the trellis: from the path costs `cost` (S,) into each state, the
    cheapest way into every next state, taking candidate cand[r] (its error cand_err[r]; inf:
    the subset has none) of the subset r the branch allows; records the choice (cand[r] - base) and the state
    it came from, and leaves the new costs in `cost`."""
    new[:] = np.inf
    for s in range(next_state.shape[0]):
        if cost[s] == np.inf:
            continue
        u = s & 1
        for z1 in range(2):
            r = u + 2 * z1
            if cand_err[r] == np.inf:
                continue
            c = cost[s] + cand_err[r]
            nxt = next_state[s, z1]
            if c < new[nxt]:
                new[nxt] = c
                chosen_t[nxt] = cand[r] - base
                came_from_t[nxt] = s
    cost[:] = new


@numba.njit(cache=True, inline="always")
def _backtrack(cost, chosen, came_from, out_row):
    """The choices (p,) along the cheapest path, read back from its last state."""
    s = np.argmin(cost)
    for t in range(len(out_row) - 1, -1, -1):
        out_row[t] = chosen[t, s]
        s = came_from[t, s]


@numba.njit(cache=True, parallel=True)
def viterbi(y, offsets, levels, next_state):
    """Level indices k (n, p) int32 (relative to each position's list) minimising each row's
    squared error over the paths of the trellis `next_state` (S, 2) from state 0."""
    n, p = y.shape
    n_states = next_state.shape[0]
    out = np.empty((n, p), np.int32)
    for i in numba.prange(n):
        cost = np.full(n_states, np.inf)
        cost[0] = 0.0
        new = np.empty(n_states)
        chosen = np.empty((p, n_states), np.int32)
        came_from = np.empty((p, n_states), np.int32)
        cand = np.empty(4, np.int64)
        cand_err = np.empty(4)
        for t in range(p):
            lo, hi = offsets[t], offsets[t + 1]
            x = y[i, t]
            pos = lo + np.searchsorted(levels[lo:hi], x)
            for r in range(4):
                cand[r], cand_err[r] = _nearest_in_subset(levels, lo, hi, pos, x, r)
            _step(cost, new, cand, cand_err, next_state, chosen[t], came_from[t], lo)
        _backtrack(cost, chosen, came_from, out[i])
    return out


@numba.njit(cache=True, parallel=True)
def viterbi_grid(z, low, high, next_state):
    """`viterbi` over the integer grid low[t] <= j < high[t] at position t (low[t] a multiple
    of 4, so a level's subset is j % 4): grid indexes j (n, p) int64. The nearest j of
    subset r is r + 4 round((x - r) / 4), kept inside the grid."""
    n, p = z.shape
    n_states = next_state.shape[0]
    out = np.empty((n, p), np.int64)
    for i in numba.prange(n):
        cost = np.full(n_states, np.inf)
        cost[0] = 0.0
        new = np.empty(n_states)
        chosen = np.empty((p, n_states), np.int64)
        came_from = np.empty((p, n_states), np.int32)
        cand = np.empty(4, np.int64)
        cand_err = np.empty(4)
        for t in range(p):
            x = z[i, t]
            for r in range(4):
                j = r + 4 * np.int64(np.floor((x - r) / 4 + 0.5))
                while j < low[t]:
                    j += 4
                while j >= high[t]:
                    j -= 4
                cand[r], cand_err[r] = j, (x - j) ** 2
            _step(cost, new, cand, cand_err, next_state, chosen[t], came_from[t], 0)
        _backtrack(cost, chosen, came_from, out[i])
    return out


@numba.njit(cache=True, parallel=True)
def walk(m, next_state):
    """Union parities u (n, p) of rows of union indices m (n, p): u = state & 1, then the
    state moves along branch m & 1, from state 0 at each row's start."""
    n, p = m.shape
    u = np.empty((n, p), np.int64)
    for i in numba.prange(n):
        s = 0
        for t in range(p):
            u[i, t] = s & 1
            s = next_state[s, m[i, t] & 1]
    return u
