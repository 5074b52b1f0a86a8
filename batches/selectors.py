"""Tenant-scoped reads of batches, their items and prompt templates."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from batches.models import Batch, BatchDraft, BatchItem, PromptTemplate
from batches.progress import Progress, progress_of
from billing.models import UsageEvent
from config.errors import NotFound
from generation import selectors as job_selectors
from generation.models import Image, Job
from tenants.models import Tenant

STATUSES = [s.value for s in Job.Status]


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def _status_count(status: str) -> Coalesce:
    """The batch's jobs in `status`: a subquery run for each row the page keeps (a JOIN and
    GROUP BY counted every job of every batch of the tenant before the page was cut)."""
    jobs = (
        Job.objects.filter(batch=OuterRef("pk"), status=status)
        .order_by()
        .values("batch")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(jobs, output_field=IntegerField()), 0)


def batches_for_tenant(tenant: Tenant) -> QuerySet[Batch]:
    """Batches with their progress: items per status, images made and the cost so far, each
    computed for the rows a page keeps only (correlated subqueries)."""
    cost = (
        UsageEvent.objects.filter(job__batch=OuterRef("pk"))
        .values("job__batch")
        .annotate(total=Sum("billed"))
        .values("total")
    )
    made = (
        Image.objects.filter(job__batch=OuterRef("pk"))
        .values("job__batch")
        .annotate(n=Count("pk"))
        .values("n")
    )
    counts = {f"items_{status}": _status_count(status) for status in STATUSES}
    return (
        Batch.objects.filter(tenant=tenant)
        .select_related("template")
        .annotate(
            **counts,
            actual_cost=Subquery(cost),
            images_made=Subquery(made, output_field=IntegerField()),
        )
    )


def batches_page_for_tenant(tenant: Tenant) -> QuerySet[Batch]:
    """The list's rows, without their progress: paginate, then `batches_with_progress`."""
    return Batch.objects.filter(tenant=tenant).select_related("template")


def batches_with_progress(batches: Iterable[Batch]) -> list[Batch]:
    """A page of batches with what `batches_for_tenant` annotates (items per status,
    images made, the cost so far) and `first_job` (its first item's job, the source of the
    batch's unit price; None without items). A finished batch's figures are the ones it
    kept as it finished (`batches.progress`); the others' come from their jobs, in one
    query for the page (`progress_of`). The first jobs: one query for the page's first
    items, one for their jobs (a query per batch for the price was an N+1)."""
    batches = list(batches)
    kept = {b.pk: Progress.from_json(b.final_progress) for b in batches if b.final_progress}
    figures = {**progress_of(b.pk for b in batches if b.pk not in kept), **kept}
    # Its first item (index 0, the unique (batch, index) index: one probe a batch), not
    # its oldest job (a sort of each batch's jobs by time: 5,000 rows for 50 batches).
    firsts = dict(
        BatchItem.objects.filter(batch_id__in=[b.pk for b in batches], index=0)
        .order_by()  # (the model's ordering by batch joins the batches to sort by theirs)
        .values_list("batch_id", "job_id")
    )
    jobs = Job.objects.select_related("tenant__plan").in_bulk(list(firsts.values()))
    for batch in batches:
        progress = figures[batch.pk]
        for status in STATUSES:
            setattr(batch, f"items_{status}", progress.counts.get(status, 0))
        batch.images_made = progress.images_made  # type: ignore[attr-defined]
        batch.actual_cost = progress.actual_cost  # type: ignore[attr-defined]
        batch.first_job = jobs.get(firsts.get(batch.pk))  # type: ignore[attr-defined]
    return batches


def batch_get_for_tenant(tenant: Tenant, batch_id: Any, *, progress: bool = True) -> Batch:
    """The tenant's batch; `progress=False`: without the figures `batches_for_tenant`
    annotates (for a read that shows only its items)."""
    rows = batches_for_tenant(tenant) if progress else batches_page_for_tenant(tenant)
    batch = rows.filter(pk=_uuid(batch_id, "batch")).first()
    if batch is None:
        raise NotFound("No such batch.")
    return batch


def batch_items(
    batch: Batch, tenant: Tenant | None = None, *, with_images: bool = True
) -> QuerySet[BatchItem]:
    """The batch's items in order, each with its job, images and usage. `tenant`: the
    batch's, with its plan, which its jobs then share (see `tenant_jobs`).
    `with_images=False`: the jobs without their images, for a page that then reads them
    with `generation.selectors.page_images`."""
    images = (
        Image.objects.select_related("usage", "provenance")
        .defer("provenance__manifest")
        .order_by("index")
    )
    # Each item shows its job's price, which reads the tenant's plan: the caller's, or
    # joined once here, not two queries per item. The cost is a subquery per job of the
    # page, not a GROUP BY over every column of the jobs.
    tenant_rows = (
        job_selectors.tenant_jobs(tenant)
        if tenant is not None and tenant.pk == batch.tenant_id
        else Job.objects.select_related("tenant__plan")
    )
    if with_images:
        tenant_rows = tenant_rows.prefetch_related(Prefetch("images", queryset=images))
    jobs = tenant_rows.annotate(actual_cost=job_selectors.job_actual_cost())
    return (
        BatchItem.objects.filter(batch=batch)
        .prefetch_related(Prefetch("job", queryset=jobs))
        .order_by("index")
    )


def templates_for_tenant(tenant: Tenant) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(tenant=tenant)


def template_get_for_tenant(tenant: Tenant, template_id: Any) -> PromptTemplate:
    template = templates_for_tenant(tenant).filter(pk=_uuid(template_id, "template")).first()
    if template is None:
        raise NotFound("No such template.")
    return template


def batch_locale_summary(batch: Batch) -> list[dict[str, Any]]:
    """Per locale of a template batch: items, how many succeeded, failed (by error code),
    and a line such as "fr: 18/20 (2 failed: image_refused)". Empty for unlabelled batches."""
    finished = Job.FINISHED
    counts = (
        BatchItem.objects.filter(batch=batch)
        .exclude(locale="")
        .values("locale")
        .annotate(
            total=Count("pk"),
            succeeded=Count("pk", filter=Q(job__status=Job.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(job__status=Job.Status.FAILED)),
            finished=Count("pk", filter=Q(job__status__in=finished)),
        )
        .order_by("locale")
    )
    codes: dict[str, dict[str, int]] = {}
    failures = (
        BatchItem.objects.filter(batch=batch, job__status=Job.Status.FAILED)
        .exclude(locale="")
        .values("locale", "job__error_code")
        .annotate(n=Count("pk"))
        .order_by("locale", "-n")
    )
    for failure in failures:
        codes.setdefault(failure["locale"], {})[failure["job__error_code"] or "failed"] = failure[
            "n"
        ]
    out = []
    for row in counts:
        failed = codes.get(row["locale"], {})
        line = f"{row['locale']}: {row['succeeded']}/{row['total']}"
        if row["failed"]:
            line += f" ({row['failed']} failed: {', '.join(failed)})"
        out.append({**row, "failures": failed, "line": line})
    return out


def draft_get_for_tenant(tenant: Tenant, draft_id: Any) -> BatchDraft:
    draft = BatchDraft.objects.filter(tenant=tenant, pk=_uuid(draft_id, "draft")).first()
    if draft is None:
        raise NotFound("No such draft.")
    return draft
