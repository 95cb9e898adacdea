"""The entanglement tree is lossless and orders every pair."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qetvec.tree import EntanglementTree


def max_levels(d: int) -> int:
    levels = 0
    while True:
        try:
            EntanglementTree(d, levels + 1)
        except ValueError:
            return levels
        levels += 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70).flatmap(lambda d: st.tuples(
    st.just(d), st.integers(0, max_levels(d)),
    arrays(np.float32, st.tuples(st.integers(1, 8), st.just(d)),
           elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=False)))))
def test_tree_round_trip_is_bit_exact(case):
    d, levels, x = case
    tree = EntanglementTree(d, levels)
    y, bits = tree.apply(x)
    assert bits.shape == (len(x), tree.n_bits)
    restored = tree.unpermute(y, bits)
    assert restored.tobytes() == x.tobytes()
    # each row's reordering is a permutation of its own values
    np.testing.assert_array_equal(np.sort(y, axis=1), np.sort(x, axis=1))


def test_level_one_puts_minima_left_and_records_swaps():
    x = np.array([[3.0, 1.0, 0.0, 2.0, 9.0]], dtype=np.float32)
    y, bits = EntanglementTree(5, 1).apply(x)
    np.testing.assert_array_equal(y, [[1.0, 0.0, 3.0, 2.0, 9.0]])  # odd column stays last
    np.testing.assert_array_equal(bits, [[True, False]])


def test_swap_bits_per_level():
    assert EntanglementTree(8, 3).n_bits == 4 + 4 + 4
    assert EntanglementTree(50, 2).n_bits == 25 + 12 + 12
    assert EntanglementTree(50, 0).n_bits == 0


def test_too_deep_is_a_clear_error():
    with pytest.raises(ValueError, match="too deep"):
        EntanglementTree(4, 3)


def test_dependencies_decide_the_source_column(rng):
    tree = EntanglementTree(16, 2)
    deps = tree.dependencies()
    assert all(len(dep) == 3 for dep in deps)  # 2**levels - 1
    bits = rng.random((64, tree.n_bits)) < 0.5
    src = tree.permute(np.tile(np.arange(16), (64, 1)), bits)
    for j, dep in enumerate(deps):  # flipping a bit outside dep never moves column j
        other = np.setdiff1d(np.arange(tree.n_bits), dep)
        flipped = bits.copy()
        flipped[:, other] ^= True
        np.testing.assert_array_equal(tree.permute(np.tile(np.arange(16), (64, 1)), flipped)[:, j], src[:, j])


def paper_tree(x: np.ndarray, depth: int) -> np.ndarray:
    """The paper's tree as its recursive definition (../shared/QET.md, step 1), written
    independently of qetvec.tree: pair columns (2i, 2i+1), minima to the left half, maxima to
    the right (an odd last column stays last, with the maxima), recurse into each half."""
    if depth == 0 or x.shape[1] < 2:
        return x
    pairs = x.shape[1] // 2
    a, b = x[:, 0:2 * pairs:2], x[:, 1:2 * pairs:2]
    left = np.minimum(a, b)
    right = np.hstack([np.maximum(a, b), x[:, 2 * pairs:]])
    return np.hstack([paper_tree(left, depth - 1), paper_tree(right, depth - 1)])


def test_worked_example_of_the_method():
    """../shared/QET.md: x = [5, 1, 2, 7], depth 2 -> [1, 2, 5, 7]; bits [1, 0] then [0, 0]."""
    y, bits = EntanglementTree(4, 2).apply(np.array([[5, 1, 2, 7]], dtype=np.float32))
    np.testing.assert_array_equal(y, [[1, 2, 5, 7]])
    np.testing.assert_array_equal(bits, [[True, False, False, False]])


@pytest.mark.parametrize("d", [64, 50, 37, 8])
def test_apply_equals_the_recursive_definition_at_every_depth(d, rng):
    x = rng.standard_normal((300, d)).astype(np.float32)
    for depth in range(1, max_levels(d) + 1):
        np.testing.assert_array_equal(EntanglementTree(d, depth).apply(x)[0], paper_tree(x, depth))


def test_apply_equals_the_recursive_definition_on_real_rows(glove):
    x = np.ascontiguousarray(glove[:2000])
    for depth in range(1, max_levels(50) + 1):
        np.testing.assert_array_equal(EntanglementTree(50, depth).apply(x)[0], paper_tree(x, depth))


@pytest.mark.parametrize("d", [64, 50])
def test_each_level_orders_the_pairs_it_compares(d, rng):
    """After level l, every pair compared at l holds its minimum at `low` and maximum at
    `high`, and the level's bits say which pairs of level l - 1's output were swapped."""
    x = rng.standard_normal((200, d)).astype(np.float32)
    deepest = EntanglementTree(d, max_levels(d))
    for level, layer in enumerate(deepest.layers, start=1):
        before = EntanglementTree(d, level - 1).apply(x)[0]
        after, bits = EntanglementTree(d, level).apply(x)
        assert (after[:, layer.low] <= after[:, layer.high]).all()
        level_bits = bits[:, bits.shape[1] - len(layer.first):]
        np.testing.assert_array_equal(level_bits, before[:, layer.first] > before[:, layer.second])
