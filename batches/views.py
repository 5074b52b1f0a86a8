"""Dashboard pages of batches and prompt templates.

Templates: members use them, owners and admins manage them. A new batch is made in three
steps: source (rows in, a draft), check (every item rendered and priced), submit. The batch
page polls the REST API (`/api/v1/batches/<id>`), which accepts the dashboard session.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from batches import drafts, rows, selectors, services, templates
from batches.forms import SourceForm, TemplateForm
from batches.models import BATCH, REALTIME, BatchDraft, PromptTemplate
from batches.serializers import BatchOut, batch_percent
from config.errors import BunchError
from core.catalog import MODELS
from generation.links import signed_image_url
from tenants.models import Membership
from tenants.roles import Action
from tenants.views import tenant_page

PAGE_SIZE = 25
ITEMS_PAGE_SIZE = 100


def _row(batch: object) -> dict[str, object]:
    return {"batch": batch, "body": BatchOut(batch).data, "percent": batch_percent(batch)}  # type: ignore[arg-type]


@tenant_page()
def batch_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    batches = selectors.batches_page_for_tenant(membership.tenant).order_by("-created_at")
    page = Paginator(batches, PAGE_SIZE).get_page(request.GET.get("page"))
    rows_ = [_row(b) for b in selectors.batches_with_progress(page)]
    running = any(not r["batch"].is_finished for r in rows_)  # type: ignore[attr-defined]
    return render(
        request, "batches/list.html", {"page": page, "rows": rows_, "auto_refresh": running}
    )


@tenant_page()
def batch_detail(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    batch = selectors.batch_get_for_tenant(membership.tenant, batch_id)
    items = Paginator(selectors.batch_items(batch, membership.tenant), ITEMS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        **_row(batch),
        "items": items,
        "item_rows": [
            (item, [(i, signed_image_url(i.pk, "thumbnail")) for i in item.job.images.all()])
            for item in items
        ],
        "locales": selectors.batch_locale_summary(batch),
        "has_failed": batch.items_failed > 0,  # type: ignore[attr-defined]
    }
    return render(request, "batches/detail.html", context)


@tenant_page()
@require_POST
def batch_cancel(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    batch = selectors.batch_get_for_tenant(membership.tenant, batch_id)
    try:
        services.batch_cancel(batch=batch)
    except BunchError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Canceled: nothing more will be made or billed.")
    return redirect("batches:detail", batch_id=batch.pk)


@tenant_page()
@require_POST
def batch_retry(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    batch = selectors.batch_get_for_tenant(membership.tenant, batch_id)
    try:
        retry = services.batch_retry_failed(batch=batch, user=request.user)  # type: ignore[arg-type]
    except BunchError as error:
        messages.error(request, error.message)
        return redirect("batches:detail", batch_id=batch.pk)
    messages.success(request, f"A new batch retries the {retry.total_items} failed item(s).")
    return redirect("batches:detail", batch_id=retry.pk)


# Templates -------------------------------------------------------------------------------


@tenant_page()
def template_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    context = {"templates": selectors.templates_for_tenant(membership.tenant)}
    return render(request, "batches/templates.html", context)


def _template_save(
    request: HttpRequest, membership: Membership, template: PromptTemplate | None
) -> HttpResponse:
    form = TemplateForm(request.POST)
    if form.is_valid():
        try:
            if template is None:
                template = templates.template_create(tenant=membership.tenant, **form.cleaned_data)
            else:
                template = templates.template_update(template=template, **form.cleaned_data)
        except BunchError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Saved “{template.name}”.")
            return redirect("batches:templates")
    return render(request, "batches/template_form.html", {"form": form, "template": template})


@tenant_page(action=Action.TEMPLATES_MANAGE)
def template_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    if request.method == "POST":
        return _template_save(request, membership, None)
    form = TemplateForm(initial={"model": "lite"})
    return render(request, "batches/template_form.html", {"form": form, "template": None})


@tenant_page(action=Action.TEMPLATES_MANAGE)
def template_edit(request: HttpRequest, membership: Membership, template_id: str) -> HttpResponse:
    template = selectors.template_get_for_tenant(membership.tenant, template_id)
    if request.method == "POST":
        return _template_save(request, membership, template)
    form = TemplateForm.for_template(template)
    return render(request, "batches/template_form.html", {"form": form, "template": template})


@tenant_page(action=Action.TEMPLATES_MANAGE)
@require_POST
def template_delete(request: HttpRequest, membership: Membership, template_id: str) -> HttpResponse:
    template = selectors.template_get_for_tenant(membership.tenant, template_id)
    templates.template_delete(template=template)
    messages.success(request, f"Deleted “{template.name}”. Batches made from it keep their images.")
    return redirect("batches:templates")


# New batch: source → check → submit -------------------------------------------------------


def _source_initial(request: HttpRequest) -> dict[str, Any]:
    """Pre-filled from the gallery (`?images=<id>,<id>`) or a template (`?template=<id>`)."""
    images = [i.strip() for v in request.GET.getlist("images") for i in v.split(",") if i.strip()]
    if images:
        body = rows.write(["image", "prompt"], [{"image": i, "prompt": ""} for i in images])
        return {"source": BatchDraft.Source.IMAGES, "rows": body}
    return {"source": BatchDraft.Source.TEMPLATE, "template": request.GET.get("template")}


@tenant_page()
def batch_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    choices = selectors.templates_for_tenant(tenant)
    form = SourceForm(
        request.POST or None,
        request.FILES or None,
        templates=choices,
        initial=_source_initial(request),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            text = rows.decode(data["raw"]) if "raw" in data else data["rows"]
            draft = drafts.draft_create(
                tenant=tenant,
                user=request.user,  # type: ignore[arg-type]
                source=data["source"],
                text=text,
                template=data["template"],
                locales=data["locales"],
                model=data["model"],
                aspect_ratio=data["aspect_ratio"],
            )
        except rows.RowsError as error:
            form.add_error(None, error.message)
        except BunchError as error:
            form.add_error(None, error.message)
        else:
            return redirect("batches:check", draft_id=draft.pk)
    template_locales = {str(t.pk): t.locale_codes for t in choices}
    context = {"form": form, "template_locales": template_locales, "step": 1}
    return render(request, "batches/new_source.html", context, status=400 if form.errors else 200)


def _draft(membership: Membership, draft_id: str) -> BatchDraft:
    return selectors.draft_get_for_tenant(membership.tenant, draft_id)


def _fixes(request: HttpRequest, draft: BatchDraft) -> dict[int, dict[str, str]]:
    """`fix-<row>-<column>` fields of the check page's fix form."""
    out: dict[int, dict[str, str]] = {}
    for key, value in request.POST.items():
        prefix, _, rest = key.partition("-")
        index, _, column = rest.partition("-")
        if prefix == "fix" and index.isdigit() and column in draft.columns:
            out.setdefault(int(index), {})[column] = str(value)
    return out


