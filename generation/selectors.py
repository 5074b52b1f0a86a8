"""Tenant-scoped reads of jobs and images: every lookup names the tenant."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, Model, OuterRef, Prefetch, QuerySet, Subquery, Sum

from billing.models import UsageEvent
from config.errors import NotFound
from generation.models import Image, Job, Provenance
from tenants.models import Tenant


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def job_actual_cost(usage_model: type[Model] = UsageEvent) -> Subquery:
    """What the job's usage events bill, as a subquery per selected job: the database
    computes it for the rows of the page only, after the LIMIT, and the list's query still
    walks the (tenant, created_at) index. (An aggregate over a join would group all of the
    tenant's jobs before taking a page.) It reads the usage events by their job id alone:
    joining them to the job again cost an index probe of the job per row, a third of the
    pages a batch list read at 10M rows. `usage_model`: a migration's historical one."""
    billed = (
        usage_model._default_manager.filter(job_id=OuterRef("pk"))
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
# credentials), and nothing else, read as plain rows (`page_images`).
_IMAGE_COLUMNS = (
    "id", "job_id", "index", "source", "parent_id", "mime_type", "width", "height",
    "size_bytes", "sha256", "created_at", "requested_tier", "served_tier", "fallback_reason",
)  # fmt: skip
_USAGE_COLUMNS = (
    "input_text_tokens", "input_image_tokens", "output_text_tokens", "output_image_tokens",
    "thoughts_tokens", "provider_cost", "billed",
)  # fmt: skip
_PROVENANCE_COLUMNS = (
    "state", "ai_generated", "signer", "issuer", "generator", "signed_at",
    "digital_source_type", "actions", "validation_codes", "checked_at",
)  # fmt: skip


@dataclass(slots=True)
class UsageRow:
    """What `ImageUsageOut` shows of an image's usage event."""

    input_text_tokens: int
    input_image_tokens: int
    output_text_tokens: int
    output_image_tokens: int
    thoughts_tokens: int
    provider_cost: Decimal
    billed: Decimal


@dataclass(slots=True)
class ProvenanceRow:
    """What `ProvenanceOut` shows of an image's credentials."""

    state: str
    ai_generated: bool
    signer: str
    issuer: str
    generator: str
    signed_at: dt.datetime | None
    digital_source_type: str
    actions: list[Any]
    validation_codes: list[Any]
    checked_at: dt.datetime


@dataclass(slots=True)
class ImageRow:
    """What `ImageOut` shows of an image, as `page_images` reads it."""

    id: uuid.UUID
    job_id: uuid.UUID | None
    index: int | None
    source: str
    parent_id: uuid.UUID | None
    mime_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    created_at: dt.datetime
    requested_tier: str
    served_tier: str
    fallback_reason: str
    usage: UsageRow | None
    provenance: ProvenanceRow | None

    @property
    def pk(self) -> uuid.UUID:
        return self.id


def page_images(jobs: list[Job], *, items_read: bool = False) -> list[Job]:
    """A page of jobs, each given its images (`job.page_images`, what `JobOut` reads before
    `job.images.all()`) in one query over the page, as plain rows of what the answer
    shows (`ImageRow`): `prefetch_related` did the same query, then built three model
    instances per image and a queryset per job to hold them (a page of 200: half of its
    time); the rows also leave nothing for the cyclic collector (an image and its usage
    event, selected together, referred to each other).

    It also drops the back reference that `select_related("batch_item")` leaves from a
    batch item to its job: a reference cycle, so the page's jobs were garbage only the
    cyclic collector could free, and its collection of eight pages' rows at once took
    16-20 ms of one read in ten (docs/performance.md). `items_read`: the jobs are a page
    of batch items' (`item.job`), which the answer reads through their items: those links
    stay (`release_items` breaks them after)."""
    by_job: dict[Any, list[ImageRow]] = {job.pk: [] for job in jobs}
    if by_job:
        n_image, n_usage = len(_IMAGE_COLUMNS), len(_USAGE_COLUMNS)
        rows = (
            Image.objects.filter(job_id__in=list(by_job))
            .order_by("index")
            .values_list(
                *_IMAGE_COLUMNS,
                *(f"usage__{c}" for c in _USAGE_COLUMNS),
                *(f"provenance__{c}" for c in _PROVENANCE_COLUMNS),
            )
        )
        for row in rows:
            usage, provenance = row[n_image : n_image + n_usage], row[n_image + n_usage :]
            # billed and checked_at are never null: None is no row (the LEFT JOINs)
            image = (
                *row[:n_image],
                UsageRow(*usage) if usage[-1] is not None else None,
                ProvenanceRow(*provenance) if provenance[-1] is not None else None,
            )
            by_job[row[1]].append(ImageRow(*image))
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
    if related is not None and relation.field.is_cached(related):
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
