"""FAISS integration of qetvec: levels-0 indexes as genuine FAISS indexes and back, so that
clients calling `faiss.write_index` / `faiss.read_index` (LangChain, LlamaIndex) persist them."""
from qetvec_faiss.export import from_faiss, product_quantizer, to_faiss, to_faiss_fast_scan

__all__ = ["to_faiss", "to_faiss_fast_scan", "from_faiss", "product_quantizer"]
