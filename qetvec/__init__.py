"""qetvec: QET (Quantum Entanglement Trees) matrix quantization for vector search."""
from qetvec.codec import QETQuantizer
from qetvec.index_flat import IndexQET
from qetvec.io import CorruptIndexError, read_index, write_index
from qetvec.matrix import CompressedMatrix, compress_matrix

__all__ = ["QETQuantizer", "IndexQET", "CompressedMatrix", "compress_matrix", "CorruptIndexError", "read_index", "write_index"]
__version__ = "0.1.0"
