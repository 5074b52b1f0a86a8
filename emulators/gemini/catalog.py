"""What each emulated model accepts and how Google bills it (mirrors the public docs)."""

from __future__ import annotations

from dataclasses import dataclass

RATIO_PIXELS_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}
ALL_RATIOS = tuple(RATIO_PIXELS_1K)
FIRST_TEN_RATIOS = ALL_RATIOS[:10]
SIZE_FACTORS: dict[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}

MAX_INPUT_IMAGES = 14
MAX_INPUT_TOKENS = 65_536
INPUT_IMAGE_TOKENS = 1120


@dataclass(frozen=True)
class EmulatedModel:
    model_id: str
    ratios: tuple[str, ...]
    image_tokens: dict[str, int]  # image size -> output tokens per image
    thinking: bool  # signs its answers' parts (thought signatures) and checks them
    thought_image: bool  # 3 Pro may send an interim "thought" image first


MODELS: dict[str, EmulatedModel] = {
    m.model_id: m
    for m in (
        EmulatedModel("gemini-3.1-flash-lite-image", ALL_RATIOS, {"1K": 1120}, True, False),
        EmulatedModel(
            "gemini-3.1-flash-image",
            ALL_RATIOS,
            {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
            True,
            False,
        ),
        EmulatedModel(
            "gemini-3-pro-image", FIRST_TEN_RATIOS, {"1K": 1120, "2K": 1120, "4K": 2000}, True, True
        ),
        EmulatedModel("gemini-2.5-flash-image", FIRST_TEN_RATIOS, {"1K": 1290}, False, False),
    )
}


def pixel_size(ratio: str, size: str) -> tuple[int, int]:
    w, h = RATIO_PIXELS_1K[ratio]
    f = SIZE_FACTORS[size]
    return int(w * f), int(h * f)


def nearest_ratio(width: int, height: int, allowed: tuple[str, ...]) -> str:
    target = width / max(height, 1)
    return min(allowed, key=lambda r: abs(RATIO_PIXELS_1K[r][0] / RATIO_PIXELS_1K[r][1] - target))
