"""Bulk work from the dashboard: templates, a new batch in three steps, the batch page and
the gallery's selection, through the test client against the real database."""

from __future__ import annotations

import io
import re
import threading
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from batches.models import Batch, BatchDraft, PromptTemplate
from batches.templates import template_create
from generation.models import Job
from tests.batches.conftest import finish
from tests.plugins.actors import PASSWORD, Actor
from tests.plugins.gemini import GeminiEmulator

TEXT = "A {season} sale banner for {product}, headline “{headline}”"
LOCALES = [
    {"locale": "en", "headline": "Summer sale"},
    {"locale": "de", "headline": "Sommerschlussverkauf"},
    {"locale": "fr", "headline": "Soldes d'été"},
]
CSV = "product,season\nmug,summer\nhat,summer\nscarf,\nsocks,summer\nbag,summer\n"


def signed_in(actor: Actor) -> Client:
    client = Client()
    assert client.login(username=actor.user.username, password=PASSWORD)
    return client


def banner(actor: Actor, **overrides: Any) -> PromptTemplate:
    values: dict[str, Any] = {"name": "Summer banner", "text": TEXT, "locales": LOCALES}
    values.update(overrides)
    return template_create(tenant=actor.tenant, **values)


def new_draft(client: Client, expect: int = 302, **fields: Any) -> Any:
    response = client.post("/batches/new/", fields)
    shown = re.findall(
        r'data-testid="form-error">([^<]*)|errorlist[^>]*><li>([^<]*)', response.content.decode()
    )
    assert response.status_code == expect, shown
    return response


def draft_from(client: Client, template: PromptTemplate, text: str = CSV) -> str:
    response = new_draft(
        client,
        source="template",
        template=str(template.pk),
        locales=template.locale_codes,
        rows=text,
    )
    match = re.fullmatch(r"/batches/new/([0-9a-f-]+)/", response["Location"])
    assert match, response["Location"]
    return match.group(1)


# Templates ------------------------------------------------------------------------------


def test_owner_creates_a_template_with_two_placeholders_and_three_locales(owner: Actor) -> None:
    client = signed_in(owner)
    response = client.post(
        "/templates/new/",
        {
            "name": "Banner",
            "text": "{product} banner: {headline}",
            "kind": "banner",
            "aspect_ratio": "16:9",
            "model": "flash",
            "defaults": "",
            "locales": "en | headline = Sale\nde | headline = Ausverkauf\nfr",
        },
    )

    assert response.status_code == 302 and response["Location"] == "/templates/"
    template = PromptTemplate.objects.get(tenant=owner.tenant)
    assert template.model == "flash" and template.aspect_ratio == "16:9"
    assert template.locales == [
        {"locale": "en", "headline": "Sale"},
        {"locale": "de", "headline": "Ausverkauf"},
        {"locale": "fr"},
    ]
    page = client.get("/templates/").content.decode()
    assert "Banner" in page and ">de<" in page


def test_a_locale_that_overrides_an_unknown_variable_is_refused_on_the_form(owner: Actor) -> None:
    response = signed_in(owner).post(
        "/templates/new/",
        {
            "name": "B",
            "text": "{product}",
            "kind": "image",
            "model": "lite",
            "locales": "de | cta = x",
        },
    )

    assert response.status_code == 200
    assert "overrides variables the template does not use: cta" in response.content.decode()
    assert not PromptTemplate.objects.exists()


def test_owner_edits_then_deletes_a_template_and_its_batches_keep_their_items(
    owner: Actor,
) -> None:
    template = banner(owner)
    client = signed_in(owner)
    form = client.get(f"/templates/{template.pk}/").content.decode()
    assert "de | headline = Sommerschlussverkauf" in form

    client.post(
        f"/templates/{template.pk}/",
        {"name": "Renamed", "text": TEXT, "kind": "image", "model": "lite", "locales": "en"},
    )
    template.refresh_from_db()
    assert template.name == "Renamed" and template.locale_codes == ["en"]

    response = client.post(f"/templates/{template.pk}/delete/")
    assert response.status_code == 302
    assert not PromptTemplate.objects.filter(pk=template.pk).exists()


