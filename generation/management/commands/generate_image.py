from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.pricing import price_for
from core.catalog import MODELS, get_model
from core.money import token_cost
from generation.gateway import get_provider
from generation.providers.retry import call_with_retries
from generation.providers.types import ImageRequest, ProviderError


class Command(BaseCommand):
    help = "Generate one image through the model adapter and print its usage and cost."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prompt", required=True)
        parser.add_argument("--ratio", default="1:1")
        parser.add_argument("--model", default="lite", choices=list(MODELS))
        parser.add_argument("--size", default="1K")
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args: Any, **opts: Any) -> None:
        spec = get_model(opts["model"])
        request = ImageRequest(
            tier=spec.tier,
            prompt=opts["prompt"],
            aspect_ratio=opts["ratio"],
            image_size=opts["size"],
        )
        provider = get_provider()
        try:
            result, attempts = call_with_retries(
                lambda: provider.generate(request), attempts=3, base_delay=1.0, max_delay=10.0
            )
        except ProviderError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        image = result.images[0]
        opts["out"].write_bytes(image.data)
        usage = result.usage
        price = price_for(model=spec.model_id, mode="standard")
        image_cost = token_cost(usage.output_image_tokens, price.image_output_per_million)
        input_cost = token_cost(
            usage.input_text_tokens + usage.input_image_tokens, price.input_per_million
        )
        text_cost = token_cost(
            usage.output_text_tokens + usage.thoughts_tokens, price.text_output_per_million
        )
        self.stdout.write(
            f"Wrote {opts['out']} ({image.width}×{image.height} {image.mime_type}, "
            f"{len(image.data):,} bytes) from {result.model_version} in {attempts} attempt(s)."
        )
        self.stdout.write(
            f"Usage: {usage.output_image_tokens:,} image tokens, "
            f"{usage.input_text_tokens + usage.input_image_tokens:,} input tokens, "
            f"{usage.output_text_tokens + usage.thoughts_tokens:,} text/thinking tokens."
        )
        self.stdout.write(
            f"Cost: image ${image_cost.normalize():f} + input ${input_cost.normalize():f}"
            f" + text ${text_cost.normalize():f} = ${(image_cost + input_cost + text_cost):f}"
        )
