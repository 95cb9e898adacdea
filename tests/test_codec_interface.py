"""The codec interface: a codec written here, outside the library, works in every index, the
ADC, io and the LanceDB adapter without a change to any of them."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec.codec import Codec, LookupUnits
from qetvec.io import register


@register("TestScalarCodec")
class ScalarCodec(Codec):
    """8-bit uniform scalar quantizer per column (FAISS's SQ8 without its training tweaks):
    one byte per column, level c of column j at low[j] + (c + 0.5) * step[j]."""

    def __init__(self, d: int):
        self.d, self.code_size = d, d
        self.low = self.step = None

    is_trained = property(lambda self: self.low is not None)
    per_row_norm = property(lambda self: False)

    def train(self, x):
        self.low, high = x.min(0), x.max(0)
        self.step = np.maximum(high - self.low, 1e-12) / 256
        return self

    def encode(self, x):
        return np.clip((np.asarray(x, np.float32) - self.low) / self.step, 0, 255).astype(np.uint8)

    def decode(self, codes):
        return (self.low + (codes + 0.5) * self.step).astype(np.float32)

    def codebook_bytes(self):
        return 8 * self.d

    def lookup_units(self):
        levels = self.low + (np.arange(256)[:, None] + 0.5) * self.step  # (256, d)
        column = np.arange(self.d, dtype=np.int64)
        zeros = np.zeros(self.d, np.int64)
        return LookupUnits(8 * column, np.full(self.d, 8), np.full(self.d, 256), 256 * column,
                           np.zeros(self.d + 1, np.int64), zeros[:0], zeros[:0], zeros[:0],
                           [np.array([[j]]) for j in column], [levels[:, [j]].astype(np.float32) for j in column],
                           256 * self.d)

    def _state(self):
        return {"d": self.d}, ({"low": self.low, "step": self.step} if self.is_trained else {})

    @classmethod
    def _from_state(cls, meta, arrays):
        codec = cls(meta["d"])
        if "low" in arrays:
            codec.low, codec.step = arrays["low"], arrays["step"]
        return codec


@pytest.fixture(scope="module")
def data(glove_split):
    train, test = glove_split
    return train[:6000], train[6000:8000], test[:20]


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("kind", ["flat", "ivf", "refine"])
def test_an_outside_codec_is_searched_exactly(data, kind, metric, tmp_path):
    train, base, queries = data
    if kind == "flat":
        index = qetvec.IndexQET(50, metric=metric, codec=ScalarCodec(50))
    else:
        index = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 8, metric=metric, codec=ScalarCodec(50))
        index.nprobe = 8
    if kind == "refine":
        index = qetvec.IndexRefineFlat(index, k_factor=3)
    index.train(train)
    index.add(base)
    inner = index.base if kind == "refine" else index
    decoded = inner.reconstruct_n(0, inner.ntotal)
    exact = ((queries[:, None] - decoded[None]) ** 2).sum(-1) if metric == "l2" else queries @ decoded.T
    D, I = inner.search(queries, 10)
    ref = np.sort(exact, 1)[:, :10] if metric == "l2" else -np.sort(-exact, 1)[:, :10]
    np.testing.assert_allclose(D, ref, rtol=1e-4, atol=1e-3)
    qetvec.write_index(index, tmp_path / "index.qet")
    back = qetvec.read_index(tmp_path / "index.qet")
    np.testing.assert_array_equal(back.search(queries, 10)[1], index.search(queries, 10)[1])


def test_an_outside_codec_in_a_lancedb_table(data, tmp_path):
    import lancedb

    import qetvec_lancedb as ql

    train, base, queries = data
    codec = ScalarCodec(50).train(train)
    db = lancedb.connect(tmp_path / "db")
    table = ql.create_table(db, "t", [{"id": i, "vector": v.tolist()} for i, v in enumerate(base)],
                            codec=codec, nlist=4, progress=False)
    got = table.query(queries, k=5, nprobe=4)
    flat = qetvec.IndexQET(50, codec=codec)
    flat.add(base)
    np.testing.assert_array_equal(np.asarray(got.column("id").to_pylist()).reshape(20, 5)[:, 0],
                                  flat.search(queries, 1)[1][:, 0])