def test_a_member_uses_templates_but_cannot_create_edit_or_delete_them(
    owner: Actor, member: Actor
) -> None:
    template = banner(owner)
    client = signed_in(member)

    listing = client.get("/templates/").content.decode()
    assert "Summer banner" in listing and "/edit" not in listing
    assert f'href="/templates/{template.pk}/"' not in listing
    assert client.get("/templates/new/").status_code == 403
    assert client.get(f"/templates/{template.pk}/").status_code == 403
    edit = {"name": "Hijacked", "text": TEXT, "kind": "image", "model": "lite"}
    assert client.post(f"/templates/{template.pk}/", edit).status_code == 403
    assert client.post(f"/templates/{template.pk}/delete/").status_code == 403
    template.refresh_from_db()
    assert template.name == "Summer banner"

    draft = draft_from(client, template, CSV.replace("scarf,", "scarf,winter"))
    response = client.post(f"/batches/new/{draft}/submit/", {"mode": "realtime", "name": "M"})
    assert response.status_code == 302
    batch = Batch.objects.get(tenant=owner.tenant)
    assert batch.total_items == 15 and batch.created_by == member.user


def test_another_tenants_template_batch_and_draft_ids_are_404(
    owner: Actor, outsider: Actor
) -> None:
    template = banner(owner)
    draft = draft_from(signed_in(owner), template)
    signed_in(owner).post(f"/batches/new/{draft}/submit/", {"mode": "batch", "bad_rows": "skip"})
    batch = Batch.objects.get(tenant=owner.tenant)
    client = signed_in(outsider)

    for url in (
        f"/templates/{template.pk}/",
        f"/batches/new/{draft}/",
        f"/batches/{batch.pk}/",
        f"/batches/new/?template={template.pk}",
    ):
        status = client.get(url).status_code
        assert status == (200 if "?" in url else 404), url
    assert client.post(f"/templates/{template.pk}/delete/").status_code == 404
    assert client.post(f"/batches/{batch.pk}/cancel/").status_code == 404
    assert client.post(f"/batches/{batch.pk}/retry/").status_code == 404
    response = client.post(
        "/batches/new/", {"source": "template", "template": str(template.pk), "rows": CSV}
    )
    assert response.status_code == 400  # not a choice for this tenant
    assert PromptTemplate.objects.filter(pk=template.pk).exists()


# New batch: source and check --------------------------------------------------------------


def test_five_rows_in_three_locales_check_as_fifteen_items_priced_in_both_modes(
    owner: Actor,
) -> None:
    client = signed_in(owner)
    draft = draft_from(client, banner(owner), CSV.replace("scarf,", "scarf,winter"))

    page = client.get(f"/batches/new/{draft}/").content.decode()

    assert page.count('data-testid="check-item"') == 15
    assert "5 good · 0 bad" in page
    assert "$0.0268 per image in batch mode (within 24 h)" in page  # $0.0168 + $0.01 markup
    assert "$0.0436 realtime" in page
    assert "$0.40" in page and "$0.65" in page  # 15 images in each mode
    assert "985 of 1000 images left" in page
    assert "Sommerschlussverkauf" in page and "Soldes d&#x27;été" in page


def test_a_row_missing_a_variable_is_named_fixed_in_place_and_checks_clean(owner: Actor) -> None:
    client = signed_in(owner)
    draft = draft_from(client, banner(owner))

    page = client.get(f"/batches/new/{draft}/").content.decode()
    assert "4 good · 1 bad" in page
    assert "Row 3" in page and "Missing variable(s): season." in page

    client.post(f"/batches/new/{draft}/", {"fix-2-product": "scarf", "fix-2-season": "winter"})

    page = client.get(f"/batches/new/{draft}/").content.decode()
    assert "5 good · 0 bad" in page
    assert "A winter sale banner for scarf" in page


def test_bad_rows_are_submitted_only_by_an_explicit_choice_to_skip_them(owner: Actor) -> None:
    client = signed_in(owner)
    draft = draft_from(client, banner(owner))

    refused = client.post(f"/batches/new/{draft}/submit/", {"mode": "batch", "bad_rows": "fix"})
    assert refused.status_code == 400
    assert "1 row(s) have errors: fix them, or choose to skip them." in refused.content.decode()
    assert not Batch.objects.exists()

    client.post(f"/batches/new/{draft}/submit/", {"mode": "batch", "bad_rows": "skip"})
    batch = Batch.objects.get()
    assert batch.total_items == 12 and batch.metadata == {"skipped_rows": 1}


def test_per_row_errors_name_unknown_variables_empty_prompts_bad_ratios_and_length(
    owner: Actor,
) -> None:
    client = signed_in(owner)
    draft = draft_from(
        client,
        banner(owner, locales=[]),
        "product,season,headline,colour,aspect_ratio\nmug,summer,Hi,red,\nhat,summer,Hi,,7:5\n"
        f"{'x' * 8001},summer,Hi,,\n",
    )
    page = client.get(f"/batches/new/{draft}/").content.decode()

    assert "Unknown variable(s): colour (not in the template)." in page
    assert "does not make &#x27;7:5&#x27; images" in page
    assert "The prompt is longer than 8000 characters." in page

    prompts = new_draft(client, source="prompts", rows="prompt,label\n,empty one\nok,fine\n")
    page = client.get(prompts["Location"]).content.decode()
    assert "The prompt is empty." in page and "1 good · 1 bad" in page


