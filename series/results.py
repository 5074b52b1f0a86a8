"""A series' results: each frame's current image, in frame order, with a manifest."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from typing import IO

from series.models import Series
from series.selectors import frame_versions

COLUMNS = ["frame", "version", "status", "prompt", "job_id", "image_id", "file", "width", "height"]
SUFFIX = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def write_zip(series: Series, out: IO[bytes]) -> None:
    """`frames/000.png`, `frames/001.png`… (the newest version that made an image), stored
    as they came, and manifest.csv with one row per frame (a frame without an image too)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for frame, versions in frame_versions(series):
            row: dict[str, object] = {"frame": frame.index, "prompt": frame.prompt}
            made = [(v, list(v.job.images.all())) for v in versions if v.job.status == "succeeded"]
            made = [(v, images) for v, images in made if images]
            if not made:
                latest = versions[-1] if versions else None
                row["status"] = latest.job.status if latest else "not started"
                writer.writerow(row)
                continue
            version, images = made[-1]
            image = images[0]
            name = f"frames/{frame.index:03d}.{SUFFIX.get(image.mime_type, 'bin')}"
            row.update(
                version=version.number,
                status="succeeded",
                job_id=str(version.job_id),
                image_id=str(image.pk),
                file=name,
                width=image.width,
                height=image.height,
            )
            writer.writerow(row)
            with image.file.open("rb") as source, archive.open(name, "w") as target:
                shutil.copyfileobj(source, target)
        archive.writestr("manifest.csv", text.getvalue())
