"""Prompt templates: saving, previews, missing and unknown variables, locale variants."""

from __future__ import annotations

from typing import Any

import pytest

from batches.models import BatchItem, PromptTemplate
from batches.prompts import TemplateError, expand
from generation.models import Job
from tests.batches.conftest import BATCHES, TEMPLATES, finish, submit
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator

BANNER = 'A {style} banner for {product} with the headline "{headline}" in {language}'
LOCALES = [
    {"locale": "de-DE", "headline": "Jetzt zugreifen", "language": "German"},
    {"locale": "fr-FR", "headline": "Profitez-en", "language": "French"},
    {"locale": "ja-JP", "headline": "今すぐ購入", "language": "Japanese"},
]


def create(actor: Actor, **body: Any) -> dict[str, Any]:
    payload = {"name": "Banner", "text": BANNER, "defaults": {"style": "bold"}, **body}
    response = actor.api().post(TEMPLATES, payload, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def test_saved_template_lists_its_variables_and_can_be_changed_and_deleted(
    owner: Actor,
) -> None:
    template = create(owner, kind="banner", aspect_ratio="16:9")
    assert template["variables"] == ["style", "product", "headline", "language"]
    url = f"{TEMPLATES}/{template['id']}"

    changed = owner.api().patch(url, {"defaults": {"style": "calm"}}, format="json")
    assert changed.status_code == 200 and changed.json()["defaults"] == {"style": "calm"}
    assert changed.json()["text"] == BANNER
    assert [t["id"] for t in owner.api().get(TEMPLATES).json()["results"]] == [template["id"]]
    assert owner.api().delete(url).status_code == 204
    assert not PromptTemplate.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "no variables at all"}, "text"),
        ({"text": "A {product.name} mug"}, "text"),
        ({"text": "A {product!r} mug"}, "text"),
        ({"text": "A {product mug"}, "text"),
        ({"text": "A {product} mug", "defaults": {"colour": "red"}}, "defaults"),
    ],
)
def test_invalid_template_is_refused_with_400_naming_the_problem(
    owner: Actor, body: dict[str, Any], field: str
) -> None:
    response = owner.api().post(TEMPLATES, {"name": "x", **body}, format="json")
    error = assert_error(response, 400, "invalid_template")
    assert field in error["fields"]


def test_patch_that_breaks_the_template_is_refused_and_changes_nothing(owner: Actor) -> None:
    template = create(owner)
    url = f"{TEMPLATES}/{template['id']}"
    response = owner.api().patch(url, {"defaults": {"colour": "red"}}, format="json")
    assert_error(response, 400, "invalid_template")
    assert PromptTemplate.objects.get().defaults == {"style": "bold"}


def test_preview_renders_each_row_with_defaults(owner: Actor) -> None:
    template = create(owner)
    rows = [
        {"product": "mug", "headline": "Hot", "language": "English"},
        {"product": "cap", "headline": "Cool", "language": "English", "style": "retro"},
    ]
    response = owner.api().post(
        f"{TEMPLATES}/{template['id']}/preview", {"rows": rows}, format="json"
    )
    assert response.status_code == 200, response.content
    assert [p["prompt"] for p in response.json()["prompts"]] == [
        'A bold banner for mug with the headline "Hot" in English',
        'A retro banner for cap with the headline "Cool" in English',
    ]


def test_preview_with_missing_and_unknown_variables_names_them_with_400(owner: Actor) -> None:
    template = create(owner)
    rows = [{"product": "mug", "colour": "red"}, {"product": "cap", "headline": "x"}]
    response = owner.api().post(
        f"{TEMPLATES}/{template['id']}/preview", {"rows": rows}, format="json"
    )
    error = assert_error(response, 400, "template_variables")
    assert "missing variable(s) headline, language" in error["message"]
    assert "unknown variable(s) colour" in error["message"]
    assert error["fields"] == {
        "rows[0]": ["Unknown variable(s): colour.", "Missing variable(s): headline, language."],
        "rows[1]": ["Missing variable(s): language."],
    }


def test_locale_entries_must_name_their_locale(owner: Actor) -> None:
    template = create(owner)
    response = owner.api().post(
        f"{TEMPLATES}/{template['id']}/preview",
        {"rows": [{"product": "mug"}], "locales": [{"headline": "Hi", "language": "English"}]},
        format="json",
    )
    error = assert_error(response, 400, "template_variables")
    assert "locales[0]" in error["fields"]


def test_locale_variants_preview_one_prompt_per_locale_with_its_headline(owner: Actor) -> None:
    template = create(owner)
    response = owner.api().post(
        f"{TEMPLATES}/{template['id']}/preview",
        {"rows": [{"product": "sneakers"}], "locales": LOCALES},
        format="json",
    )
    prompts = response.json()["prompts"]
    assert [p["label"] for p in prompts] == ["de-DE", "fr-FR", "ja-JP"]
    assert '"今すぐ購入" in Japanese' in prompts[2]["prompt"]


def test_locale_variants_become_one_batch_with_one_labelled_item_per_locale(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    template = create(owner, kind="banner", aspect_ratio="16:9")
    created = submit(
        owner, template=template["id"], rows=[{"product": "sneakers"}], locales=LOCALES
    )

    batch = finish(created["id"])

    assert batch.status == "succeeded" and batch.template_id is not None
    items = list(BatchItem.objects.filter(batch=batch).select_related("job").order_by("index"))
    assert [(i.label, i.locale) for i in items] == [(x["locale"], x["locale"]) for x in LOCALES]
    for item, locale in zip(items, LOCALES, strict=True):
        assert f'"{locale["headline"]}" in {locale["language"]}' in item.job.prompt
        assert locale["headline"] in item.job.model_prompt
        assert item.job.kind == "banner" and item.job.aspect_ratio == "16:9"
        assert item.job.metadata["locale"] == locale["locale"]
        assert item.job.images.get().width == 1376
    listed = owner.api().get(f"{BATCHES}/{created['id']}/items").json()["results"]
    assert [r["locale"] for r in listed] == ["de-DE", "fr-FR", "ja-JP"]


def test_batch_from_a_template_with_missing_variables_is_refused_and_creates_nothing(
    owner: Actor,
) -> None:
    template = create(owner)
    response = owner.api().post(
        BATCHES, {"template": template["id"], "rows": [{"product": "mug"}]}, format="json"
    )
    error = assert_error(response, 400, "template_variables")
    assert "headline" in error["message"]
    assert not Job.objects.exists()


def test_rows_times_locales_expand_row_major() -> None:
    prompts = expand(
        text="{product} in {language}",
        defaults={},
        rows=[{"product": "mug"}, {"product": "cap"}],
        locales=[{"locale": "de", "language": "German"}, {"locale": "fr", "language": "French"}],
    )
    assert [(p.row, p.locale, p.prompt) for p in prompts] == [
        (0, "de", "mug in German"),
        (0, "fr", "mug in French"),
        (1, "de", "cap in German"),
        (1, "fr", "cap in French"),
    ]


def test_literal_braces_survive_and_values_are_never_reinterpreted() -> None:
    prompts = expand(text="{{logo}} {name}", defaults={}, rows=[{"name": "{secret.__class__}"}])
    assert prompts[0].prompt == "{logo} {secret.__class__}"


def test_values_must_be_text_or_numbers() -> None:
    with pytest.raises(TemplateError) as error:
        expand(text="{a}", defaults={}, rows=[{"a": ["x"]}])
    assert "rows[0].a" in error.value.fields
