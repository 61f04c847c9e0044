"""Pieces shared by every endpoint's wire models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class OpenModel(BaseModel):
    """Accepts fields it does not know, so new OpenAI or vLLM parameters pass through."""

    model_config = ConfigDict(extra="allow")


class StreamOptions(OpenModel):
    include_usage: bool | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "tollhouse"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


StopSequences = str | list[str] | None
JsonObject = dict[str, Any]
