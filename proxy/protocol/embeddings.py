"""``POST /v1/embeddings`` request."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from proxy.protocol.common import OpenModel

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(OpenModel):
    input: EmbeddingInput
    model: str
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    stream: Literal[False, None] = None  # embeddings never stream

    def prompt_text(self) -> str:
        if isinstance(self.input, str):
            return self.input
        return "\n".join(p for p in self.input if isinstance(p, str))
