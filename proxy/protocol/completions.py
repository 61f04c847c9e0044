"""``POST /v1/completions`` (legacy text completions) request."""

from __future__ import annotations

from pydantic import Field

from proxy.protocol.common import OpenModel, StopSequences, StreamOptions

Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(OpenModel):
    model: str
    prompt: Prompt
    best_of: int | None = None
    echo: bool | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    n: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = None
    seed: int | None = None
    stop: StopSequences = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(p for p in self.prompt if isinstance(p, str))
