"""The image page's Content Credentials panel, images in their own aspect ratio, and the
sidebar's height, as a browser renders them."""

from __future__ import annotations

import io
import json
import urllib.request

from PIL import Image as PILImage
from playwright.sync_api import Browser, Page, expect

from core.catalog import RATIO_PIXELS_1K
from generation.models import Image
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor


def generated(site: str, actor: Actor, prompt: str, ratio: str = "16:9") -> Image:
    """An image made through the live server's API (its request thread runs the job
    inline): this thread runs the browser's event loop, where the runner cannot."""
    body = json.dumps({"prompt": prompt, "kind": "banner", "aspect_ratio": ratio}).encode()
    request = urllib.request.Request(
        f"{site}/api/v1/generations",
        data=body,
        headers={
            "Authorization": f"Bearer {actor.key}",
            "Content-Type": "application/json",
            "Prefer": "wait=30",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        job = json.loads(response.read())
    assert job["status"] == "succeeded", job
    return Image.objects.get(pk=job["images"][0]["id"])


def rendered_ratio(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None and box["height"] > 0
    return float(box["width"] / box["height"])


def test_the_image_page_shows_the_credentials_panel_and_the_banner_undistorted(
    page: Page, site: str, owner: Actor
) -> None:
    page.set_viewport_size({"width": 1366, "height": 800})
    banner = generated(site, owner, "summer sale with the headline 'Up to 50% off'")
    sign_in(page, site, owner)
    page.goto(f"{site}/images/{banner.pk}/")
    panel = page.get_by_test_id("provenance")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("data-state", "trusted")
    expect(panel).to_contain_text("Content Credentials")
    expect(page.get_by_test_id("provenance-ai")).to_have_text("AI-generated")
    expect(page.get_by_test_id("provenance-issuer")).to_contain_text("Google LLC")
    expect(page.get_by_test_id("cr-pin")).to_be_visible()
    expect(page.get_by_test_id("full-image")).to_have_js_property("complete", True)
    assert abs(rendered_ratio(page, "[data-testid=full-image]") - 1376 / 768) < 0.02
    screenshot(page, "image-content-credentials")

    tampered = generated(
        site, owner, "summer sale with the headline 'Up to 50% off' [[c2pa:tampered]]"
    )
    page.goto(f"{site}/images/{tampered.pk}/")
    expect(page.get_by_test_id("provenance-warning")).to_be_visible()
    expect(page.get_by_test_id("provenance-warning")).to_contain_text(
        "This file may have been tampered with."
    )


def test_every_aspect_ratio_shows_undistorted_on_the_image_page_and_in_the_gallery(
    page: Page, site: str, owner: Actor
) -> None:
    page.set_viewport_size({"width": 1366, "height": 800})
    made = {
        ratio: generated(site, owner, f"banner 'Ratio {ratio}'", ratio) for ratio in RATIO_PIXELS_1K
    }
    sign_in(page, site, owner)
    for ratio, image in made.items():
        width, height = RATIO_PIXELS_1K[ratio]
        page.goto(f"{site}/images/{image.pk}/")
        expect(page.get_by_test_id("full-image")).to_have_js_property("complete", True)
        shown = rendered_ratio(page, "[data-testid=full-image]")
        assert abs(shown / (width / height) - 1) < 0.03, (ratio, shown)
    page.goto(f"{site}/gallery/")
    by_id = {str(image.pk): ratio for ratio, image in made.items()}
    tiles = page.get_by_test_id("thumb")
    expect(tiles).to_have_count(len(made))
    for i in range(len(made)):
        tile = tiles.nth(i)
        pic = tile.locator("img.pic")
        pic.scroll_into_view_if_needed()  # thumbnails load lazily
        expect(pic).to_have_js_property("complete", True)
        # The square tile shows the whole thumbnail scaled evenly, never stretched.
        assert pic.evaluate("el => getComputedStyle(el).objectFit") == "contain"
        ratio = by_id[(tile.get_attribute("href") or "").rstrip("/").rsplit("/", 1)[-1]]
        width, height = RATIO_PIXELS_1K[ratio]
        natural = pic.evaluate("el => el.naturalWidth / el.naturalHeight")
        assert abs(natural / (width / height) - 1) < 0.1, (ratio, natural)
    screenshot(page, "gallery-ratios")


def _dark(shot: bytes, x: int, y: int) -> bool:
    with PILImage.open(io.BytesIO(shot)) as img:
        r, g, b = img.convert("RGB").getpixel((x, min(y, img.height - 1)))
    return r + g + b < 3 * 90


def test_the_sidebar_runs_the_full_height_of_a_long_page(
    browser: Browser, site: str, owner: Actor
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    sign_in(page, site, owner)
    page.goto(f"{site}/usage/")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height > 768  # a long page: the bug only shows below the first screen
    # The whole page, as a full-page screenshot shows it: dark down the left column.
    full = page.screenshot(full_page=True)
    assert all(_dark(full, 10, y) for y in (5, height // 2, height - 5))
    # Scrolled to the bottom, the sidebar still fills the viewport's height.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    box = page.locator(".sidebar").bounding_box()
    assert box is not None
    assert box["y"] <= 0.5 and box["y"] + box["height"] >= 768 - 0.5, box
    assert _dark(page.screenshot(), 10, 760)
    screenshot(page, "usage-sidebar-bottom", full_page=False)
    context.close()
