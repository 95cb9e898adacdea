"""Real English text that ships with CPython: the help topics of ``pydoc_data.topics``.

The text differs slightly between Python versions, so everything derived from it is
deterministic for a given CPython minor version (see ``CORPUS_TAG``).
"""
from __future__ import annotations

import re
import sys

CORPUS_TAG = f"py{sys.version_info[0]}.{sys.version_info[1]}"
"""Identifies the corpus version (the CPython minor version); part of cache file names."""

MIN_SENTENCE_CHARS = 30

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
"""A blank line (possibly holding spaces) between two paragraphs."""
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph: whitespace collapsed to single spaces, then a cut
    after ``.``, ``!`` or ``?`` followed by whitespace and a capital letter."""
    return _SENTENCE_BREAK.split(" ".join(paragraph.split()))


def pydoc_documents() -> list[str]:
    """The help-topic texts of ``pydoc_data.topics.topics``, in sorted key order.

    Raises ImportError with a clear message if this Python was built without
    ``pydoc_data`` (some Linux distributions strip it).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:
        raise ImportError(
            "qetvec's MiniLM text datasets use the CPython documentation in the standard "
            "module 'pydoc_data', which this Python installation does not have (some "
            "distributions strip it; install the full Python standard library)."
        ) from exc
    return [topics[key] for key in sorted(topics)]


def pydoc_sentences() -> list[str]:
    """Unique sentences of the pydoc topics, in corpus order.

    Each document is split into paragraphs at blank lines and each paragraph into
    sentences (`split_sentences`); sentences shorter than ``MIN_SENTENCE_CHARS``
    characters and repeats of an earlier sentence are dropped.
    (2,904 sentences on CPython 3.11.)
    """
    seen: dict[str, None] = {}
    for doc in pydoc_documents():
        for paragraph in PARAGRAPH_BREAK.split(doc):
            for sentence in split_sentences(paragraph):
                if len(sentence) >= MIN_SENTENCE_CHARS:
                    seen.setdefault(sentence, None)
    return list(seen)
