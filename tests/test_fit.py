"""fit_codec: every candidate at the byte budget, the winner the best held-out MSE, usable
by every index and the LanceDB adapter."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec.fit import NORM_BYTES, allocate_groups, candidates, fit_codec


@pytest.fixture(scope="module")
def anisotropic():
    """Correlated Gaussian rows (16-d, variances 9 ... 0.01 along random axes): PCA and bit
    allocation should win over plain PQ."""
    rng = np.random.default_rng(7)
    axes, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    return ((rng.standard_normal((6000, 16)) * np.geomspace(3, 0.1, 16)) @ axes.T).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(anisotropic):
    return fit_codec(anisotropic, 6, "l2", sample_rows=4000, held_out_rows=1000, progress=False,
                     families=["pq", "qet", "pca-w1", "pca-w2", "random", "rq8"])


def test_every_candidate_fills_the_budget_and_the_winner_is_the_best(fitted):
    scored = [r for r in fitted.report if "mse" in r]
    assert len(scored) >= 5
    for row in scored:
        assert row["code_bytes"] + row["norm_bytes"] == row["bytes_per_row"] <= 6
        assert row["norm_bytes"] == (NORM_BYTES if row["name"].startswith("rq") else 0)
    best = min(scored, key=lambda r: r["mse"])
    assert fitted.report_winner == best["name"] and fitted.is_trained and fitted.code_size <= 6


def test_pca_allocation_beats_plain_pq_on_correlated_data(fitted, anisotropic):
    mse = {r["name"]: r["mse"] for r in fitted.report if "mse" in r}
    assert fitted.report_winner.startswith("pca")
    assert mse[fitted.report_winner] < 0.5 * mse["pq"]
    held = anisotropic[-500:]
    assert qetvec.evaluation.relative_mse(held, fitted.decode(fitted.encode(held))) < mse["pq"]


def test_l2_indexes_charge_residual_stages_for_their_norm():
    """Under "l2" a codec with residual stages gets 4 bytes less code; under None it gets all."""
    l2 = {c.name: c for c in candidates(50, 12, "l2")}
    codes_only = {c.name: c for c in candidates(50, 12, None)}
    assert sum(l2["rq8"].settings["nbits"]) == 8 * (12 - NORM_BYTES)
    assert sum(codes_only["rq8"].settings["nbits"]) == 8 * 12
    assert l2["pq"].settings == codes_only["pq"].settings


def test_allocation_spends_the_budget_where_the_variance_is(rng):
    """Columns of variance 16, 1 and 1/16 (width-1 groups): more bits to the larger ones,
    roughly 2 bits more per factor 16 (4^2), none beyond the budget."""
    y = (rng.standard_normal((20000, 3)) * np.array([4.0, 1.0, 0.25])).astype(np.float32)
    widths, bits = allocate_groups(y, 1, 9)
    assert widths == [1, 1, 1] and sum(bits) == 9 and bits[0] > bits[1] > bits[2]
    assert bits[0] - bits[1] in (1, 2, 3) and bits[1] - bits[2] in (1, 2, 3)


def test_weights_that_equalize_the_weighted_variances_equalize_the_bits(rng):
    """Weighing each column's error by w_i makes its distortion w_i D_i(R): the Gaussian
    allocation is then reverse water-filling on w_i s_i, and w = 1 / variance makes every
    column alike: 9 bits go 3, 3, 3."""
    scale = np.array([4.0, 1.0, 0.25])
    y = (rng.standard_normal((20000, 3)) * scale).astype(np.float32)
    widths, bits = allocate_groups(y, 1, 9, weights=1 / scale ** 2)
    assert widths == [1, 1, 1] and bits == [3, 3, 3]
    with pytest.raises(ValueError, match=r"weights must be \(3,\) finite and >= 0"):
        allocate_groups(y, 1, 9, weights=np.array([1.0, -1.0, 1.0]))


def test_ranking_objective_trades_mse_for_score_error(anisotropic):
    """Under "ranking" the PCA allocation weighs each axis by its second moment (more bits to
    the axes that move inner products most): on rows neither fit saw, its codec has the lower
    relative_ip_error (queries drawn like the rows), the "mse" codec the lower MSE; each
    winner is the best of its report by its own key."""
    fits = {objective: fit_codec(anisotropic[:5000], 6, "l2", sample_rows=3000, held_out_rows=1000, progress=False,
                                 families=["pca-w1", "pq"], objective=objective) for objective in ("mse", "ranking")}
    for objective, key in (("mse", "mse"), ("ranking", "ranking_error")):
        scored = [r for r in fits[objective].report if key in r]
        assert fits[objective].report_winner == min(scored, key=lambda r: r[key])["name"]
    rows, queries = anisotropic[5000:5500], anisotropic[5500:]
    decoded = {objective: codec.decode(codec.encode(rows)) for objective, codec in fits.items()}
    ip = {objective: qetvec.evaluation.relative_ip_error(rows, x_hat, queries) for objective, x_hat in decoded.items()}
    mse = {objective: qetvec.evaluation.relative_mse(rows, x_hat) for objective, x_hat in decoded.items()}
    assert ip["ranking"] < ip["mse"] and mse["mse"] < mse["ranking"]
    with pytest.raises(ValueError, match="objective must be one of"):
        fit_codec(anisotropic, 6, objective="recall")


def test_candidates_over_the_work_limit_are_reported_skipped(anisotropic):
    """6,000 rows allow codebooks of 2**7 codewords (39 rows per codeword); 6 B under "l2"
    leave rq7 16 code bits, stages of 7, 7 and 2 bits, on 2,000 sample rows of 16 columns:
    2,000 x 16 x (128 + 128 + 4) = 8,320,000 multiply-adds per pass; rq7-upd makes 1 + 3
    passes (its rounds of codebook update)."""
    kept = fit_codec(anisotropic, 6, "l2", sample_rows=2000, held_out_rows=1000, families=["rq", "pq"],
                     max_work=8_320_000, progress=False)
    assert {r["name"]: "mse" in r for r in kept.report} == {"pq": True, "rq7": True, "rq7-upd": False}
    upd, = (r for r in kept.report if r["name"] == "rq7-upd")
    assert upd["skipped"].startswith("training work 3.33e+07 ")
    cut = fit_codec(anisotropic, 6, "l2", sample_rows=2000, held_out_rows=1000, families=["rq", "pq"],
                    max_work=8_319_999, progress=False)
    rq7, = (r for r in cut.report if r["name"] == "rq7")
    assert rq7["skipped"] == ("training work 8.32e+06 (rows x d x codewords of its residual stages x (1 + update rounds)) "
                              "is over max_work=8.32e+06") and cut.report_winner == "pq"


def test_bad_arguments_are_refused(anisotropic):
    with pytest.raises(ValueError, match="bytes_per_row"):
        fit_codec(anisotropic, 0)
    with pytest.raises(ValueError, match="metric"):
        fit_codec(anisotropic, 6, "cosine")
    with pytest.raises(ValueError, match="no candidate"):
        fit_codec(anisotropic, 6, families=["nothing"])
    with pytest.raises(ValueError, match="max_work must be positive, got 0"):
        fit_codec(anisotropic, 6, max_work=0)


def test_ivf_index_and_lancedb_table_with_a_fitted_codec(fitted, anisotropic, tmp_path):
    """A fit_codec result goes into an IVF index (trained on residuals) and a LanceDB table
    unchanged; both search it exactly against its decoded rows."""
    import lancedb

    import qetvec_lancedb as ql

    base, queries = anisotropic[:3000], anisotropic[-20:]
    fresh = qetvec.QETQuantizer(16, **_settings(fitted))
    index = qetvec.IndexIVFQET(faiss.IndexFlatL2(16), 16, 4, codec=fresh)
    index.train(anisotropic[:4000])
    index.add(base)
    index.nprobe = 4
    decoded = index.reconstruct_n(0, index.ntotal)
    exact = ((queries[:, None] - decoded[None]) ** 2).sum(-1)
    D, _ = index.search(queries, 5)
    np.testing.assert_allclose(D, np.sort(exact, 1)[:, :5], rtol=1e-4, atol=1e-4)
    db = lancedb.connect(tmp_path / "db")
    rows = [{"id": i, "vector": v.tolist()} for i, v in enumerate(base)]
    table = ql.create_table(db, "t", rows, codec=fitted, progress=False)
    got = table.query(queries, k=5)
    mine = qetvec.IndexQET(16, codec=fitted)
    mine.add(base)
    D, I = mine.search(queries, 5)
    np.testing.assert_array_equal(np.asarray(got.column("id").to_pylist()).reshape(20, 5), I)


def _settings(codec):
    """Constructor settings reproducing a trained QETQuantizer's configuration."""
    return dict(m=[np.diff(s.bounds).tolist() for s in codec.stages], nbits=codec.nbits,
                levels=codec.levels, stages=len(codec.stages), transform=codec.transform, beam=codec.beam)


