"""qetvec: QET (Quantum Entanglement Trees) matrix quantization for vector search."""
from qetvec.codec import QETQuantizer
from qetvec.index_flat import IndexQET
from qetvec.index_ivf import IndexIVFQET
from qetvec.refine import IndexRefineFlat
from qetvec.factory import index_factory
from qetvec.io import CorruptIndexError, read_index, write_index
from qetvec.matrix import CompressedMatrix, compress_matrix

__all__ = ["QETQuantizer", "IndexQET", "IndexIVFQET", "IndexRefineFlat", "index_factory", "CompressedMatrix", "compress_matrix", "CorruptIndexError", "read_index", "write_index"]
__version__ = "0.1.0"
