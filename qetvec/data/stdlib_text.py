"""Real English text of CPython's own sources: the docstrings and comments of the modules
of the running Python's standard library.

Corpus: every ``.py`` file under ``sysconfig.get_path("stdlib")``, in sorted relative-path
order, except third-party and build-specific files (``site-packages``, ``dist-packages``,
``__pycache__``, ``_sysconfigdata_*``, ``config-*``); a file that does not parse or
tokenize (the test suite ships a few on purpose) is skipped.

Passages of one module, in source order:

- docstrings: the module's, classes' and functions' (``ast.get_docstring``), cut into
  paragraphs at blank lines; a doctest example (from a ``>>>`` line to the end of its
  paragraph) is dropped;
- comments (``tokenize``): consecutive whole-line ``#`` comments form one passage and an
  empty ``#`` line ends it; a comment after code is a passage of its own; the ``#!`` line
  and the encoding declaration are left out.

Texts of a passage: the whole passage, each of its sentences
(`qetvec.data.corpus.split_sentences`) and each of its lines, whitespace collapsed. A text
is kept if it has at least ``MIN_TEXT_CHARS`` characters, reads as prose (``_PROSE``: at
least 3 words of 2+ letters that make up at least half its characters), and no text with the
same `model_key` came before it in the corpus (the model lower-cases, strips accents and
splits at punctuation, so texts that differ only there would have the same embedding).

The text differs between CPython versions (patch releases edit docstrings too), so caches
of data derived from it are keyed by `source_fingerprint`, a hash of the source files.
"""
from __future__ import annotations

import ast
import hashlib
import io
import re
import sysconfig
import tokenize
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qetvec.data.corpus import PARAGRAPH_BREAK, split_sentences

MIN_TEXT_CHARS = 20
N_QUERIES = 10_000
"""Query texts held out by `stdlib_split`."""

_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
_WORD = re.compile(r"[^\W\d_]{2,}")  # a run of 2+ letters
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=]")  # PEP 263
_SPACE_AT_PUNCTUATION = re.compile(r"\s*([^\w\s]|_)\s*")
_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_dir() -> Path:
    """The running Python's standard-library directory."""
    return Path(sysconfig.get_path("stdlib"))


def source_files(root: Path | None = None) -> list[Path]:
    """The corpus' ``.py`` files under `root` (default `stdlib_dir`), sorted by relative path."""
    root = stdlib_dir() if root is None else Path(root)
    files = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if _EXCLUDED_DIRS.intersection(parts) or parts[0].startswith(("_sysconfigdata_", "config-")):
            continue
        files.append((path.relative_to(root).as_posix(), path))
    return [path for _, path in sorted(files)]


def source_fingerprint(root: Path | None = None) -> str:
    """First 12 hex digits of the SHA-256 of every corpus file's relative path and bytes:
    changes whenever any text of the corpus may have changed."""
    root = stdlib_dir() if root is None else Path(root)
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _docstring_passages(tree: ast.Module) -> Iterator[tuple[int, list[str]]]:
    """(line, lines of one paragraph) for every docstring paragraph, doctests dropped."""
    for node in ast.walk(tree):
        doc = ast.get_docstring(node) if isinstance(node, _DOCSTRING_OWNERS) else None
        if not doc:
            continue
        for paragraph in PARAGRAPH_BREAK.split(doc):
            lines = []
            for line in paragraph.splitlines():
                if line.lstrip().startswith(">>>"):
                    break
                lines.append(line)
            if lines:
                yield node.body[0].lineno, lines


