"""Procedural, deterministic images: avatars, product cards, banners, scenes and edits.

The same (model, prompt, size, seed, inputs) always gives the same pixels. Rendered PNGs
are kept in a bounded LRU so that a benchmark hammering a few prompts measures the server,
not Pillow; when the emulator signs its images (C2PA), each cached drawing is signed once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, PngImagePlugin

from . import fonts, markers

AVATAR_WORDS = ("avatar", "portrait", "profile")
MOCKUP_WORDS = ("mockup", "product")
BANNER_WORDS = ("banner", "ad", "headline")
SKIN_TONES = [(255, 224, 189), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36)]
_TRIGGER = re.compile(r"\[\[[^\]]*\]\]")
NOISE_TILE = 512
# Amplitude of the additive noise in "realistic" mode, tuned so a 1K PNG is about 1.5 MB.
NOISE_AMPLITUDE = 40


@dataclass(frozen=True)
class RenderSpec:
    model: str
    prompt: str
    width: int
    height: int
    seed: int
    realistic: bool
    input_image: bytes | None = field(default=None, compare=False, hash=False)
    input_digest: str = ""
    with_thought: bool = False
    # The reference marker and the previous frame's (markers.Markers.encode(); '' for none).
    markers: str = ""


@dataclass(frozen=True)
class Rendered:
    png: bytes
    thought_png: bytes | None

    @functools.cached_property
    def png_b64(self) -> str:
        """The PNG as base64, made once per cached render (3 ms for a 1.5 MB image)."""
        return base64.b64encode(self.png).decode("ascii")

    @functools.cached_property
    def png_sha256(self) -> bytes:
        """The PNG's digest, which its thought signature signs: once per cached render."""
        return hashlib.sha256(self.png).digest()


def classify(prompt: str) -> str:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    if words & set(AVATAR_WORDS):
        return "avatar"
    if words & set(MOCKUP_WORDS):
        return "mockup"
    if words & set(BANNER_WORDS):
        return "banner"
    return "scene"


def clean_prompt(prompt: str) -> str:
    return " ".join(_TRIGGER.sub(" ", prompt).split())


def headline(prompt: str) -> str:
    quoted = re.search(r"[\"“«„「『](.+?)[\"”»“」』]", prompt)
    return quoted.group(1) if quoted else prompt


def _palette(key: str, n: int = 4) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(key.encode()).digest()
    return [(digest[i * 3], digest[i * 3 + 1], digest[i * 3 + 2]) for i in range(n)]


def _rgb_from_hash(digest: bytes, offset: int, lo: int = 40, hi: int = 220) -> tuple[int, int, int]:
    span = hi - lo
    r, g, b = digest[offset : offset + 3]
    return (lo + r * span // 255, lo + g * span // 255, lo + b * span // 255)


def _gradient(
    w: int, h: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> Image.Image:
    mask = Image.linear_gradient("L").resize((w, h))
    return Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), mask)


