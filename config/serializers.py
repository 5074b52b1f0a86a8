"""Input serializers that refuse what they do not know.

A typo (`aspect_ration`) or a field the operation does not take (`secret` in a webhook
PATCH) would otherwise be ignored without a word, and the request would do something
other than what its author meant. So a body with unknown fields gets a 400 naming each.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """A body serializer whose unknown fields are validation errors, at every depth."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = [name for name, field in self.fields.items() if not field.read_only]
            unknown = sorted(str(name) for name in data if name not in known)
            if unknown:
                raise serializers.ValidationError(
                    {name: [_unknown_message(name, known)] for name in unknown}
                )
        return super().to_internal_value(data)


def _unknown_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f"Unknown field.{hint} This operation takes: {', '.join(sorted(known))}."
