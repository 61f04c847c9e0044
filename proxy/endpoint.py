"""The model-calling endpoints Tollhouse serves."""

from enum import StrEnum


class Endpoint(StrEnum):
    CHAT = "chat.completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