@tenant_page()
def batch_check(request: HttpRequest, membership: Membership, draft_id: str) -> HttpResponse:
    draft = _draft(membership, draft_id)
    if draft.batch_id:
        return redirect("batches:detail", batch_id=draft.batch_id)
    if request.method == "POST":
        drafts.draft_fix(draft=draft, fixes=_fixes(request, draft))
        return redirect("batches:check", draft_id=draft.pk)
    return _check_page(request, draft)


def _check_page(
    request: HttpRequest, draft: BatchDraft, error: str = "", status: int = 200
) -> HttpResponse:
    check = drafts.draft_check(draft=draft)
    bad_rows = [(i, draft.rows[i]) for i in check.bad_rows[: drafts.PREVIEW_ITEMS]]
    errors_by_row: dict[int, list[str]] = {}
    for item in check.bad_items:
        for message in item.errors:
            if message not in errors_by_row.setdefault(item.row, []):
                errors_by_row[item.row].append(message)
    context = {
        "draft": draft,
        "check": check,
        "preview": check.items[: drafts.PREVIEW_ITEMS],
        "bad_rows": [
            (i, [(c, row.get(c, "")) for c in draft.columns], errors_by_row.get(i, []))
            for i, row in bad_rows
        ],
        "batch_price": check.prices[BATCH],
        "realtime_price": check.prices[REALTIME],
        "model_name": MODELS[draft.model].display_name if draft.model in MODELS else draft.model,
        "default_name": _default_name(draft),
        "error": error,
        "step": 2,
    }
    return render(request, "batches/new_check.html", context, status=status)


def _default_name(draft: BatchDraft) -> str:
    stem = draft.template.name if draft.template else draft.get_source_display()
    return f"{stem} · {draft.created_at:%b %-d, %H:%M}"


@tenant_page()
@require_POST
def batch_submit(request: HttpRequest, membership: Membership, draft_id: str) -> HttpResponse:
    draft = _draft(membership, draft_id)
    mode = request.POST.get("mode", BATCH)
    try:
        batch = drafts.draft_submit(
            draft=draft,
            mode=mode,
            name=request.POST.get("name", ""),
            skip_bad=request.POST.get("bad_rows") == "skip",
            user=request.user,  # type: ignore[arg-type]
        )
    except BunchError as error:
        return _check_page(request, draft, error=error.message, status=error.status)
    return redirect(reverse("batches:detail", kwargs={"batch_id": batch.pk}))
