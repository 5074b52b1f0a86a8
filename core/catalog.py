"""The Nano Banana models Bunch can use: what each accepts, what it costs, and the units
(token usage, modes) prices are stated in. Plain data, used by every app."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import models


class Mode(models.TextChoices):
    """How a job reaches the model: one call now, or Google's Batch API at half price."""

    STANDARD = "standard"
    BATCH = "batch"


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_text_tokens: int = 0
    output_image_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0


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
SIZE_FACTORS: dict[str, Decimal] = {
    "512": Decimal("0.5"),
    "1K": Decimal(1),
    "2K": Decimal(2),
    "4K": Decimal(4),
}
ALL_RATIOS: tuple[str, ...] = tuple(RATIO_PIXELS_1K)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelSpec:
    tier: str
    model_id: str
    display_name: str
    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str, ...]
    image_tokens: dict[str, int]  # output tokens per image, by image size
    input_price_per_m: Decimal
    text_output_price_per_m: Decimal
    image_output_price_per_m: Decimal
    # What the model may add to the image: its thinking and any text parts. Every request
    # caps its output at `max_output_tokens` (image + these), so the "up to" estimate that
    # prices them is an upper bound the model cannot exceed (docs/billing.md).
    thinking_tokens_max: int = 0
    text_tokens_max: int = 256
    max_input_images: int = 14
    input_image_tokens: int = 1120
    batch_discount: Decimal = Decimal("0.5")

    def max_output_tokens(self, image_size: str = "1K") -> int:
        """The request's output cap: image, thinking and text together."""
        return self.image_tokens[image_size] + self.thinking_tokens_max + self.text_tokens_max

    def image_price(self, image_size: str = "1K", *, batch: bool = False) -> Decimal:
        """List price of the output image alone; bill from the response's usage instead."""
        price = self.image_tokens[image_size] * self.image_output_price_per_m / MILLION
        return price * self.batch_discount if batch else price


MODELS: dict[str, ModelSpec] = {
    "lite": ModelSpec(
        tier="lite",
        model_id="gemini-3.1-flash-lite-image",
        display_name="Nano Banana 2 Lite",
        aspect_ratios=ALL_RATIOS,
        image_sizes=("1K",),
        image_tokens={"1K": 1120},
        input_price_per_m=Decimal("0.25"),
        text_output_price_per_m=Decimal("1.50"),
        image_output_price_per_m=Decimal("30"),
        thinking_tokens_max=256,
    ),
    "flash": ModelSpec(
        tier="flash",
        model_id="gemini-3.1-flash-image",
        display_name="Nano Banana 2",
        aspect_ratios=ALL_RATIOS,
        image_sizes=("512", "1K", "2K", "4K"),
        image_tokens={"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
        input_price_per_m=Decimal("0.50"),
        text_output_price_per_m=Decimal("3.00"),
        image_output_price_per_m=Decimal("60"),
        thinking_tokens_max=512,
    ),
    "pro": ModelSpec(
        tier="pro",
        model_id="gemini-3-pro-image",
        display_name="Nano Banana Pro",
        aspect_ratios=ALL_RATIOS[:10],
        image_sizes=("1K", "2K", "4K"),
        image_tokens={"1K": 1120, "2K": 1120, "4K": 2000},
        input_price_per_m=Decimal("2.00"),
        text_output_price_per_m=Decimal("12.00"),
        image_output_price_per_m=Decimal("120"),
        # 3 Pro always thinks: about 258 tokens per image; three times that is allowed.
        thinking_tokens_max=768,
    ),
}


def get_model(tier: str) -> ModelSpec:
    try:
        return MODELS[tier]
    except KeyError:
        raise KeyError(f"unknown model tier {tier!r}; choose one of {', '.join(MODELS)}") from None


def pixel_size(ratio: str, size: str = "1K") -> tuple[int, int]:
    """Output pixels for an aspect ratio and image size (Gemini 3.x family)."""
    width, height = RATIO_PIXELS_1K[ratio]
    factor = SIZE_FACTORS[size]
    return int(width * factor), int(height * factor)
