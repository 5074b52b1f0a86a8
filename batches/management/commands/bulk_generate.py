"""`manage.py bulk_generate --tenant acme --csv prompts.csv [--template ID]
[--mode batch|realtime] [--out DIR]`: one batch from a CSV, with a live progress bar.

Without a template the CSV needs a `prompt` column (optional: key, label, kind,
aspect_ratio, count, model); with one, every column but `key` is a template variable.
Re-running the same command resumes: finished rows are skipped, nothing is made twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from batches import bulk
from batches.models import BATCH, REALTIME
from batches.selectors import template_get_for_tenant
from config.errors import BunchError
from core.catalog import ALL_RATIOS, MODELS
from generation.models import Kind
from generation.services import JobParams
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Generate one image set per CSV row, in batch (half price) or realtime mode."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--csv", required=True, type=Path)
        parser.add_argument("--template", help="Prompt template id; CSV columns are variables.")
        parser.add_argument("--mode", choices=[BATCH, REALTIME], default=BATCH)
        parser.add_argument("--out", type=Path, help="Output folder (default: <csv>-out).")
        parser.add_argument("--kind", choices=Kind.values, default=Kind.IMAGE)
        parser.add_argument("--aspect-ratio", choices=ALL_RATIOS)
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--model", choices=list(MODELS), default="lite")
        parser.add_argument("--poll-interval", type=float, default=5.0)
        parser.add_argument(
            "--timeout", type=float, help="Leave after S seconds; re-run to resume."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).select_related("plan").first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        csv_path: Path = options["csv"]
        if not csv_path.exists():
            raise CommandError(f"{csv_path} does not exist.")
        out_dir = options["out"] or csv_path.with_name(f"{csv_path.stem}-out")
        defaults = JobParams(
            prompt="",
            kind=options["kind"],
            aspect_ratio=options["aspect_ratio"],
            count=options["count"],
            tier=options["model"],
        )
        bar = tqdm(total=0, unit="row", desc=options["mode"], file=self.stderr._out)

        def show(progress: bulk.Progress) -> None:
            bar.total = progress.total
            bar.n = progress.done
            bar.set_postfix(waiting=progress.total - progress.done, refresh=False)
            bar.refresh()

        try:
            template = (
                template_get_for_tenant(tenant, options["template"])
                if options["template"]
                else None
            )
            finished, results = bulk.run(
                tenant=tenant,
                csv_path=csv_path,
                out_dir=out_dir,
                mode=options["mode"],
                template=template,
                defaults=defaults,
                poll_interval=options["poll_interval"],
                timeout=options["timeout"],
                on_progress=show,
            )
        except BunchError as error:
            raise CommandError(f"{error.message} {error.fields or ''}".strip()) from None
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted. Nothing is lost: re-run the same command to resume."
            ) from None
        finally:
            bar.close()
        if not finished:
            self.stdout.write(f"Still running; re-run the same command to resume. {results}")
            return
        self.stdout.write(self.style.SUCCESS(f"Done: {results}"))
