"""The README's Use snippet runs as pasted, on the packaged GloVe data, and prints what the
README says it prints."""
import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.bench  # about 30 CPU seconds: fit_codec over three candidate families
def test_use_snippet_runs_as_pasted(tmp_path, monkeypatch, capsys):
    section = README.read_text().split("\n## Use\n", 1)[1]
    snippet, = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    (tmp_path / "use.py").write_text(snippet)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(tmp_path / "use.py"), run_name="__main__")
    chosen, recall = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"(pq|pca-w\d+|rq8|pca-w4\+rq) \{'pq': 0\.\d+, .*\}", chosen)
    assert float(recall.removeprefix("recall@10: ")) > 0.8
    assert (tmp_path / "glove.qet").is_file()
