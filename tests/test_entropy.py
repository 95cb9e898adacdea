"""The range-coded symbol stream: round trips, and the bytes counted are the bytes written."""
import numpy as np
import pytest

from qetvec.entropy import BlockDecoder, CategoricalTables, encode_block, histograms


def _symbols(rng, n, p):
    """Symbols (n, p) of three differently shaped distributions and their table ids."""
    ids = rng.integers(0, 3, (n, p))
    scale = np.array([0.5, 3.0, 20.0])[ids]
    return np.rint(rng.laplace(size=(n, p)) * scale).astype(np.int64), ids.astype(np.int64)


def test_round_trip_by_columns_and_tables(rng):
    symbols, ids = _symbols(rng, 300, 7)
    tables, _ = CategoricalTables.fit(symbols.ravel(), ids.ravel(), 3)
    words = encode_block(tables, symbols, ids)
    decoder = BlockDecoder(tables, words)
    decoded = np.stack([decoder.column(ids[:, j]) for j in range(symbols.shape[1])], axis=1)
    np.testing.assert_array_equal(decoded, symbols)


def test_written_length_is_the_ideal_length_plus_a_flush(rng):
    """The coder's output (all that is stored of the symbols) is within a few words of the
    ideal code length under the quantized tables, which is itself within 1 % of the
    empirical entropy."""
    symbols, ids = _symbols(rng, 2000, 10)
    tables, ideal = CategoricalTables.fit(symbols.ravel(), ids.ravel(), 3)
    written = 8 * encode_block(tables, symbols, ids).nbytes
    assert ideal <= written <= ideal + 64
    entropy = 0.0
    for t in range(3):
        _, counts = np.unique(symbols[ids == t], return_counts=True)
        entropy -= (counts * np.log2(counts / counts.sum())).sum()
    assert entropy <= ideal <= 1.01 * entropy


def test_tables_state_round_trip_and_counted_bytes(rng):
    symbols, ids = _symbols(rng, 500, 4)
    tables, _ = CategoricalTables.fit(symbols.ravel(), ids.ravel(), 4)  # table 3 stays empty
    state = tables.state()
    back = CategoricalTables.from_state(state)
    assert tables.nbytes() == sum(a.nbytes for a in state.values())
    assert back.n_tables == 4 and len(back.codes[3]) == 0
    for t in range(3):
        np.testing.assert_array_equal(back.codes[t], tables.codes[t])
        np.testing.assert_array_equal(back.probabilities(t), tables.probabilities(t))
    with pytest.raises(ValueError, match="table_lengths"):
        CategoricalTables.from_state({**state, "table_lengths": state["table_lengths"][:-1]})


def test_histograms_dense_and_sparse_paths_agree(rng):
    symbols = np.concatenate([rng.integers(-5, 5, 1000), [10 ** 7]])  # one far outlier: sparse path
    ids = rng.integers(0, 2, len(symbols))
    weights = rng.standard_normal(len(symbols))
    lows, counts, sums = histograms(symbols, ids, 2, weights)
    for t in range(2):
        own = ids == t
        values, expected = np.unique(symbols[own], return_counts=True)
        assert lows[t] == values[0]
        np.testing.assert_array_equal(counts[t][values - values[0]], expected)
        assert counts[t].sum() == own.sum()
        np.testing.assert_allclose(sums[t].sum(), weights[own].sum())
