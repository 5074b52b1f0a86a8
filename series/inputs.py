"""Which input images a frame's call gets, and how many: plain rules of the modes."""

from __future__ import annotations

from collections.abc import Sequence

from series.models import Consistency


def input_count(*, consistency: str, references: int, index: int) -> int:
    """How many input images frame `index`'s call sends."""
    if index == 0 or consistency == Consistency.REFERENCES:
        return references
    if consistency == Consistency.CHAIN:
        return 1
    return references + 1


def frame_inputs(*, consistency: str, references: Sequence[str], previous: str | None) -> list[str]:
    """The frame's input images in the order the model gets them: the references, then
    the frame before it (`previous`, None for the first frame)."""
    if previous is None or consistency == Consistency.REFERENCES:
        return list(references)
    if consistency == Consistency.CHAIN:
        return [previous]
    return [*references, previous]
