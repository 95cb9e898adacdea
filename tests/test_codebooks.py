"""Group codebooks: k-means against its optimality conditions and FAISS, assignment against
brute force, bit-packed codebook storage."""
import faiss
import numpy as np
import pytest

from qetvec.codebooks import (assign_group_codes, decode_group_codes, pack_uints, train_group_codebooks, train_kmeans,
                              unpack_uints)
from qetvec.stage import group_bounds


def brute_force_codes(y, bounds, books):
    """Nearest codeword per group by exhaustive numpy distances."""
    codes = []
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        dist = ((y[:, None, a:b] - books[g][None, :, : b - a]) ** 2).sum(-1)
        codes.append(dist.argmin(1))
    return np.stack(codes, axis=1)


@pytest.mark.parametrize("rows", [3000, 5, 1])  # vectorized over points, and point by point
def test_assignment_equals_brute_force(glove, rows):
    y = np.ascontiguousarray(glove[:3000])
    bounds = group_bounds(50, 7)  # unequal groups: 8, 7, 7, ...
    books = train_group_codebooks(y, bounds, 32, seed=0)
    y = y[-rows:]
    np.testing.assert_array_equal(assign_group_codes(y, bounds, books), brute_force_codes(y, bounds, books))


def test_kmeans_reaches_a_lloyd_fixed_point(glove):
    """With enough iterations every point sits with its nearest centroid and every centroid
    is the mean of its points: the two conditions that define a k-means local optimum."""
    y = np.ascontiguousarray(glove[:2000])
    bounds = group_bounds(50, 10)
    books = train_group_codebooks(y, bounds, 16, seed=3, niter=300)
    codes = brute_force_codes(y, bounds, books)
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        for c in np.unique(codes[:, g]):
            np.testing.assert_allclose(books[g, c, : b - a], y[codes[:, g] == c, a:b].mean(0), atol=1e-5)


def test_kmeans_quality_matches_faiss(glove):
    y = np.ascontiguousarray(glove[:20000])
    bounds = group_bounds(50, 10)
    books = train_group_codebooks(y, bounds, 64, seed=0)
    ours = ((y - decode_group_codes(assign_group_codes(y, bounds, books), bounds, books)) ** 2).sum()
    pq = faiss.ProductQuantizer(50, 10, 6)
    pq.train(y)
    theirs = ((y - pq.decode(pq.compute_codes(y))) ** 2).sum()
    assert ours <= 1.02 * theirs


@pytest.mark.parametrize("bits", [1, 3, 10, 16])
def test_bit_packing_round_trips(bits, rng):
    values = rng.integers(0, 2 ** bits, size=1001)
    packed = pack_uints(values, bits)
    assert packed.dtype == np.uint8 and len(packed) == (1001 * bits + 7) // 8
    np.testing.assert_array_equal(unpack_uints(packed, 1001, bits), values)


def test_single_kmeans_reaches_a_lloyd_fixed_point(glove):
    """`train_kmeans` (IVF coarse centroids): the same optimality conditions, by brute force."""
    x = np.ascontiguousarray(glove[:3000])
    centroids = train_kmeans(x, 24, seed=1, niter=300)
    codes = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert len(np.unique(codes)) == 24  # no cluster left empty
    for c in range(24):
        np.testing.assert_allclose(centroids[c], x[codes == c].mean(0), atol=1e-5)


def test_single_kmeans_starts_from_distinct_rows_of_its_sample(glove):
    x = np.ascontiguousarray(glove[:5000])
    start = train_kmeans(x, 8, seed=2, niter=0)  # at most 256 * 8 = 2048 rows sampled
    rows = [np.flatnonzero((x == c).all(1)) for c in start]
    assert all(len(r) == 1 for r in rows) and len({r[0] for r in rows}) == 8
    np.testing.assert_array_equal(start, train_kmeans(x, 8, seed=2, niter=0))  # seeded


def test_single_kmeans_quality_matches_faiss(glove):
    x = np.ascontiguousarray(glove[:20000])
    ours = train_kmeans(x, 256, seed=0)
    kmeans = faiss.Kmeans(50, 256, niter=25, seed=0)
    kmeans.train(x)
    objective = lambda c: faiss.knn(x, c, 1)[0].sum()  # noqa: E731
    assert objective(ours) <= 1.02 * objective(kmeans.centroids)
