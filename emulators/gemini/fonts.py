"""Text drawing with per-character font fallback, so non-Latin headlines render legibly.

DejaVu (always present here) covers Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew and
Arabic (shaped when Pillow has raqm). Any Noto fonts found on the machine are added as
fallbacks (CJK, Devanagari, Thai, ...). Characters no font covers draw as the .notdef box.
"""

from __future__ import annotations

import glob
import threading
from functools import lru_cache

from PIL import ImageDraw, ImageFont

_DEJAVU = "/usr/share/fonts/truetype/dejavu/"
_PRIMARY = [_DEJAVU + "DejaVuSans-Bold.ttf", _DEJAVU + "DejaVuSans.ttf"]
_FALLBACK_GLOBS = [
    "/usr/share/fonts/**/wqy-microhei.ttc",  # CJK (Debian fonts-wqy-microhei, 1.6 MB)
    "/usr/share/fonts/**/NotoSans-*Bold.ttf",
    "/usr/share/fonts/**/NotoSans*-Bold.tt[fc]",
    "/usr/share/fonts/**/NotoSansCJK*-Bold.ttc",
    "/usr/share/fonts/**/Noto*.tt[fc]",
    "/usr/share/fonts/**/Noto*.otf",
    "/usr/share/fonts/**/*.ttf",
]
_NOT_A_CHAR = "\U0010fffd"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def font_paths() -> tuple[str, ...]:
    seen: list[str] = []
    for path in _PRIMARY:
        if glob.glob(path):
            seen.append(path)
    for pattern in _FALLBACK_GLOBS:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if path not in seen:
                seen.append(path)
    return tuple(seen[:40])


def _font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # FreeType faces are not safe to share between render threads: one cache per thread.
    return _thread_font(path, size, threading.get_ident())


@lru_cache(maxsize=1024)
def _thread_font(
    path: str, size: int, _thread: int
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size)


@lru_cache(maxsize=8192)
def _covers(path: str, ch: str) -> bool:
    if ch.isspace():
        return True
    font = _font(path, 24)
    with _lock:
        glyph = font.getmask(ch)
        notdef = font.getmask(_NOT_A_CHAR)
    return bool(glyph.getbbox()) and (glyph.size != notdef.size or bytes(glyph) != bytes(notdef))


def _font_for(ch: str) -> str | None:
    for path in font_paths():
        if _covers(path, ch):
            return path
    return font_paths()[0] if font_paths() else None


def _runs(text: str) -> list[tuple[str, str | None]]:
    runs: list[tuple[str, str | None]] = []
    for ch in text:
        path = _font_for(ch) if not (runs and ch.isspace()) else runs[-1][1]
        if runs and runs[-1][1] == path:
            runs[-1] = (runs[-1][0] + ch, path)
        else:
            runs.append((ch, path))
    return runs


def text_width(text: str, size: int) -> float:
    total = 0.0
    for run, path in _runs(text):
        font = _font(path, size) if path else ImageFont.load_default(size)
        total += font.getlength(run)
    return total


def draw_text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, fill: object
) -> None:
    x, y = xy
    for run, path in _runs(text):
        font = _font(path, size) if path else ImageFont.load_default(size)
        draw.text((x, y), run, font=font, fill=fill)
        x += font.getlength(run)


def wrap(text: str, size: int, max_width: float) -> list[str]:
    """Greedy wrap on spaces; scripts written without spaces break between characters."""
    words = text.split() if " " in text.strip() else list(text.strip())
    joiner = " " if " " in text.strip() else ""
    lines: list[str] = []
    line = ""
    for word in words:
        candidate = f"{line}{joiner}{word}" if line else word
        if text_width(candidate, size) <= max_width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def fit(text: str, box_w: float, box_h: float, max_size: int) -> tuple[int, list[str]]:
    """The largest size (and its lines) at which the text fits the box."""
    size = max(max_size, 10)
    while size > 10:
        lines = wrap(text, size, box_w)
        if len(lines) * size * 1.25 <= box_h and all(text_width(ln, size) <= box_w for ln in lines):
            return size, lines
        size = int(size * 0.88)
    return 10, wrap(text, 10, box_w)


def draw_centered(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    text: str,
    max_size: int,
    fill: object,
    shadow: object | None = None,
) -> None:
    left, top, right, bottom = box
    size, lines = fit(text, right - left, bottom - top, max_size)
    line_h = size * 1.25
    y = top + ((bottom - top) - line_h * len(lines)) / 2
    for line in lines:
        x = left + ((right - left) - text_width(line, size)) / 2
        if shadow is not None:
            offset = max(1, size // 18)
            draw_text(draw, (x + offset, y + offset), line, size, shadow)
        draw_text(draw, (x, y), line, size, fill)
        y += line_h