def upload(client: Client, data: bytes, name: str = "rows.csv") -> Any:
    file = SimpleUploadedFile(name, data, content_type="text/csv")
    return client.post("/batches/new/", {"source": "prompts", "file": file})


def test_an_uploaded_file_with_bom_and_semicolons_becomes_a_draft(owner: Actor) -> None:
    response = upload(signed_in(owner), '\ufeffprompt;label\n"a cat;\nin a hat";x\n'.encode())

    assert response.status_code == 302
    draft = BatchDraft.objects.get()
    assert draft.rows == [{"prompt": "a cat;\nin a hat", "label": "x"}]


def test_an_uploaded_file_of_10001_rows_is_refused_with_a_clear_400(owner: Actor) -> None:
    data = ("prompt\n" + "a cat\n" * 10_001).encode()

    response = upload(signed_in(owner), data)

    assert response.status_code == 400
    assert "more than 10,000 rows" in response.content.decode()
    assert not BatchDraft.objects.exists()


def test_an_uploaded_non_utf8_file_is_refused_with_a_clear_400(owner: Actor) -> None:
    response = upload(signed_in(owner), "prompt\nCrème brûlée\n".encode("cp1252"))

    assert response.status_code == 400
    assert "The file is not UTF-8 text" in response.content.decode()


def test_rows_times_locales_over_the_batch_limit_are_refused(owner: Actor) -> None:
    client = signed_in(owner)
    text = "product,season\n" + "mug,summer\n" * 4_000

    response = new_draft(
        client,
        expect=400,
        source="template",
        template=str(banner(owner).pk),
        locales=["en", "de", "fr"],
        rows=text,
    )

    assert "4,000 rows × 3 locales makes 12,000 items" in response.content.decode()


def test_reference_images_per_row_must_be_the_tenants_own(owner: Actor, outsider: Actor) -> None:
    from tests.dashboard.conftest import uploaded

    mine, theirs = uploaded(owner.tenant), uploaded(outsider.tenant)
    client = signed_in(owner)
    response = new_draft(
        client, source="images", rows=f"image,prompt\n{mine.pk},as a sticker\n{theirs.pk},x\n"
    )
    page = client.get(response["Location"]).content.decode()

    assert "1 good · 1 bad" in page and f"No image {theirs.pk} in this workspace." in page
    draft = response["Location"].split("/")[3]
    client.post(f"/batches/new/{draft}/submit/", {"mode": "realtime", "bad_rows": "skip"})
    assert Job.objects.get(tenant=owner.tenant).input_image_ids == [str(mine.pk)]


def test_the_gallery_preselects_images_as_rows_of_a_new_batch(owner: Actor) -> None:
    from tests.dashboard.conftest import uploaded

    a, b = uploaded(owner.tenant), uploaded(owner.tenant, "red")

    page = signed_in(owner).get(f"/batches/new/?images={a.pk},{b.pk}").content.decode()

    assert f"image,prompt\n{a.pk},\n{b.pk}," in page
    assert 'value="images" checked' in page


# Submit: once ------------------------------------------------------------------------------


def test_submitting_twice_makes_one_batch_and_both_land_on_it(owner: Actor) -> None:
    client = signed_in(owner)
    draft = draft_from(client, banner(owner), CSV.replace("scarf,", "scarf,winter"))

    first = client.post(f"/batches/new/{draft}/submit/", {"mode": "batch", "name": "Summer"})
    second = client.post(f"/batches/new/{draft}/submit/", {"mode": "batch", "name": "Summer"})

    batch = Batch.objects.get()
    assert first["Location"] == second["Location"] == f"/batches/{batch.pk}/"
    assert batch.name == "Summer" and batch.total_items == 15
    assert client.get(f"/batches/new/{draft}/")["Location"] == f"/batches/{batch.pk}/"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_submits_of_one_draft_make_one_batch(owner: Actor) -> None:
    draft = draft_from(signed_in(owner), banner(owner), CSV.replace("scarf,", "scarf,winter"))
    barrier = threading.Barrier(2)
    locations: list[str] = []

    def click() -> None:
        client = signed_in(owner)
        barrier.wait()
        response = client.post(f"/batches/new/{draft}/submit/", {"mode": "batch"})
        locations.append(response.get("Location", str(response.status_code)))
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    batch = Batch.objects.get()
    assert locations == [f"/batches/{batch.pk}/"] * 2


