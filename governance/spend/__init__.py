"""Token usage, prices, what requests cost, budgets and rate limits."""

from governance.spend.pricing import Price, PriceBook
from governance.spend.tokens import estimate_tokens

__all__ = ["Price", "PriceBook", "estimate_tokens"]
