from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from core.catalog import Mode
from tenants.models import Tenant


class Price(models.Model):
    """What the provider charges per 1M tokens, per model and mode. Editable by operators."""

    tier = models.CharField(max_length=8)
    model = models.CharField(max_length=64)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    text_output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    image_output_per_million = models.DecimalField(max_digits=10, decimal_places=4)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "mode"], name="price_unique_line")]
        ordering = ["tier", "mode"]

    def __str__(self) -> str:
        return f"{self.model} ({self.mode})"


class UsageEvent(models.Model):
    """One per stored image: tokens, money, and its delivery to Stripe."""

    class StripeState(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    # No index of its own: `usage_tenant_time` starts with it.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="usage_events", db_index=False
    )
    job = models.ForeignKey(
        "generation.Job", on_delete=models.SET_NULL, null=True, related_name="usage"
    )
    image = models.OneToOneField(
        "generation.Image", on_delete=models.SET_NULL, null=True, related_name="usage"
    )
    tier = models.CharField(max_length=8)
    model = models.CharField(max_length=64)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    input_text_tokens = models.PositiveIntegerField(default=0)
    input_image_tokens = models.PositiveIntegerField(default=0)
    output_text_tokens = models.PositiveIntegerField(default=0)
    output_image_tokens = models.PositiveIntegerField(default=0)
    thoughts_tokens = models.PositiveIntegerField(default=0)
    # The price book's rates this image was priced at (USD per 1M tokens), so that its
    # tokens go to the Stripe meter of exactly that price (`billing.tokens`). Null on rows
    # stored before token meters existed; those were billed by the legacy meters.
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4, null=True)
    text_output_per_million = models.DecimalField(max_digits=10, decimal_places=4, null=True)
    image_output_per_million = models.DecimalField(max_digits=10, decimal_places=4, null=True)
    provider_cost = models.DecimalField(max_digits=14, decimal_places=9)
    markup = models.DecimalField(max_digits=14, decimal_places=9)
    billed = models.DecimalField(max_digits=14, decimal_places=9)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    quota_settled = models.BooleanField(
        default=True,
        help_text="Moved from the period's reservation to its usage. On PostgreSQL that "
        "happens in its own statement just after the image is stored (see "
        "billing.services.usage_quota_settle); the sweeper settles any left behind.",
    )
    rolled_up = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Counted in its day's UsageRollup (billing.rollups); until then totals "
        "read this row from the ledger.",
    )

    # Indexed by `usage_state_tenant_time` and `usage_stripe`, which start with it.
    stripe_state = models.CharField(
        max_length=8, choices=StripeState.choices, default=StripeState.PENDING
    )
    stripe_attempts = models.PositiveIntegerField(default=0)
    stripe_last_error = models.TextField(blank=True)
    stripe_next_attempt_at = models.DateTimeField(null=True, blank=True)
    stripe_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["tenant", "occurred_at"], name="usage_tenant_time"),
            models.Index(fields=["stripe_state", "stripe_next_attempt_at"], name="usage_stripe"),
            # Rows in a Stripe state newest first (the admin's filter: a page, not a sort of
            # every unsent row), and a tenant's unsent rows of a period (the invoice's "not
            # yet sent" count, from the index alone): one index instead of the two on the
            # state alone (its own and the LIKE one) and the one on the tenant alone.
            models.Index(
                fields=["stripe_state", "occurred_at", "tenant"], name="usage_state_tenant_time"
            ),
            models.Index(
                fields=["occurred_at"],
                condition=models.Q(quota_settled=False),
                name="usage_quota_unsettled",
            ),
            models.Index(
                fields=["tenant", "occurred_at"],
                condition=models.Q(rolled_up=False),
                name="usage_not_rolled_up",
            ),
        ]

    def __str__(self) -> str:
        return f"usage {self.pk} {self.model}/{self.mode} ${self.billed}"

    @property
    def line(self) -> str:
        """The billable line (one Stripe meter pair per line)."""
        return f"{self.tier}_{self.mode}"