# Batch page ------------------------------------------------------------------------------


def test_batch_page_groups_items_by_locale_with_failures_named(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    template = banner(owner, text="{product} [[{trigger}]] {headline}", locales=LOCALES[:2])
    client = signed_in(owner)
    response = new_draft(
        client,
        source="template",
        template=str(template.pk),
        locales=["en", "de"],
        rows="product,trigger\nmug,ok\nhat,ok\n",
    )
    draft = BatchDraft.objects.get()
    draft.rows[1]["trigger"] = "safety"
    draft.save()
    client.post(f"{response['Location']}submit/", {"mode": "batch"})
    batch = finish(str(Batch.objects.get().pk))

    page = client.get(f"/batches/{batch.pk}/").content.decode()
    body = client.get(f"/api/v1/batches/{batch.pk}").json()

    assert [line["line"] for line in body["locales"]] == [
        "de: 1/2 (1 failed: image_refused)",
        "en: 1/2 (1 failed: image_refused)",
    ]
    assert "de: 1/2 (1 failed: image_refused)" in page
    assert page.count('data-testid="item-thumb"') == 2

    retried = client.post(f"/batches/{batch.pk}/retry/")
    retry = Batch.objects.exclude(pk=batch.pk).get()
    assert retried["Location"] == f"/batches/{retry.pk}/"
    assert retry.total_items == 2 and retry.metadata == {"retry_of": str(batch.pk)}
    assert sorted(retry.items.values_list("locale", flat=True)) == ["de", "en"]


def test_a_finished_batch_cannot_be_canceled_and_says_so(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    client = signed_in(owner)
    response = new_draft(client, source="prompts", rows="prompt\na red mug\n")
    client.post(f"{response['Location']}submit/", {"mode": "batch"})
    batch = finish(str(Batch.objects.get().pk))

    page = client.post(f"/batches/{batch.pk}/cancel/", follow=True).content.decode()

    assert "The batch is already succeeded." in page
    assert "nothing to retry" not in page


# Gallery -----------------------------------------------------------------------------------


def test_gallery_filters_by_batch_and_locale_and_downloads_the_selection(
    inline_worker: GeminiEmulator, owner: Actor, outsider: Actor
) -> None:
    from tests.dashboard.conftest import uploaded

    client = signed_in(owner)
    draft = draft_from(client, banner(owner), "product,season\nmug,summer\n")
    client.post(f"/batches/new/{draft}/submit/", {"mode": "batch"})
    batch = finish(str(Batch.objects.get().pk))
    uploaded(owner.tenant)
    foreign = uploaded(outsider.tenant)

    by_batch = client.get(f"/gallery/?batch={batch.pk}").content.decode()
    by_locale = client.get("/gallery/?locale=de").content.decode()

    assert by_batch.count('data-testid="thumb"') == 3
    assert by_locale.count('data-testid="thumb"') == 1
    ids = re.findall(r'name="images" value="([0-9a-f-]+)"', by_batch)
    response = client.post("/gallery/download/", {"images": [*ids, str(foreign.pk)]})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert len(archive.namelist()) == 3
    assert all(str(foreign.pk) not in name for name in archive.namelist())
    assert client.post("/gallery/download/", {"images": [str(foreign.pk)]}).status_code == 404


def test_canceling_a_waiting_batch_from_its_page_ends_every_item_canceled(owner: Actor) -> None:
    client = signed_in(owner)
    response = new_draft(client, source="prompts", rows="prompt\na red mug\na blue mug\n")
    client.post(f"{response['Location']}submit/", {"mode": "batch"})
    batch = Batch.objects.get()

    page = client.post(f"/batches/{batch.pk}/cancel/", follow=True).content.decode()

    batch.refresh_from_db()
    assert batch.status == "canceled"
    assert set(Job.objects.filter(batch=batch).values_list("status", flat=True)) == {"canceled"}
    assert "Canceled: nothing more will be made or billed." in page
    assert 'data-testid="cancel"' not in page


def test_the_templates_api_takes_a_default_model_and_locales(owner: Actor) -> None:
    body = {"name": "B", "text": "{product} {headline}", "model": "flash", "locales": LOCALES}

    created = owner.api().post("/api/v1/templates", body, format="json")
    refused = owner.api().post(
        "/api/v1/templates",
        {**body, "locales": [{"locale": "de"}, {"locale": "de"}]},
        format="json",
    )

    assert created.status_code == 201, created.content
    assert created.json()["model"] == "flash" and created.json()["locales"] == LOCALES
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_template"
    assert "listed twice" in refused.json()["error"]["message"]
