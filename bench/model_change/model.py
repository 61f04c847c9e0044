"""The watched "provider model": a small character-level GRU trained on the Python stdlib.

Everything is deterministic: the corpus is the sorted list of top-level ``*.py`` files of the
running interpreter's stdlib (``sysconfig.get_paths()["stdlib"]``); every tenth file is held out
(the canary prompts come from there); the base model trains on the even-numbered remaining
files with seed 0, the sibling (the substitute in the mixture variants) on the odd-numbered ones
with seed 1. Weights are cached under ``.cache/`` next to this file, so re-runs skip training.

The variants a provider might silently ship (see ``VARIANTS``) are built from these weights:
int8 dynamic quantisation, Gaussian weight noise, one fine-tuning step on different text
(the stdlib's ``LICENSE.txt``), and sampling changes (temperature, top-p) applied at serving.
"""

from __future__ import annotations

import copy
import math
import sysconfig
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
CHAR_ID = {ch: i for i, ch in enumerate(VOCAB)}
UNKNOWN = CHAR_ID["?"]
TRAIN_STEPS = 1500
SEQ_LEN, BATCH = 96, 32


def encode(text: str) -> list[int]:
    """Characters to ids; tabs become 4 spaces, anything outside printable ASCII becomes '?'."""
    return [CHAR_ID.get(ch, UNKNOWN) for ch in text.replace("\t", "    ")]


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def corpus_files() -> list[Path]:
    """The stdlib's top-level modules, sorted: the same list on every run of one interpreter."""
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def corpus_split() -> dict[str, str]:
    """Deterministic slices: 'held_out' (every 10th file), 'base' and 'sibling' (the rest)."""
    parts: dict[str, list[str]] = {"held_out": [], "base": [], "sibling": []}
    rest = 0
    for i, path in enumerate(corpus_files()):
        text = path.read_text(encoding="utf-8", errors="replace")
        if i % 10 == 9:
            parts["held_out"].append(text)
        else:
            parts["base" if rest % 2 == 0 else "sibling"].append(text)
            rest += 1
    return {name: "\n".join(texts) for name, texts in parts.items()}


class CharLM(nn.Module):
    """Embedding -> 2-layer GRU (128 units) -> logits over the 96-character vocabulary."""

    def __init__(self, hidden: int = 128, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), embed)
        self.rnn = nn.GRU(embed, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, len(VOCAB))

    def forward(
        self, ids: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.rnn(self.embed(ids), state)
        return self.head(out), state


def _batches(data: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, data.numel() - SEQ_LEN - 1, (BATCH,), generator=gen)
    return torch.stack([data[s : s + SEQ_LEN + 1] for s in starts.tolist()])


def train(text: str, seed: int, steps: int = TRAIN_STEPS) -> CharLM:
    """Adam with cosine decay on random windows of ``text``; a few minutes on one core."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.tensor(encode(text), dtype=torch.long)
    model = CharLM()
    opt = torch.optim.Adam(model.parameters(), lr=4e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    started = time.perf_counter()
    for step in range(steps):
        batch = _batches(data, gen)
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(
                f"  seed {seed} step {step:5d} loss {loss.item():.3f} "
                f"({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
    return model.eval()


def load_or_train(name: str, seed: int, text: str) -> CharLM:
    """Cached weights if present, else train and cache them."""
    path = CACHE / f"{name}-seed{seed}-steps{TRAIN_STEPS}.pt"
    model = CharLM()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    CACHE.mkdir(exist_ok=True)
    print(f"training {name} model (seed {seed}; cached afterwards at {path})", flush=True)
    model = train(text, seed)
    torch.save(model.state_dict(), path)
    return model


def held_out_loss(model: nn.Module, text: str, chars: int = 20000) -> float:
    """Mean next-character cross-entropy (nats) on the start of ``text``."""
    ids = torch.tensor(encode(text[:chars]), dtype=torch.long)[None]
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    return float(nn.functional.cross_entropy(logits[0], ids[0, 1:]))


def quantise_int8(model: CharLM) -> nn.Module:
    """int8 dynamic quantisation of the GRU and the output layer (embedding stays float)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(model), {nn.GRU, nn.Linear}, dtype=torch.qint8)


def add_noise(model: CharLM, relative: float, seed: int) -> CharLM:
    """Gaussian noise on every weight, with SD ``relative`` times that tensor's own SD."""
    noisy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * p.std() * relative)
    return noisy


def finetune_step(model: CharLM, text: str, lr: float, seed: int) -> CharLM:
    """One plain SGD step on a batch of ``text`` (here: licence prose, unlike the training code)."""
    tuned = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(seed)
    batch = _batches(torch.tensor(encode(text), dtype=torch.long), gen)
    logits, _ = tuned(batch[:, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), batch[:, 1:].reshape(-1))
    loss.backward()
    with torch.no_grad():
        for p in tuned.parameters():
            if p.grad is not None:
                p.sub_(lr * p.grad)
    return tuned.eval()


@dataclass(frozen=True)
class Variant:
    """What the provider really serves when asked for the canary model."""

    weights: str = "base"  # key into the loaded weight sets
    temperature_factor: float = 1.0  # served temperature = requested x factor
    top_p_cap: float = 1.0  # served top_p = min(requested, cap)
    sibling_share: float = 0.0  # each choice served by the sibling with this probability
    description: str = "unchanged"


VARIANTS: dict[str, Variant] = {
    "null": Variant(description="same model, new seeds"),
    "temp-1.1": Variant(temperature_factor=1.1, description="temperature 1.0 -> 1.1"),
    "temp-1.2": Variant(temperature_factor=1.2, description="temperature 1.0 -> 1.2"),
    "temp-1.5": Variant(temperature_factor=1.5, description="temperature 1.0 -> 1.5"),
    "top-p-0.9": Variant(top_p_cap=0.9, description="top-p 1.0 -> 0.9"),
    "int8": Variant(weights="int8", description="int8 dynamic quantisation"),
    "noise": Variant(weights="noise", description="weight noise, 2 % of each tensor's SD"),
    "finetune": Variant(weights="finetune", description="one SGD step (lr 0.05) on licence text"),
    "mix-10": Variant(sibling_share=0.10, description="10 % of choices from the sibling"),
    "mix-25": Variant(sibling_share=0.25, description="25 % of choices from the sibling"),
    "mix-50": Variant(sibling_share=0.50, description="50 % of choices from the sibling"),
}


def load_weights() -> dict[str, nn.Module]:
    """Every weight set the variants refer to, trained or loaded from the cache."""
    torch.set_num_threads(1)
    split = corpus_split()
    base = load_or_train("base", 0, split["base"])
    sibling = load_or_train("sibling", 1, split["sibling"])
    licence = (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt").read_text(encoding="utf-8")
    return {
        "base": base,
        "sibling": sibling,
        "int8": quantise_int8(base),
        "noise": add_noise(base, 0.02, seed=7),
        "finetune": finetune_step(base, licence, lr=0.05, seed=11),
    }
