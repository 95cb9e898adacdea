"""Every matrix-mode method: within budget on disk, row ranges, the search, the bound."""
import numpy as np
import pytest

import qetvec
from qetvec.allocation import gaussian_distortion
from qetvec.evaluation import relative_mse
from qetvec.io import CorruptIndexError, deserialize, pack, serialize
from qetvec.matrix import METHODS, file_overhead_bytes

CODED = [m for m in METHODS if m != "auto"]


@pytest.fixture(scope="module")
def correlated() -> np.ndarray:
    """600 x 24 rows with a spread spectrum (variances 9 .. 0.01) in a random basis, and a mean."""
    rng = np.random.default_rng(5)
    basis, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    scales = np.geomspace(3.0, 0.1, 24)
    return ((rng.standard_normal((600, 24)) * scales) @ basis.T + 2.0).astype(np.float32)


@pytest.fixture(scope="module")
def coded(correlated) -> dict:
    budget = int(3 * correlated.size / 8)
    return {method: qetvec.compress_matrix(correlated, budget, method=method, niter=5, block_rows=64)
            for method in METHODS}


@pytest.mark.parametrize("method", METHODS)
def test_file_is_within_budget_plus_the_documented_header(method, coded, correlated, tmp_path):
    cm = coded[method]
    budget = int(3 * correlated.size / 8)
    qetvec.write_index(cm, tmp_path / "m.qet")
    size = (tmp_path / "m.qet").stat().st_size
    assert cm.nbytes <= budget
    assert cm.nbytes < size <= cm.nbytes + file_overhead_bytes(cm)
    np.testing.assert_array_equal(qetvec.read_index(tmp_path / "m.qet").decode(), cm.decode())


@pytest.mark.parametrize("method", METHODS)
def test_counted_bytes_are_the_bytes_written(method, coded):
    """nbytes is the file's array payload to the byte: file = 20-byte prefix + JSON header
    (its length at offset 12) + payload + 32-byte digest."""
    data = serialize(coded[method])
    header_length = int.from_bytes(data[12:20], "little")
    assert len(data) - 20 - header_length - 32 == coded[method].nbytes


@pytest.mark.parametrize("method", METHODS)
def test_a_row_range_decodes_as_the_slice_of_the_full_decode(method, coded):
    cm = coded[method]
    full = cm.decode()
    for start, stop in [(0, 600), (0, 1), (63, 65), (100, 229), (599, 600), (300, 300)]:
        np.testing.assert_array_equal(cm.decode(start, stop), full[start:stop])
    with pytest.raises(ValueError, match="not within"):
        cm.decode(10, 601)


def test_auto_returns_the_best_candidate_and_its_report(coded, correlated):
    auto = coded["auto"]
    mse = relative_mse(correlated, auto.decode())
    rows = [r for r in auto.report if "mse" in r]
    assert rows[0]["mse"] == pytest.approx(mse) and rows[0]["nbytes"] == auto.nbytes
    assert [r["mse"] for r in rows] == sorted(r["mse"] for r in rows)
    assert all(r["nbytes"] <= int(3 * correlated.size / 8) for r in rows)
    assert {r["method"].split(" (")[0] for r in rows} >= {"qet", "qet-no-tree"}
    for method in CODED:  # no single method beats the search over all of them
        assert mse <= relative_mse(correlated, coded[method].decode()) + 1e-12


def test_transform_coding_comes_near_the_gaussian_bound(rng):
    """Gaussian rows of a known covariance: the search's result is within 1.6x the
    distortion-rate function of that covariance (reverse water-filling, codes only), though
    it pays for its basis, tables and mean out of the same budget."""
    variances = np.geomspace(4.0, 0.05, 16)
    basis, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    x = ((rng.standard_normal((6000, 16)) * np.sqrt(variances)) @ basis.T).astype(np.float32)
    bits = 3.0
    cm = qetvec.compress_matrix(x, int(bits * x.size / 8), method="ectcq")
    bound = gaussian_distortion(variances, bits * 16) / variances.sum()
    assert relative_mse(x, cm.decode()) < 1.6 * bound


def test_wide_matrices_are_coded_on_their_full_rank_side(rng):
    x = rng.standard_normal((40, 300)).astype(np.float32)
    cm = qetvec.compress_matrix(x, int(2 * x.size / 8), method="ecsq")
    assert cm.spec.transposed and cm.decode().shape == (40, 300)
    np.testing.assert_array_equal(cm.decode(5, 9), cm.decode()[5:9])


def test_todays_qet_call_is_unchanged(correlated):
    """m given, no method: QET exactly as before (same object, same bytes as method='qet')."""
    budget = int(2 * correlated.size / 8)
    a = qetvec.compress_matrix(correlated, budget, 6, niter=5)
    b = qetvec.compress_matrix(correlated, budget, m=6, method="qet", niter=5)
    assert isinstance(a, qetvec.CompressedMatrix) and a.ksub == b.ksub
    np.testing.assert_array_equal(a.decode(), b.decode())


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="zstd"), "method must be one of"),
    (dict(method="auto", levels=(1, 0)), "QET's settings"),
    (dict(method="ecsq", block_rows=0), "block_rows"),
])
def test_bad_arguments_are_refused_by_name(kwargs, match, correlated):
    with pytest.raises((TypeError, ValueError), match=match):
        qetvec.compress_matrix(correlated, 5000, **kwargs)


def test_a_budget_that_holds_nothing_is_a_clear_error(correlated):
    with pytest.raises(ValueError, match="too small for every method"):
        qetvec.compress_matrix(correlated, 40)


@pytest.mark.parametrize("method", ["ectcq", "tcq"])
def test_inconsistent_files_are_refused_naming_the_array(method, coded):
    data = serialize(coded[method])
    cm = deserialize(data)
    meta, arrays = cm._state()
    name = "coefficients.words" if method == "ectcq" else "coefficients.stream"
    with pytest.raises(CorruptIndexError, match=name.split(".")[1]):
        deserialize(pack("TransformCodedMatrix", meta, {**arrays, name: arrays[name][:-1]}))


@pytest.mark.parametrize("method", ["ectcq", "tcq"])
def test_transform_coding_is_scale_invariant(method, correlated):
    """A power-of-two scale of x is carried by the stored exponent: compressing s * x gives
    s times the reconstruction of x, bit for bit, for scales far outside float16's range (the
    fixed-rate levels) and float32's squares (1e-30 .. 1e30)."""
    budget = int(3 * correlated.size / 8)
    reference = qetvec.compress_matrix(correlated, budget, method=method)
    for s in (2.0 ** -100, 2.0 ** 100):
        scaled = qetvec.compress_matrix(correlated * np.float32(s), budget, method=method)
        assert scaled.nbytes == reference.nbytes and scaled.method == reference.method
        np.testing.assert_array_equal(scaled.decode(), reference.decode() * np.float32(s))
