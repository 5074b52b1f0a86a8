"""Set-based seeding for `bench.reads`: millions of jobs, images, usage events, batches,
batch items and webhook deliveries on PostgreSQL, in `INSERT … SELECT` statements over
`generate_series`, with deterministic ids (`md5('job' || g)::uuid`).

Row g (1 … total) belongs to the big tenant for g ≤ `rows`, else to small tenant
(g - rows - 1) mod #small; `n` is the row's number within its tenant, and its timestamp
is spread evenly over the current calendar month by n. Every tenth of a tenant's jobs is
a batch-mode job, in batches of 100 (a batch per 1,000 jobs; the big tenant has at least
50 of 100 items, a page of pages, so below 500,000 rows more of its jobs are in batch
mode); one standard job in 997 was
served by a fallback (asked for flash, served by lite, primary throttled); every job has
a webhook delivery to its tenant's endpoint. The rare search word is in 100 of the big
tenant's prompts at every size (`RARE_COUNT`), and one usage event in 1,000 is not yet
sent to Stripe (at least 100: an admin page). Usage events record the rates they were
priced at (lite's list prices, halved in batch mode), as the store path does, so the
invoice has token lines.

A fresh seed drops the tables' secondary indexes first and builds them again at the end
(one sort each instead of 10M random inserts, and the trigram index in one pass), with
foreign-key triggers off (`session_replication_role = replica`: the rows are consistent
by construction). The usage events are written already folded (`rolled_up`) and their
rollups added from the same rows, chunk by chunk: what the fold would write, without
updating every event once more (`usage_rollup_mismatches` checks it).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

CHUNK = 500_000
TABLES = (
    "generation_job",
    "generation_image",
    "billing_usageevent",
    "batches_batch",
    "batches_batchitem",
    "webhooks_webhookdelivery",
)

ADJECTIVES = (
    "red blue golden vintage minimal neon pastel rustic modern retro bold soft dark bright "
    "playful elegant"
)
SUBJECTS = (
    "cat,fox,lighthouse,mountain,coffee cup,sneaker,city skyline,robot,bicycle,sailboat,"
    "forest,owl,teapot,guitar,rocket,desk lamp,dragon,castle,bakery,garden"
)
BACKDROPS = "white,black,gradient,marble,wooden,sky blue,sunset,concrete"
STYLES = "studio photo,flat vector,watercolor,3d render,pencil sketch,oil painting,pixel art"
# In RARE_COUNT of the big tenant's prompts whatever its size (a page of results at every
# size, so that 10k and 10M rows compare the search, not the result's size), and one in
# RARE_EVERY of the small tenants'.
RARE_WORD = "zebra"
RARE_COUNT = 100
RARE_EVERY = 5_000
# The big tenant's batches: one per 1,000 jobs, but at least a page of them (50).
BATCH_SPAN = 1_000
MIN_BATCHES = 50
COMMON_WORD = "lighthouse"  # one subject in twenty
FALLBACK_EVERY = 997


def month_of(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def _word(array: str, index_sql: str, sep: str = ",") -> str:
    items = ",".join("'" + w.strip() + "'" for w in array.split(sep))
    return f"(ARRAY[{items}])[1 + ({index_sql})]"


def _escape(sql: str) -> str:
    """The SQL's modulo signs, doubled for the driver's %(name)s parameters."""
    return sql.replace("%(", "\0").replace("%", "%%").replace("\0", "%(")


def _statements(
    *, tenant_id: int, rows: int, smalls: int, small_rows: int, span_us: int
) -> list[str]:
    n_adj, n_sub = len(ADJECTIVES.split()), len(SUBJECTS.split(","))
    n_bg, n_style = len(BACKDROPS.split(",")), len(STYLES.split(","))
    prompt = (
        "'a ' || "
        + _word(ADJECTIVES, f"g % {n_adj}", sep=" ")
        + " || ' ' || "
        + _word(SUBJECTS, f"(g / {n_adj}) % {n_sub}")
        + " || ' on a ' || "
        + _word(BACKDROPS, f"(g / 7) % {n_bg}")
        + " || ' background, ' || "
        + _word(STYLES, f"(g / 3) % {n_style}")
        + f" || CASE WHEN (g <= {rows} AND g % {max(rows // RARE_COUNT, 1)} = 0)"
        + f" OR (g > {rows} AND g % {RARE_EVERY} = 0) THEN ' with a {RARE_WORD}' ELSE '' END"
    )
    big_step = span_us // max(rows, 1)
    # The big tenant: every tenth job in batch mode and 100 items a batch, but at least a
    # page of batches (50) of a page of items (100) each: below 500,000 rows more of its
    # jobs are in batch mode (every second at 10,000) and its batches span fewer jobs.
    big_span = max(min(BATCH_SPAN, rows // MIN_BATCHES), 1)
    big_every = max(min(10, rows // (MIN_BATCHES * 100)), 1)
    # One usage event in 1,000 not yet sent to Stripe, but at least an admin page (100).
    pending_every = max(min(1000, (rows + smalls * small_rows) // 100), 1)
    small_step = span_us // max(small_rows, 1)
    # s: one row per g with its tenant t, its number n in the tenant, its time ts, whether
    # it is a batch-mode job (b) and whether a fallback served it (fb).
    rows_sql = f"""(SELECT g, t, n, ts, b, (NOT b AND g % {FALLBACK_EVERY} = 0) AS fb,
            CASE WHEN b THEN md5('batch' || t || '-' || n / (CASE WHEN g <= {rows}
                THEN {big_span} ELSE {BATCH_SPAN} END))::uuid END AS batch_id
        FROM (SELECT g, t, n, n % (CASE WHEN g <= {rows} THEN {big_every} ELSE 10 END) = 0 AS b,
                %(start)s::timestamptz + n::bigint * (CASE WHEN g <= {rows} THEN {big_step}
                    ELSE {small_step} END) * interval '1 us' AS ts
            FROM (SELECT g,
                    CASE WHEN g <= {rows} THEN {tenant_id}::bigint
                        ELSE (%(small)s::bigint[])[1 + (g - {rows} - 1) % {smalls}] END AS t,
                    CASE WHEN g <= {rows} THEN g - 1 ELSE (g - {rows} - 1) / {smalls} END AS n
                FROM generate_series(%(lo)s, %(hi)s) g) a) c) s"""
    # Lite: 1,120 image tokens at $30/1M plus the prompt's tokens at $0.25/1M; batch half.
    provider = (
        "CASE WHEN b THEN 0.0168 + (10 + g % 50) * 0.000000125 "
        "ELSE 0.0336 + (10 + g % 50) * 0.00000025 END"
    )
    usage = f"""SELECT t AS tenant_id, md5('job' || g)::uuid AS job_id,
            md5('img' || g)::uuid AS image_id, 'lite' AS tier,
            'gemini-3.1-flash-lite-image' AS model,
            CASE WHEN b THEN 'batch' ELSE 'standard' END AS mode,
            CASE WHEN fb THEN 'flash' ELSE '' END AS requested_tier,
            CASE WHEN fb THEN 'primary_throttled' ELSE '' END AS fallback_reason,
            10 + g % 50 AS input_text_tokens, 1120 AS output_image_tokens,
            {provider} AS provider_cost, 0.01 AS markup, {provider} + 0.01 AS billed,
            CASE WHEN b THEN 0.125 ELSE 0.25 END AS input_per_million,
            CASE WHEN b THEN 0.75 ELSE 1.5 END AS text_output_per_million,
            CASE WHEN b THEN 15 ELSE 30 END AS image_output_per_million,
            ts + interval '4 seconds' AS occurred_at,
            CASE WHEN g % {pending_every} = 0 THEN 'pending' ELSE 'sent' END AS stripe_state
        FROM {rows_sql}"""
    return [
        f"""INSERT INTO generation_job (id, tenant_id, kind, prompt, model_prompt, aspect_ratio,
            image_size, tier, mode, count, input_image_ids, metadata, status, cancel_requested,
            error_code, error_message, attempts, estimated_cost, reserved_images, reserved_nanos,
            deferrals, priority, requested_tier, fallback_reason, batch_id,
            created_at, started_at, finished_at)
        SELECT md5('job' || g)::uuid, t, 'image', {prompt}, {prompt}, '1:1', '1K', 'lite',
            CASE WHEN b THEN 'batch' ELSE 'standard' END, 1, '[]', '{{}}', 'succeeded',
            false, '', '', 1, 0.043605, 0, 0, 0, CASE WHEN b THEN 2 ELSE 1 END,
            CASE WHEN fb THEN 'flash' ELSE '' END,
            CASE WHEN fb THEN 'primary_throttled' ELSE '' END, batch_id,
            ts, ts, ts + interval '4 seconds'
        FROM {rows_sql}""",
        f"""INSERT INTO generation_image (id, tenant_id, job_id, index, source, file, thumbnail,
            mime_type, width, height, size_bytes, sha256, requested_tier, served_tier,
            fallback_reason, created_at)
        SELECT md5('img' || g)::uuid, t, md5('job' || g)::uuid, 0, 'generated',
            'bench/' || g || '.png', '', 'image/png', 1024, 1024, 1400000,
            md5('a' || g) || md5('b' || g), CASE WHEN fb THEN 'flash' ELSE 'lite' END, 'lite',
            CASE WHEN fb THEN 'primary_throttled' ELSE '' END, ts + interval '4 seconds'
        FROM {rows_sql}""",
        f"""INSERT INTO billing_usageevent (tenant_id, job_id, image_id, tier, model, mode,
            input_text_tokens, input_image_tokens, output_text_tokens, output_image_tokens,
            thoughts_tokens, provider_cost, markup, billed, input_per_million,
            text_output_per_million, image_output_per_million, occurred_at, stripe_state,
            stripe_attempts, stripe_last_error, stripe_sent_at, quota_settled, rolled_up)
        SELECT tenant_id, job_id, image_id, tier, model, mode, input_text_tokens, 0, 0,
            output_image_tokens, 0, provider_cost, markup, billed, input_per_million,
            text_output_per_million, image_output_per_million, occurred_at, stripe_state,
            1, '', occurred_at + interval '1 minute', true, true
        FROM ({usage}) u""",
        f"""INSERT INTO billing_usagerollup (tenant_id, day, tier, model, mode, requested_tier,
            fallback_reason, input_per_million, text_output_per_million,
            image_output_per_million, markup, images, input_text_tokens, input_image_tokens,
            output_text_tokens, output_image_tokens, thoughts_tokens, provider_cost, billed)
        SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, tier, model, mode,
            requested_tier, fallback_reason, input_per_million, text_output_per_million,
            image_output_per_million, markup, count(*), sum(input_text_tokens), 0, 0,
            sum(output_image_tokens), 0, sum(provider_cost), sum(billed)
        FROM ({usage}) u
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
        ON CONFLICT (tenant_id, day, tier, model, mode, requested_tier, fallback_reason,
            input_per_million, text_output_per_million, image_output_per_million, markup)
        DO UPDATE SET images = billing_usagerollup.images + excluded.images,
            input_text_tokens = billing_usagerollup.input_text_tokens
                + excluded.input_text_tokens,
            output_image_tokens = billing_usagerollup.output_image_tokens
                + excluded.output_image_tokens,
            provider_cost = billing_usagerollup.provider_cost + excluded.provider_cost,
            billed = billing_usagerollup.billed + excluded.billed""",
        f"""INSERT INTO webhooks_webhookdelivery (id, endpoint_id, event_id, event_type, payload,
            status, attempts, response_code, duration_ms, last_error, created_at, delivered_at)
        SELECT md5('dlv' || g)::uuid, md5('endpoint' || t)::uuid, 'evt_' || md5('evt' || g),
            'job.succeeded', jsonb_build_object('type', 'job.succeeded',
                'data', jsonb_build_object('id', md5('job' || g)::uuid)),
            'succeeded', 1, 200, 40 + g % 200, '', ts + interval '5 seconds',
            ts + interval '5 seconds'
        FROM {rows_sql}""",
    ]


def _secondary_indexes(cursor: Any) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the tables' indexes that back no constraint."""
    cursor.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.tablename = ANY(%s) AND NOT EXISTS (
            SELECT 1 FROM pg_constraint c WHERE c.conindid = to_regclass(i.indexname))""",
        [list(TABLES)],
    )
    return list(cursor.fetchall())


def seed(
    *,
    tenant_id: int,
    small_ids: list[int],
    rows: int,
    small_rows: int,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, float]:
    """Seed into emptied tables; the seconds each phase took."""
    from django.db import connection

    smalls = max(len(small_ids), 1)
    total = rows + small_rows * len(small_ids)
    span_us = int((end - start).total_seconds() * 1_000_000)
    statements = _statements(
        tenant_id=tenant_id, rows=rows, smalls=smalls, small_rows=small_rows, span_us=span_us
    )
    phases: dict[str, float] = {}
    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET session_replication_role = replica")
        indexes = _secondary_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # One webhook endpoint per tenant, with the id the deliveries name.
        cursor.execute(
            """INSERT INTO webhooks_webhookendpoint (id, tenant_id, url, description, secret,
                previous_secret, event_types, enabled, created_at)
            SELECT md5('endpoint' || t)::uuid, t, 'https://hooks.example.com/' || t, 'bench',
                'whsec_bench', '', '[]', true, %s
            FROM unnest(%s::bigint[]) t ON CONFLICT DO NOTHING""",
            [start, [tenant_id, *small_ids]],
        )
        for lo in range(1, total + 1, CHUNK):
            hi = min(lo + CHUNK - 1, total)
            params = {"small": small_ids or [tenant_id], "start": start, "lo": lo, "hi": hi}
            for sql in statements:
                cursor.execute(_escape(sql), params)
            print(f"  seeded {hi:,} / {total:,} ({time.monotonic() - began:.0f} s)", flush=True)
        phases["rows"] = time.monotonic() - began
        mark = time.monotonic()
        cursor.execute(
            """INSERT INTO batches_batch (id, tenant_id, mode, status, metadata, created_at,
                finished_at, name, total_items, total_images, estimated_cost, cancel_requested)
            SELECT batch_id, min(tenant_id), 'batch', 'succeeded', '{}', min(created_at),
                max(finished_at), 'bench batch', count(*), count(*), sum(estimated_cost), false
            FROM generation_job WHERE batch_id IS NOT NULL GROUP BY batch_id"""
        )
        cursor.execute(
            """INSERT INTO batches_batchitem (batch_id, index, label, locale, job_id)
            SELECT batch_id, row_number() OVER (PARTITION BY batch_id ORDER BY created_at) - 1,
                '', '', id
            FROM generation_job WHERE batch_id IS NOT NULL"""
        )
        phases["batches"] = time.monotonic() - mark
        print(f"  batches and items ({phases['batches']:.0f} s); indexes …", flush=True)
        mark = time.monotonic()
        cursor.execute("SET session_replication_role = DEFAULT")
        for _, create in indexes:
            cursor.execute(create)
        phases["indexes"] = time.monotonic() - mark
        mark = time.monotonic()
        # The seeded batches have finished: their progress, as `batch_settle` keeps it.
        from batches.progress import final_progress_fill

        final_progress_fill()
        phases["batch_progress"] = time.monotonic() - mark
        mark = time.monotonic()
        for table in (*TABLES, "billing_usagerollup", "webhooks_webhookendpoint"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        phases["vacuum_analyze"] = time.monotonic() - mark
    phases["total"] = time.monotonic() - began
    return phases
