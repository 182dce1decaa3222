"""Real datasets bundled with sk_fibinet."""

from ._adult import load_adult

__all__ = ["load_adult"]
