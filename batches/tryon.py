"""Try-on batches from a template × rows: a catalogue of one product on N models, or N
products on one model. Each item's input images are its product, then its person; a row
names either in its `product_image` / `model_image` column, or the batch names one for
every row."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from generation.services import InvalidRequest

IMAGE_COLUMNS = ("product_image", "model_image")


def _image_id(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def tryon_rows(
    rows: Sequence[Any], *, product: uuid.UUID | None, model: uuid.UUID | None
) -> tuple[list[Any], list[tuple[uuid.UUID, uuid.UUID]]]:
    """The rows without their image columns (the template's variables only), and each
    row's (product, person) images; a 400 names every row that lacks one."""
    cleaned: list[Any] = []
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    problems: dict[str, list[str]] = {}
    for i, row in enumerate(rows or [{}]):
        if not isinstance(row, Mapping):
            cleaned.append(row)  # the template's own check names it
            continue
        values = {k: v for k, v in row.items() if k not in IMAGE_COLUMNS}
        chosen = []
        for column, default in zip(IMAGE_COLUMNS, (product, model), strict=True):
            given = row.get(column)
            image = _image_id(given) if given else default
            if image is None:
                problems.setdefault(f"rows[{i}]", []).append(
                    f"{column} must be an image id (in the row, or `{column}` for every row)."
                )
            chosen.append(image)
        cleaned.append(values)
        if chosen[0] is not None and chosen[1] is not None:
            pairs.append((chosen[0], chosen[1]))
    if problems:
        raise InvalidRequest(
            "A try-on item needs a product image and a model image: "
            + "; ".join(f"{where}: {' '.join(m)}" for where, m in problems.items()),
            code="tryon_needs_images",
            fields=problems,
        )
    return cleaned, pairs
