"""Build a tiny Llama for vLLM to serve in the ``vllm`` suite, offline and in seconds.

Two layers of random weights (seeded, so every build is the same model) behind a byte-level
BPE tokenizer trained here on synthetic text, saved with a chat template so vLLM serves
``/v1/chat/completions`` as well as ``/v1/completions``. Its answers are noise: the suite
checks the protocol, not the prose. Nothing is downloaded.

Run with the vLLM virtualenv's Python (it needs torch and transformers, which Tollhouse's
own environment does not promise)::

    $TOLLHOUSE_VLLM_VENV/bin/python tests/vllm/tiny_model.py OUTPUT_DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
VOCAB_SIZE = 512
SEED = 20260101
# Roles as special tokens, each message closed by the end-of-sequence token; a generation
# prompt opens the assistant's turn. It ends in plain text on purpose: random weights with
# tied embeddings tend to repeat the last token, and a special one would be skipped from
# the answer, leaving every chat reply empty.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>reply:{% endif %}"
)

_TEXT = (
    "the a toll house proxy model answer request audit record policy token stream chunk "
    "usage span trace replica server client route budget spend vector text chat hello "
    "world quick brown fox jumps over lazy dog one two three four five six seven eight "
    "nine ten red green blue amber sends reads writes counts keeps checks returns"
)
_WORDS = _TEXT.split()


def corpus(lines: int = 4000) -> Iterator[str]:
    """Synthetic sentences: every word, in many orders, with digits and punctuation."""
    cycle = itertools.cycle(_WORDS)
    for number in range(lines):
        width = 4 + number % 9
        words = [next(cycle) for _ in range(width)]
        if number % 3 == 0:
            words.reverse()
        yield " ".join(words) + (f" {number}." if number % 5 == 0 else "?" if number % 7 else ",")


def build_tokenizer(output: Path) -> int:
    """Train the tokenizer, save it beside the model; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS + ROLE_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text encodes
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )
    fast.save_pretrained(output)
    return len(fast)


def build_model(output: Path, vocab_size: int) -> None:
    """Save a seeded two-layer Llama (head size 64, which vLLM's CPU attention supports)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=SPECIAL_TOKENS.index("<s>"),
        eos_token_id=SPECIAL_TOKENS.index("</s>"),
        pad_token_id=SPECIAL_TOKENS.index("<pad>"),
        tie_word_embeddings=True,
        dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(output, safe_serialization=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("output", type=Path, help="directory for the model (created)")
    output: Path = parser.parse_args().output
    output.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(output)
    build_model(output, vocab_size)
    print(json.dumps({"model": str(output), "vocab_size": vocab_size}))


if __name__ == "__main__":
    main()
