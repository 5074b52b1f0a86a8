"""The model registry matches DESIGN.md: ids, limits and prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.catalog import MODELS, get_model, pixel_size


def test_lite_image_costs_0_0336_and_half_in_batch() -> None:
    lite = get_model("lite")
    assert lite.model_id == "gemini-3.1-flash-lite-image"
    assert lite.image_price("1K") == Decimal("0.0336")
    assert lite.image_price("1K", batch=True) == Decimal("0.0168")
    assert (lite.input_price_per_m, lite.text_output_price_per_m) == (
        Decimal("0.25"),
        Decimal("1.50"),
    )


def test_tiers_name_the_current_model_ids_and_limits() -> None:
    assert {t: m.model_id for t, m in MODELS.items()} == {
        "lite": "gemini-3.1-flash-lite-image",
        "flash": "gemini-3.1-flash-image",
        "pro": "gemini-3-pro-image",
    }
    assert len(get_model("flash").aspect_ratios) == 14 and len(get_model("pro").aspect_ratios) == 10
    assert all(m.max_input_images == 14 for m in MODELS.values())
    assert get_model("pro").image_output_price_per_m == Decimal("120")


@pytest.mark.parametrize(
    ("ratio", "size", "pixels"),
    [
        ("1:1", "1K", (1024, 1024)),
        ("21:9", "1K", (1584, 672)),
        ("8:1", "2K", (6144, 768)),
        ("16:9", "512", (688, 384)),
    ],
)
def test_pixel_size(ratio: str, size: str, pixels: tuple[int, int]) -> None:
    assert pixel_size(ratio, size) == pixels


def test_unknown_tier_names_the_choices() -> None:
    with pytest.raises(KeyError, match="lite, flash, pro"):
        get_model("ultra")
