"""Named writes of stored images: uploads checked and kept, generated images built, and
thumbnails made on first request."""

from __future__ import annotations

import hashlib
import io
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from typing import IO

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from config.errors import NotFound
from generation.image_header import declared_size
from generation.models import Image, Job, Provenance, thumbnail_upload_to
from generation.provenance import Credentials, credentials_read
from generation.services import InvalidRequest
from tenants.models import Tenant

MAX_UPLOAD_BYTES = 7 * 1024 * 1024
MAX_UPLOAD_SIDE = 4096
UPLOAD_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class CheckedImage:
    mime_type: str
    width: int
    height: int


def image_size_check(size: int) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise InvalidRequest(
            f"The image is {size / 1_048_576:.1f} MB; the limit is 7 MB.", code="image_too_large"
        )


def image_check(data: bytes) -> CheckedImage:
    """A real PNG, JPEG or WebP within the size limits, or a 400 that says what is wrong."""
    image_size_check(len(data))
    declared = declared_size(data)
    if declared is not None:  # refused on what the header claims, before Pillow opens it
        _dimensions_check(*declared)
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            _dimensions_check(width, height)
            img.verify()
    except PILImage.DecompressionBombError:
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidRequest(
            "The file is not a readable image; upload a PNG, JPEG or WebP.",
            code="invalid_image",
        ) from None
    if fmt not in UPLOAD_FORMATS:
        raise InvalidRequest(
            f"{fmt or 'This'} images are not accepted; upload a PNG, JPEG or WebP.",
            code="unsupported_image_type",
        )
    return CheckedImage(mime_type=UPLOAD_FORMATS[fmt], width=width, height=height)


def _too_many_pixels(width: int | None = None, height: int | None = None) -> InvalidRequest:
    size = f"{width}×{height}" if width is not None else "larger than allowed"
    return InvalidRequest(
        f"The image is {size}; at most {MAX_UPLOAD_SIDE} pixels a side.",
        code="image_dimensions_too_large",
    )


def _dimensions_check(width: int, height: int) -> None:
    if max(width, height) > MAX_UPLOAD_SIDE:
        raise _too_many_pixels(width, height)


def thumbnail_bytes(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as source:
        source.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # cheap downscale for JPEG
        thumb = source.convert("RGB")
    if max(thumb.size) > THUMBNAIL_SIDE * 4:
        thumb = thumb.reduce(max(1, max(thumb.size) // (THUMBNAIL_SIDE * 2)))
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=72, method=0)
    return out.getvalue()


def image_build(
    *,
    tenant_id: int,
    data: bytes,
    mime_type: str,
    width: int,
    height: int,
    source: str,
    job: Job | None = None,
    index: int | None = None,
    parent_id: uuid.UUID | None = None,
) -> Image:
    """An unsaved Image with its file written through Django's storage.

    The bytes are stored exactly as given (SynthID and C2PA credentials intact), and their
    Content Credentials are read and verified once, here (2–5 ms for a 1.5 MB PNG; this
    runs on the runner's thread pool), to be saved with the image (`provenance_save`).
    The thumbnail is not made here but on first request (`image_thumbnail`).
    """
    image = Image(
        tenant_id=tenant_id,
        job=job,
        index=index,
        source=source,
        parent_id=parent_id,
        mime_type=mime_type,
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    image.file.save("original", ContentFile(data), save=False)
    image.read_credentials = credentials_read(data, mime_type)
    return image


def provenance_save(image: Image) -> Provenance | None:
    """Save the credentials `image_build` read as the saved image's `Provenance` row."""
    found = image.read_credentials
    if found is None:
        return None
    return Provenance.objects.create(image=image, **provenance_fields(found))


def provenance_fields(found: Credentials) -> dict[str, object]:
    return {
        "state": found.state,
        "ai_generated": found.ai_generated,
        "signer": found.signer,
        "issuer": found.issuer,
        "generator": found.generator,
        "signed_at": found.signed_at,
        "digital_source_type": found.digital_source_type,
        "actions": found.actions,
        "validation_codes": found.validation_codes,
        "manifest": found.manifest,
    }


def provenance_check(*, image: Image) -> Provenance:
    """Read (again) the stored bytes' credentials and keep the result: for images stored
    before reading existed, or after the trust list changed (`manage.py
    provenance_check`)."""
    with image.file.open("rb") as fh:
        found = credentials_read(fh.read(), image.mime_type)
    row, _ = Provenance.objects.update_or_create(
        image=image, defaults={**provenance_fields(found), "checked_at": timezone.now()}
    )
    return row


def image_thumbnail(image: Image) -> FieldFile:
    """The image's WebP thumbnail, open for reading: made from the original on first
    request and stored.

    Lazy rather than made when the image is stored: decoding the PNG is more than half of
    a worker's CPU per generated image (docs/performance.md), and most API users never
    view thumbnails. Two first requests may both make one; the conditional update keeps
    the first stored and the other removes its own file and serves that one.
    """
    seen = image.thumbnail.name or ""
    if seen and default_storage.exists(seen):
        return image.thumbnail.open("rb")
    with image.file.open("rb") as original:
        data = thumbnail_bytes(original.read())
    name = default_storage.save(thumbnail_upload_to(image, "thumb"), ContentFile(data))
    # Compared with the name read, not "", so that a stored name whose file is gone is
    # replaced too.
    if not Image.objects.filter(pk=image.pk, thumbnail=seen).update(thumbnail=name):
        winner = Image.objects.filter(pk=image.pk).values_list("thumbnail", flat=True).first()
        if winner != name:
            default_storage.delete(name)
        if not winner:
            raise NotFound("No such image.")
        name = winner
    image.thumbnail.name = name
    return image.thumbnail.open("rb")


def image_upload(*, tenant: Tenant, data: bytes) -> Image:
    checked = image_check(data)
    image = image_build(
        tenant_id=tenant.pk,
        data=data,
        mime_type=checked.mime_type,
        width=checked.width,
        height=checked.height,
        source=Image.Source.UPLOAD,
    )
    with transaction.atomic():
        image.save()
        provenance_save(image)
    return image


MAX_ZIP_IMAGES = 500
ZIP_SUFFIX = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def images_zip(images: list[Image], out: IO[bytes]) -> None:
    """A zip of the images' bytes as stored (PNGs do not compress further: stored, not
    deflated), named by creation time and id so that names sort and never collide."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for image in images:
            suffix = ZIP_SUFFIX.get(image.mime_type, "bin")
            name = f"{image.created_at:%Y%m%d-%H%M%S}-{image.pk}.{suffix}"
            with image.file.open("rb") as source, archive.open(name, "w") as target:
                shutil.copyfileobj(source, target)
