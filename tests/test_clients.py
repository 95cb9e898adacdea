"""Compatibility suite: the REAL LangChain `FAISS` vector store and LlamaIndex
`FaissVectorStore` driving qetvec indexes, on a GloVe slice with a deterministic lookup
"embedding" (no network, no model). Each flow is checked against an independent statement:
the same calls on a genuine FAISS index holding the same codebooks (levels 0), or a store
built from scratch with the documents that should remain.

Run with `pytest -m clients`; needs the `clients` extra (langchain-community, langchain-core,
llama-index-core, llama-index-vector-stores-faiss)."""
import faiss
import numpy as np
import pytest

import qetvec
from qetvec.io import deserialize, serialize
from qetvec_faiss.export import from_faiss, to_faiss

lc_faiss = pytest.importorskip("langchain_community.vectorstores.faiss")
pytest.importorskip("llama_index.vector_stores.faiss")
from langchain_community.docstore.in_memory import InMemoryDocstore  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.core.vector_stores.types import VectorStoreQuery  # noqa: E402
from llama_index.vector_stores.faiss import FaissVectorStore  # noqa: E402

pytestmark = pytest.mark.clients

N_DOCS = 1200
SPECS = ["QET10x6_L0", "QET10x6_L1", "QET10x6_L1,RFlat", "IVF16,QET10x6_L0", "IVF16,QET10x6_L1,RFlat"]


class LookupEmbeddings(Embeddings):
    """Text "w<i>" -> row i of a fixed matrix: deterministic, offline."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[int(text[1:])].tolist()


@pytest.fixture(scope="module")
def corpus(glove_split):
    train, test = glove_split
    vectors = np.concatenate([train[:N_DOCS], test[:20]])  # docs w0.., queries w1200..
    return train[N_DOCS:N_DOCS + 3000], LookupEmbeddings(vectors)


@pytest.fixture(scope="module")
def trained(corpus):
    """Serialized empty trained index per spec: every store of a test starts from it, so
    stores share codebooks (merge needs that) and FAISS exports answer identically."""
    train, _ = corpus
    out = {}
    for spec in SPECS:
        index = qetvec.index_factory(50, spec)
        index.train(train)
        out[spec] = serialize(index)
    return out


def fresh(trained, spec):
    index = deserialize(trained[spec])
    if hasattr(index, "k_factor"):
        index.k_factor = 4
    if "IVF" in spec:
        index.nprobe = 4
    return index


def store(emb, index, texts=()):
    s = lc_faiss.FAISS(emb, index, InMemoryDocstore(), {})
    if texts:
        s.add_texts(list(texts), ids=list(texts))
    return s


class Score(float):
    """A score that equals another within float32 rounding of the same distance computed
    another way (qetvec's and FAISS's ADC sum their table terms in different orders)."""

    def __eq__(self, other):
        return abs(self - other) <= 1e-5 * max(1.0, abs(other))

    __hash__ = float.__hash__


def hits(s, queries, k=5, scores=False):
    if scores:
        return [[(d.page_content, Score(v)) for d, v in s.similarity_search_with_score(q, k=k)]
                for q in queries]
    return [[d.page_content for d in s.similarity_search(q, k=k)] for q in queries]


QUERIES = [f"w{N_DOCS + j}" for j in range(20)]
DOCS = [f"w{i}" for i in range(N_DOCS)]


@pytest.mark.parametrize("spec", SPECS)
def test_langchain_add_search_scores_mmr(corpus, trained, spec):
    _, emb = corpus
    ours = store(emb, fresh(trained, spec), DOCS[:1000])
    results = hits(ours, QUERIES, scores=True)
    assert all(len(r) == 5 for r in results)
    mmr = [[d.page_content for d in ours.max_marginal_relevance_search(q, k=4, fetch_k=20)] for q in QUERIES]
    assert all(len(m) == 4 and len(set(m)) == 4 for m in mmr)
    if spec.endswith("_L0"):  # same calls on genuine FAISS with the same codebooks
        theirs = store(emb, to_faiss(fresh(trained, spec)), DOCS[:1000])
        if "IVF" in spec:
            theirs.index.nprobe = 4
            theirs.index.make_direct_map()  # FAISS IVF needs it for MMR's reconstruct
        assert hits(theirs, QUERIES, scores=True) == results
        assert [[d.page_content for d in theirs.max_marginal_relevance_search(q, k=4, fetch_k=20)]
                for q in QUERIES] == mmr


@pytest.mark.parametrize("spec", [s for s in SPECS if "IVF" not in s])
def test_langchain_delete_then_search_then_add(corpus, trained, spec):
    """LangChain renumbers its position -> document map on delete, as FAISS flat indexes
    renumber ids: after deleting, results equal a store built without those documents."""
    _, emb = corpus
    ours = store(emb, fresh(trained, spec), DOCS[:1000])
    gone = DOCS[:1000:7]
    ours.delete(gone)
    kept = [d for d in DOCS[:1000] if d not in set(gone)]
    assert hits(ours, QUERIES) == hits(store(emb, fresh(trained, spec), kept), QUERIES)
    ours.add_texts(DOCS[1000:1100], ids=DOCS[1000:1100])  # add after delete
    assert hits(ours, QUERIES, scores=True) == hits(store(emb, fresh(trained, spec), kept + DOCS[1000:1100]),
                                                    QUERIES, scores=True)
    assert not set(sum(hits(ours, QUERIES, k=50), [])) & set(gone)


@pytest.mark.parametrize("spec", [s for s in SPECS if "IVF" not in s])
def test_langchain_merge_from(corpus, trained, spec):
    _, emb = corpus
    left = store(emb, fresh(trained, spec), DOCS[:600])
    left.merge_from(store(emb, fresh(trained, spec), DOCS[600:1000]))
    assert hits(left, QUERIES, scores=True) == hits(store(emb, fresh(trained, spec), DOCS[:1000]),
                                                    QUERIES, scores=True)


@pytest.mark.parametrize("spec", SPECS)
def test_langchain_persist_and_reload(corpus, trained, spec, tmp_path):
    """levels 0: export to FAISS before save_local (one line), load_local reads a genuine
    FAISS index, from_faiss returns to qetvec. Any level: serialize_to_bytes pickles the
    index through qetvec's checked format, unchanged client code."""
    _, emb = corpus
    ours = store(emb, fresh(trained, spec), DOCS[:1000])
    expected = hits(ours, QUERIES, scores=True)
    blob = ours.serialize_to_bytes()
    again = lc_faiss.FAISS.deserialize_from_bytes(blob, emb, allow_dangerous_deserialization=True)
    assert hits(again, QUERIES, scores=True) == expected
    if spec.endswith("_L0"):
        ours.index = to_faiss(ours.index)
        ours.save_local(str(tmp_path))
        loaded = lc_faiss.FAISS.load_local(str(tmp_path), emb, allow_dangerous_deserialization=True)
        assert isinstance(loaded.index, (faiss.IndexPQ, faiss.IndexIVFPQ))
        assert hits(loaded, QUERIES, scores=True) == expected  # nprobe is persisted too
        loaded.index = from_faiss(loaded.index)
        assert hits(loaded, QUERIES, scores=True) == expected


