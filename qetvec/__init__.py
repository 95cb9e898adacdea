"""qetvec: QET (Quantum Entanglement Trees) matrix quantization for vector search."""
import os

# FAISS and numba each load their own OpenMP runtime; with the default wait policy the idle
# threads of one spin on the cores the other needs (measured: 2-thread IVF search ~10x
# slower on a busy 2-core box). Passive waiting unless the user chose otherwise; it holds
# for every runtime loaded after this line, so import qetvec before faiss.
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
