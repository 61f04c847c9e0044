"""Token usage and its cost."""

from governance.spend.pricing import Cost, PriceTable
from governance.spend.tokens import estimate_tokens

__all__ = ["Cost", "PriceTable", "estimate_tokens"]