def nodes(emb, names):
    return [TextNode(text=n, id_=n, embedding=emb.embed_query(n)) for n in names]


def query(vs, emb, q, k=5):
    result = vs.query(VectorStoreQuery(query_embedding=emb.embed_query(q), similarity_top_k=k))
    return list(result.ids), [Score(s) for s in result.similarities]


@pytest.mark.parametrize("spec", SPECS)
def test_llamaindex_one_row_adds_query_and_persist(corpus, trained, spec, tmp_path):
    _, emb = corpus
    index = fresh(trained, spec)
    vs = FaissVectorStore(faiss_index=index)
    ids = vs.add(nodes(emb, DOCS[:1000]))  # one index.add per node
    assert ids == [str(i) for i in range(1000)] and index.ntotal == 1000
    expected = [query(vs, emb, q) for q in QUERIES]
    D, I = index.search(np.array([emb.embed_query(q) for q in QUERIES], np.float32), 5)
    assert [e[0] for e in expected] == [[str(i) for i in row] for row in I]
    if spec.endswith("_L0"):  # persist: the client's own faiss.write_index on the export
        FaissVectorStore(faiss_index=to_faiss(index)).persist(str(tmp_path / "vs.faiss"))
        back = FaissVectorStore.from_persist_path(str(tmp_path / "vs.faiss"))
        assert [query(back, emb, q) for q in QUERIES] == expected
    else:  # levels >= 1: qetvec.write_index / read_index in place of persist / from_persist_path
        with pytest.raises(TypeError):
            vs.persist(str(tmp_path / "vs.faiss"))
        qetvec.write_index(vs.client, tmp_path / "vs.qet")
        back = FaissVectorStore(faiss_index=qetvec.read_index(tmp_path / "vs.qet"))
        assert [query(back, emb, q) for q in QUERIES] == expected
