"""What an edit conversation's history costs per turn, off the network: expanding a stored
history of 11 images of 1.5 MB (a 10-turn conversation) for a call, compacting a turn
for storage, the emulator's recording of the call, the weight for the estimate.

    python -m bench.conversation_history
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

from emulators.gemini.calls import describe
from generation.conversations import history as hist

ROUNDS = 20


def _ms(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in range(ROUNDS):
        step()
    return (time.perf_counter() - started) / ROUNDS * 1000


def main() -> None:
    images = {str(i): os.urandom(1_500_000) for i in range(11)}
    png = "image/png"
    stored: hist.History = [
        {
            "role": "user",
            "parts": [{"inline_data": {"mime_type": png, hist.IMAGE_REF: "0"}}, {"text": "a"}],
        }
    ]
    for i in range(1, 11):
        image = {"inline_data": {"mime_type": png, hist.IMAGE_REF: str(i)}}
        parts = [{"text": "Here is your image", "thought_signature": "c2ln"}, image]
        stored.append({"role": "model", "parts": parts})
        stored.append({"role": "user", "parts": [{"text": f"turn {i}"}]})
    expanded = hist.expand(stored, images.__getitem__)
    known = {hashlib.sha256(images["10"]).hexdigest(): "10"}
    figures = {
        "expand the 11-image history for a call": _ms(
            lambda: hist.expand(stored, images.__getitem__)
        ),
        "compact one turn for storage": _ms(lambda: hist.compact(expanded[-3:-1], known)),
        "emulator: record the call (--record-calls)": _ms(lambda: describe(expanded)),
        "weight for the estimate": _ms(lambda: hist.weight(stored)),
    }
    for name, ms in figures.items():
        print(f"{name}: {ms:.3f} ms")
    print(f"stored history: {len(str(stored))} characters")


if __name__ == "__main__":
    main()
