"""Tenant-scoped reads of jobs and images: every lookup names the tenant."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db.models import DecimalField, OuterRef, Prefetch, QuerySet, Subquery, Sum

from billing.models import UsageEvent
from config.errors import NotFound
from generation.models import Image, Job, Provenance
from tenants.models import Tenant


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def job_actual_cost() -> Subquery:
    """What the job's usage events bill, as a subquery per selected job: the database
    computes it for the rows of the page only, after the LIMIT, and the list's query still
    walks the (tenant, created_at) index. (An aggregate over a join would group all of the
    tenant's jobs before taking a page.) It reads the usage events by their job id alone:
    joining them to the job again cost an index probe of the job per row, a third of the
    pages a batch list read at 10M rows."""
    billed = (
        UsageEvent.objects.filter(job_id=OuterRef("pk"))
        .order_by()
        .values("job_id")
        .annotate(total=Sum("billed"))
        .values("total")
    )
    return Subquery(billed, output_field=DecimalField(max_digits=24, decimal_places=9))


def jobs_for_tenant(tenant: Tenant) -> QuerySet[Job]:
    images = (
        Image.objects.select_related("usage", "provenance")
        .defer("provenance__manifest")
        .order_by("index")
    )
    return (
        tenant_jobs(tenant)
        .select_related("batch_item")  # its item index, for batch items
        .prefetch_related(Prefetch("images", queryset=images))
        .annotate(actual_cost=job_actual_cost())
    )


# What an answer shows of a job's images (`serializers.ImageOut`, with its usage and
# credentials), and nothing else: an image row's other columns, a usage event's rates,
# Stripe state and timestamps were read, converted and set on instances for every image
# of a page only to be dropped.
IMAGE_OUT_COLUMNS = (
    "id", "job_id", "index", "source", "parent_id", "mime_type", "width", "height",
    "size_bytes", "sha256", "created_at", "requested_tier", "served_tier", "fallback_reason",
    "usage__input_text_tokens", "usage__input_image_tokens", "usage__output_text_tokens",
    "usage__output_image_tokens", "usage__thoughts_tokens", "usage__provider_cost",
    "usage__billed",
    "provenance__state", "provenance__ai_generated", "provenance__signer",
    "provenance__issuer", "provenance__generator", "provenance__signed_at",
    "provenance__digital_source_type", "provenance__actions", "provenance__validation_codes",
    "provenance__checked_at",
)  # fmt: skip


def page_images(jobs: list[Job], *, items_read: bool = False) -> list[Job]:
    """A page of jobs, each given its images (`job.page_images`, what `JobOut` reads before
    `job.images.all()`) in one query over the page. `prefetch_related` did the same query,
    then made a queryset for each job to hold its images (200 clones for a page of 200:
    a fifth of its time); and this one reads only `IMAGE_OUT_COLUMNS`.

    It also drops the back references that `select_related` of a one-to-one leaves (a
    usage event to its image, a batch item to its job): each was a reference cycle, so the
    page's rows were garbage only the cyclic collector could free, and its collection of
    eight pages' rows at once took 16-20 ms of one read in ten (docs/performance.md).
    `items_read`: the jobs are a page of batch items' (`item.job`), which the answer reads
    through their items: those links stay."""
    by_job: dict[Any, list[Image]] = {job.pk: [] for job in jobs}
    if by_job:
        images = (
            Image.objects.filter(job_id__in=list(by_job))
            .select_related("usage", "provenance")
            .only(*IMAGE_OUT_COLUMNS)
            .order_by("index")
        )
        usage_of = Image._meta.get_field("usage")  # a usage event selected with its image
        for image in images:
            by_job[image.job_id].append(image)
            _forget_the_way_back(usage_of, image)
    item_of = Job._meta.get_field("batch_item")  # a batch item selected with its job
    for job in jobs:
        job.page_images = by_job[job.pk]  # type: ignore[attr-defined]
        if not items_read:
            _forget_the_way_back(item_of, job)
    return jobs


def release_items(items: list[Any]) -> None:
    """After a page of batch items has been serialised: their jobs no longer refer to
    them (nor they to their jobs), so that refcounting frees the page (see
    `page_images`)."""
    item_of = Job._meta.get_field("batch_item")
    job_of = item_of.field  # type: ignore[union-attr]
    for item in items:
        job = job_of.get_cached_value(item, default=None)
        if job is not None:
            job_of.delete_cached_value(item)
            if item_of.is_cached(job):  # type: ignore[union-attr]
                item_of.delete_cached_value(job)  # type: ignore[union-attr]


def _forget_the_way_back(relation: Any, instance: Any) -> None:
    """`instance`'s related row through the reverse one-to-one `relation`, as
    `select_related` gave it, no longer refers back to `instance`."""
    related = relation.get_cached_value(instance, default=None)
    if related is not None:
        relation.field.delete_cached_value(related)


def tenant_jobs(tenant: Tenant) -> QuerySet[Job]:
    """The tenant's jobs, each with its tenant and plan, which price its `price` (the
    markup) without a query per job. When the caller's tenant has its plan (an API
    request's or the dashboard's does), every job is given that one tenant (the related
    manager's known object) instead of a tenant and a plan joined and built for each row:
    a tenth of a page's time."""
    if Tenant._meta.get_field("plan").is_cached(tenant):
        return tenant.jobs.all()
    return Job.objects.filter(tenant=tenant).select_related("tenant__plan")


def job_get_for_tenant(tenant: Tenant, job_id: Any) -> Job:
    job = jobs_for_tenant(tenant).filter(pk=_uuid(job_id, "job")).first()
    if job is None:
        raise NotFound("No such job.")
    return job


def job_list(
    tenant: Tenant,
    *,
    status: str | None = None,
    kind: str | None = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    metadata: dict[str, str] | None = None,
    batch_id: uuid.UUID | None = None,
    q: str | None = None,
) -> QuerySet[Job]:
    jobs = jobs_for_tenant(tenant)
    if batch_id is not None:
        jobs = jobs.filter(batch_id=batch_id)
    if q:
        jobs = jobs.filter(prompt__icontains=q)
    if status:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    if created_after:
        jobs = jobs.filter(created_at__gt=created_after)
    if created_before:
        jobs = jobs.filter(created_at__lt=created_before)
    for key, value in (metadata or {}).items():
        jobs = jobs.filter(**{f"metadata__{key}": value})
    return jobs


def images_for_tenant(tenant: Tenant) -> QuerySet[Image]:
    """The tenant's images with what their pages show; the manifest itself (a few KB) is
    read only by `image_provenance_get`."""
    return (
        Image.objects.filter(tenant=tenant)
        .select_related("job", "usage", "parent", "provenance")
        .defer("provenance__manifest")
    )


def images_for_tenant_by_ids(tenant: Tenant, ids: list[str]) -> list[Image]:
    """The tenant's images among `ids` (ids that are not UUIDs or not the tenant's are
    left out), in the order given."""
    wanted = []
    for value in ids:
        try:
            wanted.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    found = {image.pk: image for image in images_for_tenant(tenant).filter(pk__in=wanted)}
    return [found[pk] for pk in dict.fromkeys(wanted) if pk in found]


def image_get_for_tenant(tenant: Tenant, image_id: Any) -> Image:
    image = images_for_tenant(tenant).filter(pk=_uuid(image_id, "image")).first()
    if image is None:
        raise NotFound("No such image.")
    return image


def image_provenance(image: Image) -> Provenance | None:
    """The (tenant-checked) image's provenance with its full manifest; None when it has not
    been checked yet."""
    return Provenance.objects.filter(image_id=image.pk).first()


def image_versions(image: Image) -> list[Image]:
    """Every version of the tree this image belongs to — the original, its edits, edits of
    those — in the order they were made, so version n is the n-th image made in the tree
    whichever version was edited (editing v1 after v3 makes v4, "edited from v1")."""
    root, seen = image, {image.pk}
    while root.parent_id is not None and root.parent_id not in seen:
        parent = Image.objects.filter(pk=root.parent_id, tenant_id=image.tenant_id).first()
        if parent is None:
            break
        seen.add(parent.pk)
        root = parent
    tree, members, frontier = [root], {root.pk}, [root]
    while frontier:
        children = [
            child
            for child in Image.objects.filter(parent__in=frontier, tenant_id=image.tenant_id)
            if child.pk not in members
        ]
        members.update(child.pk for child in children)
        tree.extend(children)
        frontier = children
    return sorted(tree, key=lambda i: (i.created_at, i.index or 0, str(i.pk)))


def image_get_signed(image_id: Any) -> Image:
    """For a request carrying a valid signed link (checked by the caller) to this image."""
    image = Image.objects.filter(pk=_uuid(image_id, "image")).first()
    if image is None:
        raise NotFound("No such image.")
    return image
