"""A batch put together in the dashboard: rows in (source), every item checked and priced
(check), submitted once (submit).

The check renders every row × locale, names what is wrong with each bad row, and prices the
good items in both modes with the same estimate that reserves quota, so the price shown is
the price reserved.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from batches import prompts, rows
from batches.models import BATCH, MAX_ITEMS, REALTIME, Batch, BatchDraft, PromptTemplate
from batches.services import ItemSpec, batch_submit
from billing.pricing import estimate_image_cost
from config.errors import BunchError, Conflict
from core.catalog import Mode
from core.money import from_nanos, to_nanos
from generation.models import Image, Kind
from generation.presets import model_prompt
from generation.services import InvalidRequest, JobParams, job_params_check
from tenants.models import Tenant
from tenants.selectors import quota_snapshot

PREVIEW_ITEMS = 50
DRAFT_TTL = dt.timedelta(days=7)
# Columns that say how an item is made rather than fill a template variable.
ITEM_COLUMNS = ("label", "key", "id", "aspect_ratio", "count")
IMAGE_COLUMN = "image"
SHAPE = "__problem"  # a row's shape problem, kept with the row until it is fixed
IMAGE_SEPARATORS = re.compile(r"[\s|,;]+")


@dataclass
class CheckedItem:
    row: int  # index into the draft's rows
    locale: str
    prompt: str
    errors: list[str]
    spec: ItemSpec | None = None


@dataclass(frozen=True)
class Price:
    mode: str
    images: int
    total: Decimal

    @property
    def per_image(self) -> Decimal:
        return self.total / self.images if self.images else Decimal(0)


@dataclass
class Check:
    items: list[CheckedItem]
    rows: int
    bad_rows: list[int]
    prices: dict[str, Price] = field(default_factory=dict)
    quota: dict[str, Any] = field(default_factory=dict)

    @property
    def good_items(self) -> list[CheckedItem]:
        return [item for item in self.items if not item.errors]

    @property
    def bad_items(self) -> list[CheckedItem]:
        return [item for item in self.items if item.errors]

    @property
    def good_rows(self) -> int:
        return self.rows - len(self.bad_rows)

    @property
    def images(self) -> int:
        return sum(item.spec.params.count for item in self.good_items if item.spec)


# Check ------------------------------------------------------------------------------------


def _template_locales(draft: BatchDraft) -> list[dict[str, str]]:
    entries = draft.template.locales if draft.template else []
    chosen = [e for e in entries if e.get("locale") in draft.locales]
    return chosen or [{}]


def _count(row: Mapping[str, str], errors: list[str]) -> int:
    raw = (row.get("count") or "").strip()
    if not raw:
        return 1
    if not raw.isdigit():
        errors.append(f"count {raw!r} is not a whole number.")
        return 1
    return int(raw)


def _image_ids(row: Mapping[str, str], known: set[str], errors: list[str]) -> tuple[uuid.UUID, ...]:
    ids: list[uuid.UUID] = []
    for token in IMAGE_SEPARATORS.split(row.get(IMAGE_COLUMN) or ""):
        if not token:
            continue
        try:
            image_id = uuid.UUID(token)
        except ValueError:
            errors.append(f"{token!r} is not an image id.")
            continue
        if str(image_id) not in known:
            errors.append(f"No image {token} in this workspace.")
        ids.append(image_id)
    return tuple(ids)


def _template_prompts(
    draft: BatchDraft, row: Mapping[str, str]
) -> list[tuple[str, str, list[str]]]:
    """(locale, prompt, errors) per chosen locale of one row."""
    template = draft.template
    assert template is not None
    names = prompts.variables(template.text)
    given = {k: v for k, v in row.items() if k not in ITEM_COLUMNS and k != SHAPE}
    unknown = sorted(k for k, v in given.items() if k not in names and v.strip())
    out = []
    for entry in _template_locales(draft):
        overrides = {k: v for k, v in entry.items() if k != "locale" or "locale" in names}
        values = {
            **{k: str(v) for k, v in template.defaults.items()},
            **{k: v for k, v in given.items() if k in names and v.strip()},
            **overrides,
        }
        errors = []
        if unknown:
            errors.append(f"Unknown variable(s): {', '.join(unknown)} (not in the template).")
        missing = prompts.missing_for(template.text, values)
        if missing:
            errors.append(f"Missing variable(s): {', '.join(missing)}.")
        shown = {n: values[n] if n not in missing else "{" + n + "}" for n in names}
        out.append((entry.get("locale", ""), prompts.render(template.text, shown), errors))
    return out


def _item(
    draft: BatchDraft,
    tenant: Tenant,
    index: int,
    row: Mapping[str, str],
    locale: str,
    prompt: str,
    errors: list[str],
    images: tuple[uuid.UUID, ...],
) -> CheckedItem:
    count = _count(row, errors)
    kind = draft.kind or (draft.template.kind if draft.template else Kind.IMAGE)
    ratio = (row.get("aspect_ratio") or "").strip() or draft.aspect_ratio
    if not ratio and draft.template:
        ratio = draft.template.aspect_ratio
    params = JobParams(
        prompt=prompt,
        kind=kind,
        aspect_ratio=ratio or None,
        count=count,
        tier=draft.model,
        input_image_ids=images,
        metadata={"locale": locale} if locale else {},
    )
    if not any(e.startswith("count") for e in errors):
        try:
            job_params_check(tenant, params)
        except BunchError as error:
            errors.extend(m for ms in (error.fields or {"": [error.message]}).values() for m in ms)
    label = (row.get("label") or row.get("key") or row.get("id") or "").strip() or locale
    spec = None if errors else ItemSpec(params=params, label=label[:200], locale=locale)
    return CheckedItem(row=index, locale=locale, prompt=prompt, errors=errors, spec=spec)


def _known_images(tenant: Tenant, draft: BatchDraft) -> set[str]:
    if draft.source != BatchDraft.Source.IMAGES:
        return set()
    wanted: set[uuid.UUID] = set()
    for row in draft.rows:
        for token in IMAGE_SEPARATORS.split(row.get(IMAGE_COLUMN) or ""):
            with contextlib.suppress(ValueError):
                wanted.add(uuid.UUID(token))
    found = Image.objects.filter(tenant=tenant, pk__in=wanted).values_list("pk", flat=True)
    return {str(pk) for pk in found}


def draft_check(*, draft: BatchDraft) -> Check:
    """Every row × locale rendered and checked as a job would be, and the good ones priced."""
    tenant = draft.tenant
    known = _known_images(tenant, draft)
    items: list[CheckedItem] = []
    bad: list[int] = []
    for index, row in enumerate(draft.rows):
        shape = [f"The row {row[SHAPE]}."] if row.get(SHAPE) else []
        images: tuple[uuid.UUID, ...] = ()
        image_errors: list[str] = []
        if draft.source == BatchDraft.Source.IMAGES:
            images = _image_ids(row, known, image_errors)
            if not images:
                image_errors.append("No reference image: put an image id in the image column.")
        if draft.source == BatchDraft.Source.TEMPLATE:
            rendered = _template_prompts(draft, row)
        else:
            rendered = [("", row.get("prompt") or "", [])]
        row_items = [
            _item(draft, tenant, index, row, locale, prompt, shape + image_errors + errors, images)
            for locale, prompt, errors in rendered
        ]
        if any(item.errors for item in row_items):
            bad.append(index)
        items += row_items
    check = Check(items=items, rows=len(draft.rows), bad_rows=bad)
    check.prices = _prices(tenant, draft, check)
    check.quota = _quota_after(tenant, check)
    return check


def _prices(tenant: Tenant, draft: BatchDraft, check: Check) -> dict[str, Price]:
    """What the good items cost in each mode: the estimate that quota is reserved with."""
    out = {}
    for mode, job_mode in ((BATCH, Mode.BATCH), (REALTIME, Mode.STANDARD)):
        nanos = 0
        for item in check.good_items:
            assert item.spec is not None
            params = item.spec.params
            cost = estimate_image_cost(
                tier=params.tier,
                mode=job_mode,
                image_size=params.image_size,
                prompt=model_prompt(params.kind, params.prompt),
                input_images=len(params.input_image_ids),
                markup=tenant.plan.markup_per_image,
            )
            nanos += to_nanos(cost.billed) * params.count
        out[mode] = Price(mode=mode, images=check.images, total=from_nanos(nanos))
    return out


def _quota_after(tenant: Tenant, check: Check) -> dict[str, Any]:
    snapshot = quota_snapshot(tenant)
    images_left = int(snapshot["images"]["remaining"])  # type: ignore[index]
    spend_left = Decimal(snapshot["spend"]["remaining"])  # type: ignore[index]
    return {
        "images_left": images_left,
        "images_after": images_left - check.images,
        "spend_left": spend_left,
        "spend_after": {mode: spend_left - p.total for mode, p in check.prices.items()},
        "batch_allowed": tenant.plan.batch_allowed,
    }


# Writes ----------------------------------------------------------------------------------


def _sheet_for(source: str, text: str) -> rows.Sheet:
    try:
        sheet = rows.read(text)
    except rows.RowsError as error:
        raise InvalidRequest(
            error.message, code=error.code, fields={"rows": [error.message]}
        ) from None
    if source == BatchDraft.Source.PROMPTS and "prompt" not in sheet.columns:
        if len(sheet.columns) != 1:
            raise InvalidRequest(
                "One prompt per row needs a column named prompt.", code="csv_no_prompt_column"
            )
        # A bare list of prompts: the "header" is the first prompt.
        first = sheet.columns[0]
        sheet = rows.Sheet(
            columns=["prompt"],
            rows=[{"prompt": first}] + [{"prompt": r[first]} for r in sheet.rows],
        )
    if source == BatchDraft.Source.IMAGES and IMAGE_COLUMN not in sheet.columns:
        raise InvalidRequest(
            "Reference images per row need a column named image (image ids) and a prompt.",
            code="csv_no_image_column",
        )
    for index, problem in sheet.problems.items():
        sheet.rows[index][SHAPE] = problem
    return sheet


@transaction.atomic
def draft_create(
    *,
    tenant: Tenant,
    user: User | None,
    source: str,
    text: str,
    template: PromptTemplate | None = None,
    locales: Sequence[str] = (),
    model: str = "lite",
    aspect_ratio: str = "",
    kind: str = "",
    now: dt.datetime | None = None,
) -> BatchDraft:
    """Read the rows and keep them as a draft; refuse what cannot become a batch at all."""
    now = now or timezone.now()
    if source not in BatchDraft.Source.values:
        raise InvalidRequest(f"Unknown source {source!r}.", code="invalid_request")
    if source == BatchDraft.Source.TEMPLATE and template is None:
        raise InvalidRequest("Choose a template.", code="invalid_request")
    if template is not None and source == BatchDraft.Source.TEMPLATE:
        unknown = [code for code in locales if code not in template.locale_codes]
        if unknown:
            raise InvalidRequest(
                f"The template has no locale {', '.join(unknown)}.", code="invalid_request"
            )
        model = model or template.model
    sheet = _sheet_for(source, text)
    total = len(sheet.rows) * max(len(locales), 1)
    if total > MAX_ITEMS:
        raise InvalidRequest(
            f"{len(sheet.rows):,} rows × {len(locales)} locales makes {total:,} items; a batch "
            f"holds at most {MAX_ITEMS:,}. Choose fewer locales or split the file.",
            code="batch_too_large",
        )
    BatchDraft.objects.filter(tenant=tenant, created_at__lt=now - DRAFT_TTL).delete()
    return BatchDraft.objects.create(
        tenant=tenant,
        created_by=user,
        source=source,
        template=template if source == BatchDraft.Source.TEMPLATE else None,
        locales=list(locales) if source == BatchDraft.Source.TEMPLATE else [],
        kind=kind,
        model=model or "lite",
        aspect_ratio=aspect_ratio,
        columns=sheet.columns,
        rows=sheet.rows,
        created_at=now,
    )


@transaction.atomic
def draft_fix(*, draft: BatchDraft, fixes: Mapping[int, Mapping[str, str]]) -> BatchDraft:
    """Replace cells of some rows (row index → column → new value)."""
    if draft.submitted_at is not None:
        raise Conflict("This batch was submitted already.", code="draft_submitted")
    for index, cells in fixes.items():
        if not 0 <= index < len(draft.rows):
            continue
        row = dict(draft.rows[index])
        row.pop(SHAPE, None)
        row.update({k: v for k, v in cells.items() if k in draft.columns})
        draft.rows[index] = row
    draft.save(update_fields=["rows"])
    return draft


def draft_submit(
    *,
    draft: BatchDraft,
    mode: str,
    name: str,
    skip_bad: bool,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> Batch:
    """Submit the draft's good items as one batch, once: a second submit (a double click,
    a re-sent form) gets the same batch."""
    if mode not in (BATCH, REALTIME):
        raise InvalidRequest(f"Unknown mode {mode!r}.", code="invalid_request")
    now = now or timezone.now()
    with transaction.atomic():
        # The claim: a concurrent second submit waits here for the first to commit, then
        # finds the draft taken and returns the first one's batch.
        claimed = BatchDraft.objects.filter(pk=draft.pk, submitted_at__isnull=True).update(
            submitted_at=now
        )
        if not claimed:
            batch = Batch.objects.filter(draft__pk=draft.pk).first()
            if batch is None:
                raise Conflict("This batch is being submitted; reload in a moment.")
            return batch
        draft.refresh_from_db()
        check = draft_check(draft=draft)
        if check.bad_rows and not skip_bad:
            raise InvalidRequest(
                f"{len(check.bad_rows)} row(s) have errors: fix them, or choose to skip them.",
                code="bad_rows",
            )
        good = [item.spec for item in check.good_items if item.spec is not None]
        if not good:
            raise InvalidRequest("No row is ready to submit.", code="invalid_items")
        batch = batch_submit(
            tenant=draft.tenant,
            items=good,
            mode=mode,
            name=name.strip()[:200],
            template=draft.template,
            metadata={"skipped_rows": len(check.bad_rows)} if check.bad_rows else {},
            user=user,
            now=now,
        )
        BatchDraft.objects.filter(pk=draft.pk).update(batch=batch)
    return batch