def _avatar(img: Image.Image, digest: bytes, subject: str) -> None:
    w, h = img.size
    d = ImageDraw.Draw(img)
    unit = min(w, h)
    cx, cy = w / 2, h * 0.44
    accent = _rgb_from_hash(digest, 6)
    d.ellipse((cx - unit * 0.42, h - unit * 0.32, cx + unit * 0.42, h + unit * 0.4), fill=accent)
    if digest[9] % 3 == 0:  # monogram portrait
        r = unit * 0.3
        d.ellipse(
            (cx - r, cy - r, cx + r, cy + r),
            fill=accent,
            outline=(255, 255, 255),
            width=max(2, unit // 100),
        )
        initials = "".join(word[0] for word in subject.split()[:2]).upper() or "?"
        fonts.draw_centered(d, (cx - r, cy - r, cx + r, cy + r), initials, int(r), (255, 255, 255))
        return
    skin = SKIN_TONES[digest[10] % len(SKIN_TONES)]
    hair = _rgb_from_hash(digest, 12, 10, 120)
    rx, ry = unit * 0.2, unit * 0.25
    d.ellipse((cx - rx * 1.08, cy - ry * 1.12, cx + rx * 1.08, cy + ry * 0.3), fill=hair)
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    d.chord((cx - rx * 1.02, cy - ry * 1.05, cx + rx * 1.02, cy + ry * 0.2), 180, 360, fill=hair)
    eye = unit * 0.025
    for ex in (cx - rx * 0.4, cx + rx * 0.4):
        d.ellipse((ex - eye, cy - eye, ex + eye, cy + eye), fill=(30, 30, 40))
    d.arc(
        (cx - rx * 0.45, cy + ry * 0.15, cx + rx * 0.45, cy + ry * 0.6),
        20,
        160,
        fill=(120, 40, 40),
        width=max(2, unit // 120),
    )


def _mockup(img: Image.Image, digest: bytes, title: str) -> None:
    w, h = img.size
    d = ImageDraw.Draw(img)
    unit = min(w, h)
    card = (w * 0.15, h * 0.1, w * 0.85, h * 0.9)
    shadow = tuple(v + unit * 0.015 for v in card)
    d.rounded_rectangle(shadow, radius=unit * 0.04, fill=(0, 0, 0))
    d.rounded_rectangle(card, radius=unit * 0.04, fill=(250, 250, 248))
    product = _rgb_from_hash(digest, 6)
    left, top, right, bottom = card
    cw, ch = right - left, bottom - top
    box = (left + cw * 0.25, top + ch * 0.08, right - cw * 0.25, top + ch * 0.55)
    d.rounded_rectangle(box, radius=unit * 0.03, fill=product)
    lighter = tuple(min(255, c + 60) for c in product)
    d.polygon(
        [
            (box[0], box[1]),
            (box[0] + cw * 0.08, box[1] - ch * 0.04),
            (box[2] + cw * 0.08, box[1] - ch * 0.04),
            (box[2], box[1]),
        ],
        fill=lighter,
    )
    fonts.draw_centered(
        d,
        (left + cw * 0.08, top + ch * 0.6, right - cw * 0.08, top + ch * 0.82),
        title,
        int(unit * 0.07),
        (30, 30, 30),
    )
    price = f"${10 + digest[15] % 90}.{digest[16] % 100:02d}"
    pill = (left + cw * 0.3, top + ch * 0.85, right - cw * 0.3, top + ch * 0.95)
    d.rounded_rectangle(pill, radius=(pill[3] - pill[1]) / 2, fill=_rgb_from_hash(digest, 18))
    fonts.draw_centered(d, pill, price, int(unit * 0.06), (255, 255, 255))


def _banner(img: Image.Image, digest: bytes, text: str) -> None:
    w, h = img.size
    d = ImageDraw.Draw(img)
    unit = min(w, h)
    d.rectangle((0, h * 0.86, w, h * 0.9), fill=_rgb_from_hash(digest, 6, 180, 255))
    box = (w * 0.07, h * 0.1, w * 0.93, h * 0.82)
    fonts.draw_centered(d, box, text, int(unit * 0.3), (255, 255, 255), shadow=(0, 0, 0))


def _scene(img: Image.Image, digest: bytes, text: str) -> None:
    w, h = img.size
    rng = random.Random(digest)
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(overlay)
    unit = min(w, h)
    for _ in range(12):
        r = rng.uniform(0.05, 0.3) * unit
        x, y = rng.uniform(0, w), rng.uniform(0, h * 0.8)
        colour = (
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(90, 200),
        )
        d.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    img.paste(overlay, (0, 0), overlay)
    dd = ImageDraw.Draw(img)
    dd.rectangle((0, h * 0.82, w, h), fill=(20, 20, 28))
    fonts.draw_centered(
        dd, (w * 0.04, h * 0.83, w * 0.96, h * 0.99), text, int(unit * 0.06), (240, 240, 240)
    )


def _edit(spec: RenderSpec, digest: bytes, instruction: str) -> Image.Image:
    w, h = spec.width, spec.height
    source = Image.open(io.BytesIO(spec.input_image or b"")).convert("RGB")
    img = ImageOps.fit(source, (w, h))
    tint = Image.new("RGB", (w, h), _rgb_from_hash(digest, 6))
    img = Image.blend(img, tint, 0.12)
    d = ImageDraw.Draw(img)
    unit = min(w, h)
    d.rectangle((0, 0, w - 1, h - 1), outline=_rgb_from_hash(digest, 9), width=max(2, unit // 60))
    band = Image.new("RGBA", (w, int(h * 0.1)), (0, 0, 0, 110))
    img.paste(band, (0, int(h * 0.9)), band)
    fonts.draw_centered(
        ImageDraw.Draw(img),
        (w * 0.04, h * 0.9, w * 0.96, h * 0.99),
        instruction,
        int(unit * 0.05),
        (255, 255, 255),
    )
    return img


def _draw(spec: RenderSpec) -> Image.Image:
    text = clean_prompt(spec.prompt) or "untitled"
    key = f"{spec.model}|{text}|{spec.width}x{spec.height}|{spec.seed}|{spec.input_digest}"
    digest = hashlib.sha256(key.encode()).digest()
    if spec.input_image:
        return _edit(spec, digest, text)
    top, bottom = _rgb_from_hash(digest, 0), _rgb_from_hash(digest, 3)
    img = _gradient(spec.width, spec.height, top, bottom)
    kind = classify(text)
    if kind == "avatar":
        _avatar(img, digest, re.sub(r"(?i)\b(avatar|portrait|profile|of|an?|the)\b", " ", text))
    elif kind == "mockup":
        _mockup(img, digest, text[:60])
    elif kind == "banner":
        _banner(img, digest, headline(text))
    else:
        _scene(img, digest, text)
    return img


_noise_lock = threading.Lock()
_noise: dict[int, Image.Image] = {}


def _noise_tile(seed: int) -> Image.Image:
    with _noise_lock:
        if seed not in _noise:
            raw = random.Random(seed).randbytes(NOISE_TILE * NOISE_TILE * 3)
            tile = Image.frombytes("RGB", (NOISE_TILE, NOISE_TILE), raw)
            _noise[seed] = tile.point(lambda v: v * NOISE_AMPLITUDE // 256)
        return _noise[seed]


def _add_texture(img: Image.Image, seed: int) -> Image.Image:
    tile = _noise_tile(seed)
    w, h = img.size
    noise = Image.new("RGB", (w, h))
    for x in range(0, w, NOISE_TILE):
        for y in range(0, h, NOISE_TILE):
            noise.paste(tile, (x, y))
    return ImageChops.add(img, noise)


def _png(img: Image.Image, realistic: bool, info: PngImagePlugin.PngInfo | None = None) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1 if realistic else 6, pnginfo=info)
    return out.getvalue()


def render_uncached(spec: RenderSpec) -> Rendered:
    base = _draw(spec)
    drawn = markers.Markers.decode(spec.markers)
    markers.draw_markers(base, drawn)
    thought = None
    if spec.with_thought:
        sketch = base.resize((max(1, spec.width // 8), max(1, spec.height // 8))).convert("L")
        thought = _png(sketch.filter(ImageFilter.BLUR), realistic=False)
    final = _add_texture(base, spec.seed) if spec.realistic else base
    return Rendered(_png(final, spec.realistic, markers.png_info(drawn)), thought)


def _footprint(rendered: Rendered) -> int:
    """Bytes a cached render holds: the PNGs and the PNG's base64 (4/3 of it)."""
    return len(rendered.png) * 7 // 3 + len(rendered.thought_png or b"")


Sign = Callable[[bytes, str], bytes]  # (png, model id) -> the png with credentials


class RenderCache:
    """A bounded LRU of rendered images, safe to use from the render thread pool.

    With `sign`, the cached PNG is the signed one: a drawing is signed once, however often
    it is served.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024, *, sign: Sign | None = None) -> None:
        self.max_bytes = max_bytes
        self.sign = sign
        self._items: OrderedDict[RenderSpec, Rendered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def render(self, spec: RenderSpec) -> Rendered:
        with self._lock:
            found = self._items.get(spec)
            if found is not None:
                self._items.move_to_end(spec)
                self.hits += 1
                return found
            self.misses += 1
        rendered = render_uncached(spec)
        if self.sign is not None:
            rendered = Rendered(self.sign(rendered.png, spec.model), rendered.thought_png)
        size = _footprint(rendered)
        with self._lock:
            if spec not in self._items:
                self._items[spec] = rendered
                self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= _footprint(old)
        return rendered
