"""read_index refuses files whose contents contradict themselves, and a fuzz of every kind:
each mutated file must give either CorruptIndexError or an object that behaves exactly as
the original (same searches / decodes)."""
import hashlib
import json
import os
import time

import faiss
import numpy as np
import pytest

import qetvec
from qetvec.io import _PREFIX, FORMAT_VERSION, MAGIC, CorruptIndexError, deserialize, pack, serialize, write_index

# Fields whose other *valid* values describe another valid object; an edit there may load
# as that object (the checksum, recomputed by the fuzz, is what protects them on disk).
SEMANTIC = {"metric_type", "levels", "user_ids", "by_residual", "beam"}


@pytest.fixture(scope="module")
def objects(glove_split):
    """One small trained object of every kind, with a behaviour probe for each."""
    train, test = glove_split
    train, base, queries = train[:3000], train[3000:4000], test[:20]
    codec = qetvec.QETQuantizer(50, 5, nbits=6, levels=1, codebook_bits=8).train(train)
    with pytest.warns(UserWarning, match="3000 rows for 512 codewords"):  # small: built for the file, fast
        pca = qetvec.QETQuantizer(50, [[20, 20, 10], 1], nbits=[[9, 6, 0], 5], levels=0, stages=2,
                                  transform="pca", beam=3).train(train)
    scalars = qetvec.QETQuantizer(50, 50, nbits=2, levels=0, transform="random", seed=3).train(train)
    flat = qetvec.IndexQET(50, 5, nbits=5, levels=1, stages=2)
    flat.train(train)
    flat.add(base)
    idmap = qetvec.IndexQET(50, 10, nbits=6, levels=0, metric="ip")
    idmap.train(train)
    idmap.add_with_ids(base[:300], np.arange(300) * 3 + 1)
    ivf = qetvec.IndexIVFQET(faiss.IndexFlatL2(50), 50, 8, 5, nbits=6, levels=1)
    ivf.train(train)
    ivf.add(base)
    ivf.nprobe = 3
    refine = qetvec.index_factory(50, "IVF8,QET5x6_L0,RFlat")
    refine.train(train)
    refine.add(base[:500])
    refine.k_factor, refine.nprobe = 4, 2
    matrix = qetvec.compress_matrix(train[:300], 3000, 5, codebook_bits=8)
    probe_index = lambda o: o.search(queries, 5)  # noqa: E731
    return {
        "QETQuantizer": (codec, lambda o: (o.encode(queries), o.decode(codec.encode(queries)))),
        "QETQuantizer-pca": (pca, lambda o: (o.encode(queries), o.decode(pca.encode(queries)))),
        "QETQuantizer-random": (scalars, lambda o: (o.encode(queries), o.decode(scalars.encode(queries)))),
        "IndexQET": (flat, probe_index), "IndexQET-ids": (idmap, probe_index),
        "IndexIVFQET": (ivf, probe_index), "IndexRefineFlat": (refine, probe_index),
        "CompressedMatrix": (matrix, lambda o: (o.decode(),)),
    }


def split(data: bytes) -> tuple[dict, bytes]:
    _, _, header_len = _PREFIX.unpack_from(data)
    return json.loads(data[_PREFIX.size:_PREFIX.size + header_len]), data[_PREFIX.size + header_len:-32]


def rebuild(header: dict, payload: bytes) -> bytes:
    """A file with this header and payload and a *valid* checksum."""
    raw = json.dumps(header).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw)) + raw + payload
    return body + hashlib.sha256(body).digest()


