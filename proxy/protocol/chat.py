"""``POST /v1/chat/completions`` request, in OpenAI's field order.

Every message content shape OpenAI accepts is modelled: plain strings and arrays of
text, image, audio, file and refusal parts; tool calls and the older function calls.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from proxy.protocol.common import JsonObject, OpenModel, StopSequences, StreamOptions


class TextPart(OpenModel):
    type: Literal["text"]
    text: str


class ImageUrl(OpenModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(OpenModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(OpenModel):
    data: str
    format: str


class AudioPart(OpenModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(OpenModel):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(OpenModel):
    type: Literal["file"]
    file: FileRef


class RefusalPart(OpenModel):
    type: Literal["refusal"]
    refusal: str


class OtherPart(OpenModel):
    """A part type newer than this model (e.g. a vLLM extension): passed through."""

    type: str


def _part_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    known = {"text", "image_url", "input_audio", "file", "refusal"}
    return kind if kind in known else "other"


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[AudioPart, Tag("input_audio")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(_part_tag),
]
Content = str | list[ContentPart]


class FunctionCall(OpenModel):
    name: str
    arguments: str


class ToolCall(OpenModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(OpenModel):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(OpenModel):
    role: Literal["developer"]
    content: Content
    name: str | None = None


class UserMessage(OpenModel):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(OpenModel):
    role: Literal["assistant"]
    content: Content | None = None
    refusal: str | None = None
    name: str | None = None
    audio: JsonObject | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None


class ToolMessage(OpenModel):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


class FunctionMessage(OpenModel):
    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage,
    Field(discriminator="role"),
]


class FunctionDefinition(OpenModel):
    name: str
    description: str | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class Tool(OpenModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ChatCompletionRequest(OpenModel):
    messages: Annotated[list[Message], Field(min_length=1)]
    model: str
    audio: JsonObject | None = None
    frequency_penalty: float | None = None
    function_call: str | JsonObject | None = None
    functions: list[FunctionDefinition] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    prediction: JsonObject | None = None
    presence_penalty: float | None = None
    reasoning_effort: str | None = None
    response_format: JsonObject | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: StopSequences = None
    store: bool | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    tool_choice: str | JsonObject | None = None
    tools: list[Tool] | None = None
    top_logprobs: int | None = None
    top_p: float | None = None
    user: str | None = None
    web_search_options: JsonObject | None = None

    def prompt_text(self) -> str:
        """All text the caller sent, for token estimates."""
        pieces: list[str] = []
        for message in self.messages:
            content = message.content
            if isinstance(content, str):
                pieces.append(content)
            elif content:
                pieces.extend(p.text for p in content if isinstance(p, TextPart))
        return "\n".join(pieces)
