"""qetvec: QET (Quantum Entanglement Trees) matrix quantization for vector search."""
import os

# An OpenMP runtime reads its wait policy when it loads. numba's (its default threading layer)
# loads at qetvec's first parallel kernel, after this line whichever of faiss and qetvec was
# imported first: its idle threads sleep instead of spinning on cores other threads need.
# FAISS's loads at `import faiss` (PASSIVE too if qetvec came first); qetvec never starts its
# team (`qetvec.faiss_threads`), so qetvec's speed does not depend on the import order.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from qetvec.codec import Codec
from qetvec.quantizer import QETQuantizer
from qetvec.fit import fit_codec
from qetvec.index_flat import IndexQET
from qetvec.index_ivf import IndexIVFQET
from qetvec.refine import IndexRefineFlat
from qetvec.factory import index_factory
from qetvec.io import CorruptIndexError, read_index, write_index
from qetvec.matrix import CompressedMatrix, compress_matrix

__all__ = ["Codec", "QETQuantizer", "fit_codec", "IndexQET", "IndexIVFQET", "IndexRefineFlat", "index_factory", "CompressedMatrix", "compress_matrix", "CorruptIndexError", "read_index", "write_index"]
__version__ = "0.1.0"