class UsageRollup(models.Model):
    """The ledger summed per tenant × UTC day × tier × model × mode × the rates and markup
    the images were priced at (× requested tier and fallback reason, for images a fallback
    served), for totals and invoice lines that don't re-read a month of usage events.
    Maintained by `billing.rollups.usage_rollup_fold`: a row here holds exactly the usage
    events marked `rolled_up` for its key."""

    # An event stored before token billing has no rates; its rollup key says so with a rate
    # no price can have, because a NULL in a unique key never conflicts (the fold's upsert).
    UNRATED = Decimal(-1)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_rollups")
    day = models.DateField()
    tier = models.CharField(max_length=8)
    model = models.CharField(max_length=64)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    # Images another model served (a fallback): the tier asked for and why; both empty
    # for the images served as asked. So the usage page's fallbacks read the rollups too.
    requested_tier = models.CharField(max_length=8, blank=True, default="")
    fallback_reason = models.CharField(max_length=20, blank=True, default="")
    # The rates (USD per 1M tokens) and markup (USD per image) the images were priced at,
    # as their usage events recorded them: an invoice's token lines are per rate.
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=UNRATED)
    text_output_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=UNRATED)
    image_output_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=UNRATED)
    markup = models.DecimalField(max_digits=14, decimal_places=9, default=0)
    images = models.BigIntegerField(default=0)
    input_text_tokens = models.BigIntegerField(default=0)
    input_image_tokens = models.BigIntegerField(default=0)
    output_text_tokens = models.BigIntegerField(default=0)
    output_image_tokens = models.BigIntegerField(default=0)
    thoughts_tokens = models.BigIntegerField(default=0)
    provider_cost = models.DecimalField(max_digits=24, decimal_places=9, default=0)
    billed = models.DecimalField(max_digits=24, decimal_places=9, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "tenant",
                    "day",
                    "tier",
                    "model",
                    "mode",
                    "requested_tier",
                    "fallback_reason",
                    "input_per_million",
                    "text_output_per_million",
                    "image_output_per_million",
                    "markup",
                ],
                name="usage_rollup_key_rates",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day} {self.model}/{self.mode}: {self.images}"


class StripeWebhookEvent(models.Model):
    """Each Stripe event id is processed once; replays are acknowledged and ignored."""

    event_id = models.CharField(max_length=80, unique=True)
    event_type = models.CharField(max_length=80)
    received_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField()

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class MeterLine(models.Model):
    """Legacy: one billable line (tier × mode) as `billing_setup` set it up before token
    meters; usage from before the switch-over (`MeterSwitch`) stays on these meters.

    Two meters per line: `images` (value 1 per image, priced at 0, so the invoice shows the
    count) and `amount` (value = the billed amount in cents, priced at 1 cent per unit, so the
    invoice total equals the ledger to the cent).
    """

    line = models.CharField(max_length=32, unique=True)
    tier = models.CharField(max_length=8)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    images_event_name = models.CharField(max_length=100)
    images_meter_id = models.CharField(max_length=80)
    images_price_id = models.CharField(max_length=80)
    images_product_id = models.CharField(max_length=80)
    amount_event_name = models.CharField(max_length=100)
    amount_meter_id = models.CharField(max_length=80)
    amount_price_id = models.CharField(max_length=80)
    amount_product_id = models.CharField(max_length=80)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["line"]

    def __str__(self) -> str:
        return self.line

    @property
    def price_ids(self) -> list[str]:
        return [self.images_price_id, self.amount_price_id]


class TokenMeter(models.Model):
    """One Stripe meter and its metered price (`billing.tokens`): a kind of token of one
    line (tier × mode) at one unit price, or the per-image markup at one amount.

    Stripe prices are immutable and every price on a meter bills all of the meter's usage,
    so a new unit price (a price-book change, a plan with another markup) is a new meter
    with its own price: usage goes to the meter of the price it was billed at.
    """

    class Kind(models.TextChoices):
        INPUT = "input", "input"
        TEXT_OUTPUT = "text_output", "text output"
        IMAGE_OUTPUT = "image_output", "image output"
        MARKUP = "markup", "markup"

    event_name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tier = models.CharField(max_length=8, blank=True)
    mode = models.CharField(max_length=8, blank=True)
    unit_cents = models.DecimalField(
        max_digits=24, decimal_places=12, help_text="Cents per token (or per image)."
    )
    meter_id = models.CharField(max_length=80)
    product_id = models.CharField(max_length=80)
    price_id = models.CharField(max_length=80)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "tier", "mode", "created_at"]

    def __str__(self) -> str:
        return self.event_name


class MeterSwitch(models.Model):
    """When usage moved from the legacy meters (`MeterLine`) to token meters: usage that
    occurred before `token_meters_from` goes to the legacy meters, from it on to token
    meters, never both. Set once by `billing_setup`; one row."""

    token_meters_from = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"token meters from {self.token_meters_from.isoformat()}"
