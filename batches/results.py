"""A batch's results as a CSV manifest and as a zip of images with that manifest."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from django.utils.text import slugify

from batches.models import Batch
from batches.selectors import batch_items
from core.money import usd
from generation.models import Image

COLUMNS = [
    "item_index",
    "label",
    "locale",
    "job_id",
    "status",
    "prompt",
    "image_index",
    "image_id",
    "file",
    "width",
    "height",
    "billed",
    "provenance",
    "error_code",
    "error_message",
]
SUFFIX = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def image_filename(item_index: int, label: str, image: Image) -> str:
    stem = f"{item_index:05d}" + (f"-{slugify(label)}" if slugify(label) else "")
    return f"images/{stem}-{image.index}.{SUFFIX.get(image.mime_type, 'bin')}"


def manifest(batch: Batch) -> Iterator[tuple[dict[str, Any], Image | None]]:
    """One row per image (or per item that made none), with the image to pack."""
    for item in batch_items(batch).iterator(chunk_size=500):
        job = item.job
        base = {
            "item_index": item.index,
            "label": item.label,
            "locale": item.locale,
            "job_id": str(job.pk),
            "status": job.status,
            "prompt": job.prompt,
            "error_code": job.error_code,
            "error_message": job.error_message,
        }
        images = list(job.images.all())
        if not images:
            yield base, None
        for image in images:
            usage = getattr(image, "usage", None)
            provenance = getattr(image, "provenance", None)
            yield (
                {
                    **base,
                    "image_index": image.index,
                    "image_id": str(image.pk),
                    "file": image_filename(item.index, item.label, image),
                    "width": image.width,
                    "height": image.height,
                    "billed": usd(usage.billed, 9) if usage is not None else "",
                    "provenance": provenance.state if provenance is not None else "",
                },
                image,
            )


def write_csv(batch: Batch, out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row, _ in manifest(batch):
        writer.writerow(row)


def write_zip(batch: Batch, out: IO[bytes]) -> None:
    """Images are stored as they came (PNGs do not compress further), plus manifest.csv."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for row, image in manifest(batch):
            writer.writerow(row)
            if image is not None:
                with image.file.open("rb") as source, archive.open(row["file"], "w") as target:
                    shutil.copyfileobj(source, target)
        archive.writestr("manifest.csv", text.getvalue())
