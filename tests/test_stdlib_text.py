"""qetvec.data.stdlib_text: the texts of the standard library's docstrings and comments, and
their database / query split (no MiniLM needed)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from qetvec.data import stdlib_text
from qetvec.data.stdlib_text import (
    model_key,
    module_passages,
    source_files,
    source_fingerprint,
    stdlib_dir,
    stdlib_passages,
    stdlib_split,
    stdlib_texts,
)

SOURCE = b'''#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Tools for parsing the frobnicator configuration files.

Each file holds sections. A section starts with a header line
that names it.

>>> parse("x")
{'x': 1}
"""

# The parser keeps its state in a small class. It never
# reads ahead more than one line.
#
# A second block after an empty comment line.
x = 1  # a trailing comment that explains this assignment


def parse(text):
    """Parse the given configuration text and return its sections."""
    return {}  # ok
'''


def test_module_passages_of_a_written_out_module():
    """Docstring paragraphs and comment blocks, each as the passage, its sentences and its
    lines; shebang, coding line, doctests and texts under 20 characters left out."""
    assert module_passages(SOURCE) == [
        ["Tools for parsing the frobnicator configuration files."],
        ["Each file holds sections. A section starts with a header line that names it.",
         "Each file holds sections.",
         "A section starts with a header line that names it.",
         "Each file holds sections. A section starts with a header line"],
        ["The parser keeps its state in a small class. It never reads ahead more than one line.",
         "The parser keeps its state in a small class.",
         "It never reads ahead more than one line.",
         "The parser keeps its state in a small class. It never",
         "reads ahead more than one line."],
        ["A second block after an empty comment line."],
        ["a trailing comment that explains this assignment"],
        ["Parse the given configuration text and return its sections."],
    ]


def test_text_that_is_not_prose_is_dropped():
    source = b'# ==========================================\n# x = compute(a, b, c)[0] + 1\nx = 1\n'
    assert module_passages(source) == []


def _module_texts(path: Path) -> set[str]:
    return {text for texts in module_passages(path.read_bytes()) for text in texts}


def test_real_module_gives_its_docstring_sentences_and_comments():
    """json/__init__.py: the first paragraph of json.__doc__ (split here independently) and a
    comment line found by scanning the file's lines; none of its doctest lines."""
    path = stdlib_dir() / "json" / "__init__.py"
    texts = _module_texts(path)
    first_paragraph = " ".join(json.__doc__.split("\n\n")[0].split())
    assert first_paragraph in texts
    for sentence in re.split(r"(?<=\.) (?=[A-Z])", first_paragraph):
        assert sentence in texts
    assert not any(">>>" in text for text in texts)
    textwrap_path = stdlib_dir() / "textwrap.py"
    comment = next(line.strip().lstrip("#").strip() for line in textwrap_path.read_text().splitlines()
                   if line.strip().startswith("#") and len(line.strip()) > 40)
    assert comment in _module_texts(textwrap_path)


def _tree(tmp_path: Path) -> Path:
    """A small standard-library-like tree: real modules, a package, and files to leave out."""
    root = tmp_path / "lib"
    (root / "json").mkdir(parents=True)
    for name in ("__init__.py", "decoder.py", "encoder.py"):
        shutil.copy(stdlib_dir() / "json" / name, root / "json" / name)
    for name in ("textwrap.py", "argparse.py", "fractions.py"):
        shutil.copy(stdlib_dir() / name, root / name)
    for skipped in ("site-packages/foo.py", "json/__pycache__/x.py", "_sysconfigdata__linux.py"):
        (root / skipped).parent.mkdir(parents=True, exist_ok=True)
        (root / skipped).write_text('"""A module that must be left out of the corpus entirely."""\n')
    (root / "badsyntax.py").write_text('"""A module that does not parse at all, so it is skipped."""\ndef (:\n')
    return root


def test_source_files_sorted_and_third_party_left_out(tmp_path):
    root = _tree(tmp_path)
    names = [p.relative_to(root).as_posix() for p in source_files(root)]
    assert names == ["argparse.py", "badsyntax.py", "fractions.py", "json/__init__.py", "json/decoder.py",
                     "json/encoder.py", "textwrap.py"]
    assert not any("left out" in text or "does not parse" in text for text in stdlib_texts(root))


def test_texts_unique_ignoring_case_and_in_corpus_order(tmp_path):
    root = _tree(tmp_path)
    (root / "zz.py").write_text('"""THE PARSER KEEPS ITS STATE IN A SMALL CLASS."""\n'
                                '# the parser keeps its state in a small class.\nx = 1\n'
                                '# "libxyz.so.MAJOR.MINOR" => [ MAJOR, MINOR ] (the café)\nx = 2\n'
                                '# "libxyz.so.MAJOR.MINOR" => [MAJOR, MINOR] (the cafe)\nx = 3\n'
                                '# A new sentence that appears only in this module.\n')
    texts = stdlib_texts(root)
    assert len({t.casefold() for t in texts}) == len(texts) > 1000
    # case, accents and spaces at punctuation do not count: the tokenizer drops them
    assert texts[-3:] == ["THE PARSER KEEPS ITS STATE IN A SMALL CLASS.",
                          '"libxyz.so.MAJOR.MINOR" => [ MAJOR, MINOR ] (the café)',
                          "A new sentence that appears only in this module."]
    assert texts[0] in _module_texts(root / "argparse.py")  # first file in sorted order


def test_model_key_matches_the_tokenizers_normalisation():
    assert model_key("Über [ A , b ]_x") == model_key("uber [a,B] _ x") == "uber[a,b]_x"
    assert model_key("a b") != model_key("ab")


def test_split_is_disjoint_by_passage_and_deterministic(tmp_path):
    root = _tree(tmp_path)
    database, queries = stdlib_split(root, n_queries=300, seed=3)
    assert len(queries) == 300
    assert not {t.casefold() for t in database} & {t.casefold() for t in queries}
    assert len(set(database)) == len(database)
    for group in stdlib_passages(root):  # a passage's texts are all on one side (or dropped)
        assert not (set(group) & set(database) and set(group) & set(queries))
    dropped = set(stdlib_texts(root)) - set(database) - set(queries)
    assert len(dropped) < max(map(len, stdlib_passages(root)))  # only the rest of the last passage
    assert stdlib_split(root, n_queries=300, seed=3) == (database, queries)
    assert stdlib_split(root, n_queries=300, seed=4)[1] != queries


def test_split_refuses_more_queries_than_texts(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(ValueError, match="n_queries=10000000: the corpus has"):
        stdlib_split(root, n_queries=10_000_000)


def test_fingerprint_follows_the_sources(tmp_path):
    root = _tree(tmp_path)
    before = source_fingerprint(root)
    assert source_fingerprint(root) == before
    (root / "site-packages" / "foo.py").write_text("# third-party change\n")
    assert source_fingerprint(root) == before
    (root / "textwrap.py").write_text((root / "textwrap.py").read_text() + "# one more comment line\n")
    assert source_fingerprint(root) != before


@pytest.mark.slow
def test_full_corpus_size():
    database, queries = stdlib_split()
    assert len(database) >= 100_000 and len(queries) == stdlib_text.N_QUERIES
    assert not {t.casefold() for t in database} & {t.casefold() for t in queries}