def _comment_passages(source: bytes) -> Iterator[tuple[int, list[str]]]:
    """(first line, comment texts without the ``#``) for every comment passage."""
    block: list[str] = []
    start = previous = 0
    for tok in tokenize.tokenize(io.BytesIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        line, text = tok.start[0], tok.string.lstrip("#").strip()
        own_line = not tok.line[: tok.start[1]].strip()
        if block and not (own_line and text and line == previous + 1):
            yield start, block
            block = []
        previous = line
        if not text or (line <= 2 and (tok.string.startswith("#!") or _CODING.match(tok.line))):
            continue
        if not own_line:
            yield line, [text]
        elif not block:
            start, block = line, [text]
        else:
            block.append(text)
    if block:
        yield start, block


def _is_prose(text: str) -> bool:
    """At least MIN_TEXT_CHARS characters, 3+ words of 2+ letters, their letters at least half
    of the characters (drops rulers like ``# -----``, code, hex dumps)."""
    words = _WORD.findall(text)
    return len(text) >= MIN_TEXT_CHARS and len(words) >= 3 and 2 * sum(map(len, words)) >= len(text)


def model_key(text: str) -> str:
    """`text` as the model's tokenizer sees it before word pieces: case-folded, accents
    stripped, no whitespace around punctuation (BERT splits there anyway, ``_`` included).
    Texts with equal keys tokenize alike, so they are one text of the corpus."""
    folded = unicodedata.normalize("NFD", text.casefold())
    folded = "".join(c for c in folded if unicodedata.category(c) != "Mn")
    return _SPACE_AT_PUNCTUATION.sub(r"\1", folded)


def passage_texts(lines: list[str]) -> list[str]:
    """The candidate texts of one passage (lines as written): the passage, its sentences and
    its lines, whitespace collapsed, those that pass the length and prose filter, in that
    order, each once."""
    passage = " ".join(" ".join(lines).split())
    candidates = [passage, *split_sentences(passage), *(" ".join(line.split()) for line in lines)]
    return list(dict.fromkeys(text for text in candidates if _is_prose(text)))


def module_passages(source: bytes) -> list[list[str]]:
    """The passages of one module's source, each as its candidate texts (`passage_texts`), in
    source order (docstrings before comments on the same line). Raises SyntaxError,
    ValueError or tokenize.TokenError if the source does not parse."""
    with warnings.catch_warnings():  # invalid escapes etc. in the parsed sources are not ours
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    passages = sorted([*_docstring_passages(tree), *_comment_passages(source)], key=lambda p: p[0])
    return [texts for _, lines in passages if (texts := passage_texts(lines))]


def stdlib_passages(root: Path | None = None) -> list[list[str]]:
    """The corpus' unique texts, grouped by the passage each first appears in (passages
    left without a new text are dropped), in corpus order. See the module docstring."""
    seen: set[str] = set()
    groups = []
    for path in source_files(root):
        try:
            passages = module_passages(path.read_bytes())
        except (SyntaxError, ValueError, tokenize.TokenError):
            continue
        for texts in passages:
            group = []
            for text in texts:
                key = model_key(text)
                if key not in seen:
                    seen.add(key)
                    group.append(text)
            if group:
                groups.append(group)
    return groups


def stdlib_texts(root: Path | None = None) -> list[str]:
    """Every unique text of the corpus, in corpus order (111,111 on CPython 3.11.7)."""
    return [text for group in stdlib_passages(root) for text in group]


def stdlib_split(root: Path | None = None, n_queries: int = N_QUERIES, seed: int = 0) -> tuple[list[str], list[str]]:
    """(database texts, query texts): disjoint, each in corpus order, split by passage.

    Passages are visited in the order of a ``np.random.default_rng(seed)`` permutation and
    their texts become queries until there are `n_queries` (of the last passage taken, its
    first texts; the rest of it is dropped), so no query shares a passage with a database
    text. Every other passage's texts form the database. ValueError if the corpus has fewer
    than `n_queries` texts.
    """
    groups = stdlib_passages(root)
    total = sum(map(len, groups))
    if not 0 <= n_queries <= total:
        raise ValueError(f"n_queries={n_queries}: the corpus has {total} texts")
    taken: dict[int, int] = {}  # passage index -> how many of its texts are queries
    needed = n_queries
    for index in np.random.default_rng(seed).permutation(len(groups)):
        if needed == 0:
            break
        taken[int(index)] = min(needed, len(groups[index]))
        needed -= taken[int(index)]
    database = [text for i, group in enumerate(groups) if i not in taken for text in group]
    queries = [text for i, group in enumerate(groups) if i in taken for text in group[: taken[i]]]
    return database, queries