def test_factory_auto_token_chooses_the_codec_when_the_index_is_trained(anisotropic, tmp_path):
    """"IVF4,Auto6,RFlat": the IVF codes take 6 bytes per row, the codec is fit_codec's
    choice on the residuals, and the index saves, reloads and searches as any other."""
    index = qetvec.index_factory(16, "IVF4,Auto6,RFlat")
    assert not index.is_trained
    index.train(anisotropic[:5000])
    assert isinstance(index.base.codec, qetvec.QETQuantizer) and index.base.code_size <= 6
    assert index.base.lists.codes.shape[1] == index.base.code_size
    scored = [r for r in index.base.codec.report if "mse" in r]
    assert index.base.codec.report_winner == min(scored, key=lambda r: r["mse"])["name"]
    index.add(anisotropic[:2000])
    index.nprobe, index.k_factor = 4, 4
    D, I = index.search(anisotropic[-10:], 5)
    qetvec.write_index(index, tmp_path / "auto.qet")
    back = qetvec.read_index(tmp_path / "auto.qet")
    np.testing.assert_array_equal(back.search(anisotropic[-10:], 5)[1], I)
    for token, objective in (("Auto6", "mse"), ("Auto6_rank", "ranking")):
        qetvec.write_index(qetvec.index_factory(16, token), tmp_path / "untrained.qet")
        reloaded = qetvec.read_index(tmp_path / "untrained.qet").codec
        assert reloaded.bytes_per_row == 6 and reloaded.options == {"objective": objective}
    with pytest.raises(ValueError, match=r"Auto<bytes>\[_rank\]"):
        qetvec.index_factory(16, "Auto6_recall")


@pytest.mark.parametrize("nlist", [None, 4])
def test_lancedb_table_at_a_byte_budget(anisotropic, tmp_path, nlist):
    """create_table(..., bytes_per_row=B): code, partition id and norm column together take
    at most B bytes per row, and the table searches like one given the codec."""
    import lancedb

    import qetvec_lancedb as ql

    db = lancedb.connect(tmp_path / "db")
    rows = [{"id": i, "vector": v.tolist()} for i, v in enumerate(anisotropic[:5000])]
    table = ql.create_table(db, "t", rows, bytes_per_row=7, nlist=nlist, progress=False)
    assert table.bytes_per_row <= 7
    with pytest.raises(ValueError, match="one of codec, m or bytes_per_row"):
        ql.create_table(db, "u", rows, bytes_per_row=7, m=4, progress=False)
    got = table.query(anisotropic[-5:], k=3, nprobe=4 if nlist else None)
    assert got.num_rows == 15
