"""Bulk work in a real browser: a template in three locales, a 5-row CSV, check and fix,
submit, watch it finish by locale, download; the gallery's selection. Screenshots of every
step go to var/screenshots/ at 1366 px and on a 390 px phone (docs/dashboard.md)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from batches.models import Batch
from tests.batches.conftest import poll_until
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor

pytestmark = pytest.mark.browser

CSV = (
    "\ufeffproduct;colour\n"
    "mug;teal\n"
    "tote bag;coral\n"
    ";navy\n"  # a bad row: no product
    '"water bottle; 1 l";olive\n'
    "cap;sand\n"
)
WIDE = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def shoot(page: Page, phone: Page, name: str, url: str | None = None) -> None:
    """The page as it is now at 1366 px, and the same URL on a phone, without horizontal
    scrolling."""
    page.set_viewport_size(WIDE)
    screenshot(page, name)
    phone.goto(url or page.url)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: horizontal scroll on a phone ({width}px)"
    screenshot(phone, f"{name}-phone")


def test_marketer_makes_a_banner_in_three_locales_from_a_csv_and_downloads_the_zip(
    page: Page, phone: Page, site: str, owner: Actor, tmp_path: Any
) -> None:
    sign_in(page, site, owner)
    sign_in(phone, site, owner)

    # 1. A template with two placeholders and three locales, previewed as it is typed.
    page.goto(f"{site}/templates/")
    page.get_by_test_id("new-template").click()
    page.fill("#id_name", "Summer banner")
    page.fill("#id_text", "A {colour} summer sale banner for {product}")
    expect(page.get_by_test_id("preview-missing")).to_have_text("Missing: colour, product")
    page.get_by_test_id("sample-product").fill("a straw hat")
    expect(page.get_by_test_id("preview-text")).to_have_text(
        "A {colour} summer sale banner for a straw hat"
    )
    expect(page.get_by_test_id("preview-missing")).to_have_text("Missing: colour")
    page.select_option("#id_kind", "banner")
    page.fill("#id_locales", "en\nde | colour = sonnengelb\nfr")
    page.select_option("#preview-locale", "de")
    expect(page.get_by_test_id("preview-text")).to_have_text(
        "A sonnengelb summer sale banner for a straw hat"
    )
    expect(page.get_by_test_id("preview-missing")).to_have_text("")
    shoot(page, phone, "bulk-1-template")
    page.get_by_test_id("save-template").click()
    row = page.get_by_test_id("template-row").filter(has_text="Summer banner")
    expect(row).to_contain_text("de")
    shoot(page, phone, "bulk-1-templates")

    # 2. Source: the template × a 5-row CSV upload (BOM, semicolons, a quoted semicolon).
    row.get_by_test_id("use-template").click()
    expect(page.locator("[data-locale=de] input")).to_be_checked()
    csv_file = tmp_path / "products.csv"
    csv_file.write_bytes(CSV.encode())
    page.set_input_files("#id_file", str(csv_file))
    shoot(page, phone, "bulk-2-source", url=page.url)
    page.get_by_test_id("to-check").click()

    # 3. Check: 15 items, priced in both modes; the bad row is named and fixed in place.
    page.wait_for_url(re.compile(r"/batches/new/[0-9a-f-]+/$"))
    expect(page.get_by_test_id("check-item")).to_have_count(15)
    expect(page.get_by_test_id("row-counts")).to_have_text("4 good · 1 bad")
    expect(page.get_by_test_id("price-batch")).to_contain_text("per image in batch mode")
    expect(page.get_by_test_id("price-realtime")).to_contain_text("realtime")
    bad = page.get_by_test_id("bad-row")
    expect(bad).to_contain_text("Missing variable(s): product.")
    shoot(page, phone, "bulk-3-check")
    page.get_by_test_id("fix-2-product").fill("beach towel")
    page.get_by_test_id("recheck").click()
    expect(page.get_by_test_id("row-counts")).to_have_text("5 good · 0 bad")
    expect(page.get_by_test_id("price-batch")).to_contain_text("$0.0268 per image in batch mode")
    expect(page.get_by_test_id("price-realtime")).to_contain_text("$0.0436 realtime")
    expect(page.get_by_test_id("bad-row")).to_have_count(0)
    expect(page.get_by_text("A coral summer sale banner for tote bag")).to_have_count(2)  # en, fr
    expect(page.get_by_text("A sonnengelb summer sale banner for tote bag")).to_have_count(1)

    # 4. Submit with a double click: one batch.
    page.get_by_test_id("batch-name").fill("Summer sale 2026")
    page.get_by_test_id("submit-batch").dblclick()
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]+/$"))
    assert Batch.objects.filter(tenant=owner.tenant).count() == 1
    batch = Batch.objects.get(tenant=owner.tenant)
    assert batch.total_items == 15 and batch.name == "Summer sale 2026"

    # 5. Watch it finish, by locale (the test drives the scheduled poll).
    poll_until(lambda: Batch.objects.get(pk=batch.pk).is_finished, timeout_s=60)
    expect(page.get_by_test_id("batch-status")).to_have_text("Succeeded", timeout=30_000)
    summary = page.get_by_test_id("locale-summary")
    for line in ("de: 5/5", "en: 5/5", "fr: 5/5"):
        expect(summary).to_contain_text(line)
    expect(page.get_by_test_id("item-thumb")).to_have_count(15)
    for thumb in page.get_by_test_id("item-thumb").locator("img").all():
        expect(thumb).to_have_js_property("complete", True)
        assert thumb.evaluate("img => img.naturalWidth") > 0
    expect(page.get_by_test_id("cancel")).to_have_count(0)
    shoot(page, phone, "bulk-4-batch")

    with page.expect_download() as download:
        page.get_by_test_id("download").click()
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))  # noqa: SIM115
    images = [n for n in archive.namelist() if n.startswith("images/")]
    assert len(images) == 15 and "manifest.csv" in archive.namelist()
    assert sum("-de-" in n for n in images) == 5

    # 6. Gallery: this batch's German banners; pick two; download them; start a new batch.
    page.goto(f"{site}/gallery/?batch={batch.pk}&locale=de")
    expect(page.get_by_test_id("thumb")).to_have_count(5)
    picks = page.get_by_test_id("pick")
    picks.nth(0).check()
    picks.nth(1).check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    shoot(page, phone, "bulk-5-gallery")
    with page.expect_download() as selected:
        page.get_by_test_id("download-selected").click()
    assert len(zipfile.ZipFile(selected.value.path()).namelist()) == 2
    page.get_by_test_id("use-as-reference").click()
    page.wait_for_url(re.compile(r"/batches/new/\?images="))
    expect(page.get_by_test_id("source-images")).to_be_checked()
    expect(page.locator("#id_rows")).to_have_value(re.compile(r"^image,prompt\n[0-9a-f-]{36},\n"))
