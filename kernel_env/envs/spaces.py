"""A text space for LLM messages: any Unicode string up to a maximum length.

Gymnasium's ``spaces.Text`` only admits characters from a fixed charset (62 alphanumerics by default)
and at least one character, so real LLM replies (spaces, newlines, code, non-ASCII) fall outside it.
``TextSpace.contains`` checks type and length only, the pattern text environments such as MiniWoB++ use.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Space

#: Characters ``sample()`` draws from: printable ASCII, whitespace LLMs emit, and a few non-ASCII ones.
SAMPLE_CHARS = string.ascii_letters + string.digits + string.punctuation + " \n\t" + "éßλπ→✓中文"


class TextSpace(Space[str]):
    """Any ``str`` of at most ``max_length`` characters (the empty string included).

    ``sample()`` returns random text of up to ``sample_length`` characters: enough to exercise an
    environment (it never contains a valid submission), cheap to evaluate.
    """

    def __init__(self, max_length: int = 100_000, sample_length: int = 256, seed: int | np.random.Generator | None = None):
        if max_length < 0:
            raise ValueError(f"max_length must be >= 0, not {max_length}")
        self.max_length = int(max_length)
        self.sample_length = int(min(sample_length, max_length))
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any | None = None, probability: Any | None = None) -> str:
        if mask is not None or probability is not None:
            raise NotImplementedError("TextSpace.sample takes no mask or probability")
        length = int(self.np_random.integers(0, self.sample_length + 1))
        chars = self.np_random.choice(len(SAMPLE_CHARS), size=length)
        return "".join(SAMPLE_CHARS[i] for i in chars)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def to_jsonable(self, sample_n: Sequence[str]) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: Sequence[str]) -> list[str]:
        return list(sample_n)

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length
