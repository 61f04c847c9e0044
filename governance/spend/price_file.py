"""The price file: what finance maintains, validated before anything is stored.

```yaml
currency: USD
prices:
  - {upstream: openai, model: gpt-4o-mini, effective_from: 2026-11-01,
     input: "0.15", cached_input: "0.075", output: "0.60"}
  - upstream: vllm-a                       # an internal model: a rate derived from
    model: llama-3.1-8b                    # what its GPUs cost and what they serve
    effective_from: 2026-11-01
    internal: {gpu_hour_cost: "2.50", gpus: 1,
               input_tokens_per_s: 12000, output_tokens_per_s: 1500}
```

Prices are per million tokens. An internal rate is cost per hour / (tokens per second
x 3600) per token, separately for input (prefill) and output (decode) throughput, rounded
to six decimals; the figures it came from are stored with the price.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from governance.config.schema import Name, Price
from governance.errors import ConfigError

_SIX_PLACES = Decimal("0.000001")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InternalRate(_Strict):
    """What an internal deployment costs to run, and what it serves (measured)."""

    gpu_hour_cost: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]
    gpus: int = Field(default=1, ge=1)
    input_tokens_per_s: Annotated[Decimal, Field(gt=0)]
    output_tokens_per_s: Annotated[Decimal, Field(gt=0)]

    def per_million(self, tokens_per_s: Decimal) -> Decimal:
        per_hour = self.gpu_hour_cost * self.gpus
        rate = per_hour * 1_000_000 / (tokens_per_s * 3600)
        return rate.quantize(_SIX_PLACES, rounding=ROUND_HALF_UP)

    def basis(self) -> dict[str, Any]:
        return {
            "gpu_hour_cost": str(self.gpu_hour_cost),
            "gpus": self.gpus,
            "input_tokens_per_s": str(self.input_tokens_per_s),
            "output_tokens_per_s": str(self.output_tokens_per_s),
        }


class PriceEntry(_Strict):
    upstream: Name
    model: Annotated[str, Field(min_length=1, max_length=256)]
    effective_from: dt.date
    input: Price | None = None
    cached_input: Price | None = None
    output: Price | None = None
    internal: InternalRate | None = None

    @model_validator(mode="after")
    def _one_way(self) -> PriceEntry:
        if self.internal is not None:
            if self.input is not None or self.output is not None or self.cached_input is not None:
                raise ValueError("give either input/output prices or internal, not both")
        elif self.input is None or self.output is None:
            raise ValueError("input and output are required (or internal: for a derived rate)")
        return self

    def rates(self) -> tuple[Decimal, Decimal | None, Decimal, dict[str, Any] | None]:
        """(input, cached_input, output, basis) per million tokens."""
        if self.internal is not None:
            rate = self.internal
            return (
                rate.per_million(rate.input_tokens_per_s),
                None,
                rate.per_million(rate.output_tokens_per_s),
                {"internal": rate.basis()},
            )
        assert self.input is not None and self.output is not None
        return self.input, self.cached_input, self.output, None


class PriceDocument(_Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    prices: list[PriceEntry]

    @model_validator(mode="after")
    def _unique(self) -> PriceDocument:
        seen: set[tuple[str, str, dt.date]] = set()
        for i, entry in enumerate(self.prices):
            key = (entry.upstream, entry.model, entry.effective_from)
            if key in seen:
                raise ValueError(
                    f"prices[{i}]: a second price for {entry.upstream}/{entry.model} "
                    f"on {entry.effective_from}"
                )
            seen.add(key)
        return self


def read_price_file(path: Path) -> PriceDocument:
    """Parse and validate a price file, or raise `ConfigError` naming the file and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the price file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return PriceDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from exc
