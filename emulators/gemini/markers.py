"""Consistency made visible: a marker derived from a call's reference images, and a log of
the input images each call received.

A call with input images draws a badge in its image's top-left corner: a two-letter
monogram and a four-colour palette, both derived from the input images that are not the
emulator's own output (the references: a character sheet, a product). Every image the
emulator draws carries its marker in a PNG text chunk, so a later call that gets that image
back (the previous frame of a chained series) knows its marker: it draws its own badge from
the references it got too, or inherits the previous frame's when it got none, and shows the
previous frame's marker in a second badge, top right. A frame made without the references
and without a previous frame has no badge.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, PngImagePlugin

from . import fonts

TEXT_KEY = "bunch-emulator-marker"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Marker:
    monogram: str
    palette: tuple[tuple[int, int, int], ...]

    def encode(self) -> str:
        return self.monogram + ":" + ",".join(f"{r:02x}{g:02x}{b:02x}" for r, g, b in self.palette)

    @classmethod
    def decode(cls, text: str) -> Marker | None:
        monogram, _, colours = text.partition(":")
        try:
            palette = tuple(
                (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)) for c in colours.split(",")
            )
        except ValueError:
            return None
        if len(monogram) != 2 or len(palette) != 4:
            return None
        return cls(monogram, palette)


@dataclass(frozen=True)
class Markers:
    """What one call's image shows: its own marker and the one it got from its inputs."""

    own: Marker | None = None
    previous: Marker | None = None

    def encode(self) -> str:
        """The render cache's key part ('' when there is nothing to draw)."""
        if self.own is None:
            return ""
        return self.own.encode() + "|" + (self.previous.encode() if self.previous else "")

    @classmethod
    def decode(cls, text: str) -> Markers:
        own, _, previous = text.partition("|")
        return cls(
            Marker.decode(own) if own else None, Marker.decode(previous) if previous else None
        )


def marker_of(references: list[bytes]) -> Marker:
    """The same references, in the same order, always give the same marker."""
    digest = hashlib.sha256(b"".join(hashlib.sha256(r).digest() for r in references)).digest()
    monogram = LETTERS[digest[0] % len(LETTERS)] + LETTERS[digest[1] % len(LETTERS)]
    palette = tuple(
        (40 + digest[2 + i * 3] % 180, 40 + digest[3 + i * 3] % 180, 40 + digest[4 + i * 3] % 180)
        for i in range(4)
    )
    return Marker(monogram, palette)


def read_marker(data: bytes) -> Marker | None:
    """The marker an image the emulator drew carries (None for any other image)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            text = img.info.get(TEXT_KEY)
    except Exception:
        return None
    return Marker.decode(text) if isinstance(text, str) else None


def markers_for(inputs: list[bytes]) -> Markers:
    """Own marker from the references (inputs the emulator did not draw), else inherited
    from the last input it drew; `previous` is that input's marker."""
    carried = [read_marker(data) for data in inputs]
    references = [data for data, marker in zip(inputs, carried, strict=True) if marker is None]
    previous = next((m for m in reversed(carried) if m is not None), None)
    own = marker_of(references) if references else previous
    return Markers(own=own, previous=previous)


def _badge(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], m: Marker) -> None:
    left, top, right, bottom = box
    height = bottom - top
    draw.rectangle(box, fill=(255, 255, 255))
    mono = (left + height * 0.08, top + height * 0.08, left + height * 0.92, bottom - height * 0.08)
    draw.rectangle(mono, fill=m.palette[0])
    fonts.draw_centered(draw, mono, m.monogram, int(height * 0.5), (255, 255, 255))
    swatch = (right - left - height) / 3
    for i, colour in enumerate(m.palette[1:]):
        x = left + height + i * swatch
        draw.rectangle(
            (x, top + height * 0.08, x + swatch * 0.9, bottom - height * 0.08), fill=colour
        )


def badge_boxes(width: int, height: int) -> tuple[tuple[int, int, int, int], ...]:
    """Where the own badge (top left) and the previous frame's badge (top right) go."""
    size = max(24, min(width, height) // 8)
    pad = size // 4
    own = (pad, pad, pad + size * 3, pad + size)
    previous = (width - pad - size * 3, pad, width - pad, pad + size)
    return own, previous


def draw_markers(img: Image.Image, markers: Markers) -> None:
    if markers.own is None:
        return
    own_box, previous_box = badge_boxes(*img.size)
    draw = ImageDraw.Draw(img)
    _badge(draw, own_box, markers.own)
    if markers.previous is not None:
        _badge(draw, previous_box, markers.previous)


def png_info(markers: Markers) -> PngImagePlugin.PngInfo | None:
    """The PNG text chunk that lets a later call read this image's marker."""
    if markers.own is None:
        return None
    info = PngImagePlugin.PngInfo()
    info.add_text(TEXT_KEY, markers.own.encode())
    return info


def input_digests(inputs: list[bytes]) -> list[str]:
    """The request log's record of a call's input images: their SHA-256, in order."""
    return [hashlib.sha256(data).hexdigest() for data in inputs]
