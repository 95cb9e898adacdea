"""Trellis-coded quantization (TCQ; Marcellin & Fischer 1990) of each row as one sequence.

Every position t of a row (a coefficient) has its own sorted level list; level index k
belongs to subset D_(k mod 4). The trellis is Ungerboeck's rate-1/2 code for amplitude
modulation with 2**nu states: from state s only the union codebook A_(s & 1) = D_u ∪ D_(u+2)
is allowed (levels of parity u = s & 1), and the chosen level's subset bit z1 = (k >> 1) & 1
picks the branch to the next state. A row is thus coded by one index per position inside its
union codebook, m = k >> 1 (so k = 2 m + u, and z1 = m & 1), and a sequence of levels is
representable exactly when it walks the trellis from state 0. The Viterbi algorithm
(`viterbi`) finds the representable sequence nearest to the row in squared error.

With 2**(b + 1) levels per position the index m takes b bits (fixed-rate TCQ); with a
uniform grid of levels j * step the index m = j >> 1 is entropy-coded (entropy-coded TCQ,
Fischer & Wang 1992), the decoder recovering u from the state it tracks.

The trellis from its parity-check polynomials (h1, h0) (octal, bit i = coefficient of D^i),
in observer form: z0 = s_1 = s & 1 and s_k <- s_(k+1) ^ h0_k z0 ^ h1_k z1 for k = 1..nu,
which enforces the parity check sum_k h0_k z0_(t-k) ^ h1_k z1_(t-k) = 0.
"""
from __future__ import annotations

import functools

import numpy as np

from qetvec import _trellis_kernels

# Ungerboeck (1987), Table I, one-dimensional (amplitude) codes: nu -> (h1, h0), octal
UNGERBOECK_1D = {2: (0o2, 0o5), 3: (0o04, 0o13), 4: (0o04, 0o23), 5: (0o10, 0o45),
                 6: (0o024, 0o103), 7: (0o126, 0o235), 8: (0o362, 0o515)}
STATES = tuple(2 ** nu for nu in UNGERBOECK_1D)


@functools.cache
def next_state_table(states: int) -> np.ndarray:
    """next[s, z1] (states, 2) int64 of the 2**nu-state trellis, nu = log2(states)."""
    nu = states.bit_length() - 1
    if states not in STATES:
        raise ValueError(f"states must be one of {STATES}, got {states}")
    h1, h0 = UNGERBOECK_1D[nu]
    table = np.empty((states, 2), np.int64)
    for s in range(states):
        z0 = s & 1
        for z1 in (0, 1):
            nxt = 0
            for k in range(1, nu + 1):
                above = (s >> k) & 1 if k < nu else 0  # s_(k+1)
                bit = above ^ (((h0 >> k) & 1) & z0) ^ (((h1 >> k) & 1) & z1)
                nxt |= bit << (k - 1)
            table[s, z1] = nxt
    table.setflags(write=False)
    return table


def viterbi(y: np.ndarray, level_offsets: np.ndarray, levels: np.ndarray, states: int) -> np.ndarray:
    """Level indices k (n, p) int32 of the representable sequence nearest each row of y
    (n, p), position t choosing among levels[level_offsets[t]:level_offsets[t + 1]] (sorted,
    at least 4 per position). Rows start in state 0 and end anywhere."""
    counts = np.diff(level_offsets)
    if len(counts) != y.shape[1] or (counts < 4).any():
        raise ValueError("each of the p positions needs its own list of at least 4 levels")
    return _trellis_kernels.viterbi(np.ascontiguousarray(y, np.float64),
                                    np.ascontiguousarray(level_offsets, np.int64),
                                    np.ascontiguousarray(levels, np.float64), next_state_table(states))


def viterbi_grid(z: np.ndarray, low: np.ndarray, high: np.ndarray, states: int) -> np.ndarray:
    """`viterbi` over the integer grid low[t] <= j < high[t] at each position t of rows z
    (n, p) (low a multiple of 4, high - low >= 4 and a multiple of 4), without level lists:
    grid indexes j (n, p) int64 (entropy-coded TCQ at step 1)."""
    low, high = np.asarray(low, np.int64), np.asarray(high, np.int64)
    if len(low) != z.shape[1] or (low % 4).any() or ((high - low) % 4).any() or (high - low < 4).any():
        raise ValueError("each position needs a grid from a multiple of 4 spanning a multiple of 4 (>= 4) values")
    return _trellis_kernels.viterbi_grid(np.ascontiguousarray(z, np.float64), low, high, next_state_table(states))


def union_parities(m: np.ndarray, states: int) -> np.ndarray:
    """u (n, p) int64, the union codebook of each position of rows of union indices m (n, p)
    as the decoder tracks it (k = 2 m + u)."""
    return _trellis_kernels.walk(np.ascontiguousarray(m, np.int64), next_state_table(states))
