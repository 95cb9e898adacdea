"""FAISS integration of qetvec."""