def leaves(node, path=()):
    """(path, value) of every scalar or shape list in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, path + (key,))
    elif isinstance(node, list) and node and all(isinstance(v, (dict, list)) for v in node):
        for i, value in enumerate(node):
            yield from leaves(value, path + (i,))
    else:
        yield path, node


def edits(value):
    """Replacement values for one JSON leaf: neighbours, wrong types, out of range."""
    if isinstance(value, bool):
        return [not value, None, 0, "true"]
    if isinstance(value, int):
        return [value + 1, value - 1, -1, 0, 2 ** 40, None, "7", True, 1.5]
    if isinstance(value, float):
        return [value * 2, -1.0, 0.0, None, "x"]
    if isinstance(value, str):
        return ["", value + "x", "<f8", None, 3]
    if isinstance(value, list):
        return [value + [1], value[:-1], [v + 1 if isinstance(v, int) else v for v in value], None]
    return [0, 1, "x", [], {}]


def set_leaf(header, path, value):
    node = header
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def outcome(obj, probe, data: bytes, path=()) -> str:
    """'refused', 'same' or (SEMANTIC fields only) 'valid-other'; anything else fails."""
    try:
        back = deserialize(data)
    except CorruptIndexError:
        return "refused"
    for attr in ("nprobe", "k_factor"):  # search parameters: compare at the original's
        if hasattr(obj, attr):
            setattr(back, attr, getattr(obj, attr))
    try:
        got = probe(back)
        if all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(probe(obj), got)):
            return "same"
        failure = "behaves differently"
    except Exception as err:  # e.g. another code size: the original's codes do not fit
        failure = f"fails: {err!r}"
    assert path and path[-1] in SEMANTIC, f"{path}: loaded, then {failure}"
    return "valid-other"


KINDS = ["QETQuantizer", "QETQuantizer-pca", "QETQuantizer-random", "IndexQET", "IndexQET-ids", "IndexIVFQET", "IndexRefineFlat", "CompressedMatrix"]


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_single_byte_and_single_field_edits(objects, kind):
    fuzz(objects, kind, n_json=120)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_every_single_field_edit(objects, kind):
    fuzz(objects, kind, n_json=None)


def fuzz(objects, kind: str, n_json: int | None) -> None:
    """25 byte flips anywhere (checksum kept: refused), 40 header byte flips and n_json
    (None: all) single-field JSON edits with the checksum recomputed."""
    obj, probe = objects[kind]
    data = serialize(obj)
    header, payload = split(data)
    rng = np.random.default_rng(len(kind))
    counts: dict[str, int] = {}
    tried = 0
    for _ in range(25):  # any byte, checksum left alone: always refused
        pos = int(rng.integers(0, len(data)))
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        with pytest.raises(CorruptIndexError):
            deserialize(bytes(bad))
        tried += 1
    prefix_and_header = len(data) - len(payload) - 32
    for _ in range(40):  # a byte of the header, checksum recomputed
        pos = int(rng.integers(_PREFIX.size, prefix_and_header))
        bad = bytearray(data[:-32])
        bad[pos] ^= int(rng.integers(1, 256))
        result = outcome(obj, probe, bytes(bad) + hashlib.sha256(bytes(bad)).digest())
        counts[result] = counts.get(result, 0) + 1
        tried += 1
    cases = [(path, new) for path, value in leaves(header) for new in edits(value)]
    for i in rng.permutation(len(cases))[:n_json]:  # one JSON field, checksum recomputed
        path, new = cases[i]
        edited = json.loads(json.dumps(header))
        set_leaf(edited, path, new)
        result = outcome(obj, probe, rebuild(edited, payload), path)
        counts[result] = counts.get(result, 0) + 1
        tried += 1
    assert counts.get("refused", 0) > 0
    print(f"{kind}: {tried} mutated files, outcomes {counts}")


def lie(obj, **arrays) -> bytes:
    """A file (valid checksum) of obj whose named arrays are replaced."""
    meta, state = obj._state()
    return pack(type(obj)._kind, meta, {**state, **arrays})


def test_files_that_lie_are_refused_naming_the_field(objects):
    flat, ivf = objects["IndexQET"][0], objects["IndexIVFQET"][0]
    _, state = flat._state()
    codes, ids = state["codes"], state["ids"]
    cases = [
        (lie(flat, ids=ids[:-1]), "ids"),  # ids shorter than codes
        (lie(flat, codes=codes[:, :-1]), "codes"),  # codes narrower than code_size
        (lie(flat, codes=codes[:-5]), "codes"),  # codes truncated
        (lie(flat, ids=ids[::-1].copy()), "0..ntotal-1"),  # sequential index, other ids
        (lie(ivf, list_sizes=ivf.lists.size[::-1] + 1), "codes"),
        (lie(ivf, list_sizes=np.r_[ivf.lists.size[:-1], -1]), "list_sizes"),
        (lie(ivf, ids=np.zeros(ivf.ntotal, np.int64)), "distinct"),
        (lie(ivf, centroids=ivf.centroids + 1), "centroids"),
        (lie(flat, **{"codec.stage0.codebooks": state["codec.stage0.codebooks"][:-1]}), "stage0.codebooks"),
    ]
    for data, field in cases:
        with pytest.raises(CorruptIndexError, match=field):
            deserialize(data)


def test_header_that_does_not_tile_the_payload_is_refused(objects):
    header, payload = split(serialize(objects["IndexQET"][0]))
    header["arrays"][0]["nbytes"] += 1
    with pytest.raises(CorruptIndexError, match="offset/nbytes"):
        deserialize(rebuild(header, payload))
    with pytest.raises(CorruptIndexError, match="payload bytes"):
        deserialize(rebuild(split(serialize(objects["IndexQET"][0]))[0], payload + b"\0"))


def test_killed_writer_leaves_no_temp_file_after_the_next_write(objects, tmp_path):
    target = tmp_path / "index.qet"
    stale = tmp_path / ".index.qet.abc123.tmp"  # what a writer killed mid-write leaves
    stale.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".index.qet.def456.tmp"  # a concurrent writer still at work
    fresh.write_bytes(b"in progress")
    other = tmp_path / ".other.qet.abc.tmp"
    other.write_bytes(b"not ours")
    os.utime(other, (old, old))
    write_index(objects["QETQuantizer"][0], target)
    assert not stale.exists() and fresh.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, fresh.name, other.name])
    assert isinstance(qetvec.read_index(target), qetvec.QETQuantizer)


@pytest.mark.parametrize("make", [
    lambda: qetvec.index_factory(16, "IVF4,QET4x6_L0"),
    lambda: qetvec.index_factory(16, "IVF4_HNSW8,QET4x6_L0"),
    lambda: qetvec.index_factory(16, "IVF4,QET4x6_L0,RFlat"),
    lambda: qetvec.IndexIVFQET(faiss.IndexFlatL2(16), 16, 4, 4, seed=np.int64(3), codebook_bits=np.int64(8)),
    lambda: qetvec.IndexQET(16, 4, nbits=np.int64(6), seed=np.uint8(2)),
    lambda: qetvec.compress_matrix(np.random.default_rng(0).standard_normal((400, 16)), 2000, 4,
                                   seed=np.int64(5)),
    lambda: qetvec.IndexQET(16, codec=qetvec.fit.FitCodec(16, np.int64(8), seed=np.int64(3))),
], ids=["ivf", "ivf-hnsw", "refine-ivf", "ivf-numpy-ints", "flat-numpy-ints", "matrix-numpy-seed",
        "auto-numpy-options"])
def test_what_the_writer_writes_the_reader_reads(make, tmp_path):
    """Untrained indexes and settings given as numpy integers are valid objects: write_index
    must write them (JSON takes no numpy ints) and read_index read them back as they were."""
    obj = make()
    write_index(obj, tmp_path / "obj.qet")
    back = qetvec.read_index(tmp_path / "obj.qet")
    assert serialize(back) == serialize(obj)


def test_search_settings_are_checked_when_set_so_files_stay_readable():
    ivf = qetvec.index_factory(16, "IVF4,QET4x6_L0,RFlat")
    with pytest.raises(ValueError, match="nprobe must be >= 1, got 0"):
        ivf.nprobe = 0
    with pytest.raises(ValueError, match="nprobe must be >= 1, got 0"):
        ivf.base.nprobe = 0
    with pytest.raises(TypeError, match="by_residual must be True or False"):
        qetvec.IndexIVFQET(faiss.IndexFlatL2(16), 16, 4, 4, by_residual="no")
    ivf.nprobe = np.int64(3)
    assert type(ivf.nprobe) is int and deserialize(serialize(ivf)).nprobe == 3


def test_a_header_naming_another_kind_says_so(objects):
    flat = objects["IndexQET"][0]
    with pytest.raises(CorruptIndexError, match="header names kind 'IndexIVFQET'.* of kind 'IndexQET'"):
        deserialize(pack("IndexIVFQET", *flat._state()))
    meta, arrays = objects["IndexIVFQET"][0]._state()
    del meta["nprobe"]
    with pytest.raises(CorruptIndexError, match="metadata lacks 'nprobe'"):
        deserialize(pack("IndexIVFQET", meta, arrays))


def test_an_unreadable_coarse_quantizer_is_named(objects):
    ivf = objects["IndexIVFQET"][0]
    coarse = ivf._state()[1]["coarse"]
    for broken in (coarse[:40], np.zeros(0, np.uint8)):
        with pytest.raises(CorruptIndexError, match="coarse: FAISS cannot read the coarse quantizer"):
            deserialize(lie(ivf, coarse=broken))


def test_write_index_names_the_path_it_was_given(objects, tmp_path):
    codec = objects["QETQuantizer"][0]
    with pytest.raises(ValueError, match="path is empty"):
        write_index(codec, "")
    with pytest.raises(FileNotFoundError, match=f"cannot write {tmp_path / 'missing' / 'index.qet'}: "
                       f"folder {tmp_path / 'missing'} does not exist"):
        write_index(codec, tmp_path / "missing" / "index.qet")
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a directory"):
        write_index(codec, tmp_path)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'file'} is not a directory"):
        write_index(codec, tmp_path / "file" / "index.qet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary left behind


def test_refine_file_with_vectors_the_writer_never_writes_is_refused(objects):
    refine = objects["IndexRefineFlat"][0]
    vectors = refine._state()[1]["vectors"].copy()
    vectors[7, 3] = np.nan
    with pytest.raises(CorruptIndexError, match="vectors must be finite float32"):
        deserialize(lie(refine, vectors=vectors))
