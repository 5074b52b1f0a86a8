"""The claim's commit as one PostgreSQL function (generation/scheduler.py): the tenants'
claim locks, the move to running under each tenant's cap, and the fair-share tags, in one
round trip (and, outside a transaction, one transaction) instead of five.

Each statement of a PL/pgSQL function takes its own snapshot (READ COMMITTED), so the cap
check, which runs after the locks are held, sees every claim committed before them.
"""

from django.db import migrations

CLAIM_LOCK_CLASS = 0x42756E63  # scheduler.CLAIM_LOCK_CLASS ("Bunc")

FORWARD = f"""
CREATE OR REPLACE FUNCTION generation_claim(
    p_jobs uuid[], p_tenants bigint[], p_ranks int[],
    p_lease timestamptz, p_now timestamptz, p_v float8
) RETURNS TABLE (claimed_id uuid, claimed_tenant bigint, claimed_images int)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    ids uuid[] := '{{}}';
    images int[] := '{{}}';
BEGIN
    -- A claim lost in a database crash only leaves its jobs queued, to be claimed again.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- In tenant order, so that two claims never wait for each other crosswise.
    PERFORM pg_advisory_xact_lock({CLAIM_LOCK_CLASS}, u.k::int)
    FROM (SELECT DISTINCT k FROM unnest(p_tenants) AS k ORDER BY k) u;
    FOR r IN
        WITH p AS (SELECT * FROM unnest(p_jobs, p_tenants, p_ranks) AS p(job_id, tenant_id, rn))
        UPDATE generation_job j
        SET status = 'running', lease_expires_at = p_lease, started_at = p_now
        WHERE j.status = 'queued' AND j.id IN (
            SELECT p.job_id FROM p
            JOIN tenants_tenant tn ON tn.id = p.tenant_id
            JOIN tenants_plan pl ON pl.id = tn.plan_id
            LEFT JOIN generation_tenantshare s ON s.tenant_id = p.tenant_id
            WHERE p.rn <= pl.max_concurrent_jobs - COALESCE(s.running, 0)
        )
        RETURNING j.id, j.tenant_id, j.count
    LOOP
        ids := ids || r.id;
        images := images || r.count::int;
        claimed_id := r.id;
        claimed_tenant := r.tenant_id;
        claimed_images := r.count;
        RETURN NEXT;
    END LOOP;
    -- Each tenant's tags move on from where they are now by its claimed images / weight.
    INSERT INTO generation_tenantshare AS s (tenant_id, start, finish)
    SELECT d.tenant_id, p_v + (d.total - d.last)::float8 / d.w, p_v + d.total::float8 / d.w
    FROM (
        SELECT p.tenant_id, SUM(c.n) AS total, (array_agg(c.n ORDER BY p.rn DESC))[1] AS last,
               GREATEST(MAX(pl.weight), 1) AS w
        FROM unnest(ids, images) AS c(id, n)
        JOIN unnest(p_jobs, p_tenants, p_ranks) AS p(job_id, tenant_id, rn) ON p.job_id = c.id
        JOIN tenants_tenant tn ON tn.id = p.tenant_id
        JOIN tenants_plan pl ON pl.id = tn.plan_id
        GROUP BY p.tenant_id ORDER BY p.tenant_id
    ) d
    ON CONFLICT (tenant_id) DO UPDATE SET
        start = GREATEST(s.finish, p_v) + (excluded.start - p_v),
        finish = GREATEST(s.finish, p_v) + (excluded.finish - p_v);
END
$$;
"""
BACKWARD = "DROP FUNCTION IF EXISTS generation_claim(uuid[], bigint[], int[], timestamptz, timestamptz, float8);"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0013_tenant_queue_counts"),
    ]

    operations = [migrations.RunPython(forward, backward)]
