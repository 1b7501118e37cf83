//! The PostgreSQL schema, as versioned migrations applied in order under an advisory lock so
//! nodes starting together do not race.

use anyhow::Context;
use tokio_postgres::Client;

/// Advisory lock key serialising migrations.
const MIGRATION_LOCK: i64 = 0x616c_6570_6d69_6772;

/// Versioned migrations, applied in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL,
        pipeline_id TEXT NOT NULL,
        status TEXT NOT NULL,
        data JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        started_at TIMESTAMPTZ,
        completed_at TIMESTAMPTZ,
        attempt INTEGER NOT NULL,
        progress_percent SMALLINT NOT NULL DEFAULT 0,
        progress_message TEXT NOT NULL DEFAULT '',
        result JSONB,
        error JSONB,
        git JSONB,
        retried_from TEXT,
        retry_count INTEGER NOT NULL DEFAULT 0,
        node_id TEXT,
        lease_until TIMESTAMPTZ,
        run_after TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX jobs_claim ON jobs (pipeline_id, status, run_after, created_at, seq);
    CREATE INDEX jobs_created ON jobs (created_at, seq);
    CREATE INDEX jobs_lease ON jobs (status, lease_until);
    CREATE TABLE job_logs (
        job_id TEXT NOT NULL,
        seq BIGSERIAL,
        attempt INTEGER NOT NULL,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        stream TEXT NOT NULL,
        message TEXT NOT NULL,
        fields JSONB,
        PRIMARY KEY (job_id, seq)
    );",
    ),
    // Per-pipeline queued and running counts, kept by statement-level triggers from every
    // statement that inserts, updates or deletes jobs (whatever path it takes), so they are
    // exact by construction. The claim locks a pipeline's row, reads its running count (the
    // newest committed version, PostgreSQL re-reads a row it waited for) and claims up to the
    // cap in one statement: the row lock is what serialises claimers of one pipeline, for
    // the length of one statement. Rows are locked in pipeline order to avoid deadlocks.
    // `jobs_queued` hands the claim its oldest queued jobs in order, without a sort.
    // Schedules (`store::schedules`).
    (2, super::schedules::MIGRATION),
    // Fan-out runs, their targets and API-created inventories (`store::postgres_runs`).
    (3, crate::store::postgres_runs::MIGRATION),
    // Webhook deliveries (`store::deliveries`).
    (4, super::deliveries::MIGRATION),
    // The worker version and component digest a job runs on (hot swap keeps several).
    (
        5,
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS worker_version TEXT;
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS component_digest TEXT",
    ),
    (
        7,
        "CREATE TABLE pipeline_counts (
        pipeline_id TEXT PRIMARY KEY,
        queued BIGINT NOT NULL DEFAULT 0,
        running BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO pipeline_counts (pipeline_id, queued, running)
        SELECT pipeline_id, count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running')
        FROM jobs GROUP BY pipeline_id;
    CREATE INDEX jobs_queued ON jobs (pipeline_id, created_at, seq) WHERE status = 'queued';
    CREATE FUNCTION jobs_counts_apply(deltas JSONB) RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE r RECORD;
    BEGIN
        FOR r IN SELECT d.pipeline_id, d.dq, d.dr
                 FROM jsonb_to_recordset(deltas) AS d(pipeline_id TEXT, dq BIGINT, dr BIGINT)
                 WHERE d.dq <> 0 OR d.dr <> 0 ORDER BY d.pipeline_id
        LOOP
            INSERT INTO pipeline_counts AS c (pipeline_id, queued, running) VALUES (r.pipeline_id, r.dq, r.dr)
            ON CONFLICT (pipeline_id) DO UPDATE SET queued = c.queued + EXCLUDED.queued, running = c.running + EXCLUDED.running;
        END LOOP;
    END $fn$;
    CREATE FUNCTION jobs_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM jobs_counts_apply((SELECT coalesce(jsonb_agg(d), '[]') FROM (
            SELECT pipeline_id, sum((status = 'queued')::int) AS dq, sum((status = 'running')::int) AS dr
            FROM new_rows GROUP BY pipeline_id) d));
        RETURN NULL;
    END $fn$;
    CREATE FUNCTION jobs_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM jobs_counts_apply((SELECT coalesce(jsonb_agg(d), '[]') FROM (
            SELECT pipeline_id, -sum((status = 'queued')::int) AS dq, -sum((status = 'running')::int) AS dr
            FROM old_rows GROUP BY pipeline_id) d));
        RETURN NULL;
    END $fn$;
    CREATE FUNCTION jobs_counts_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM jobs_counts_apply((SELECT coalesce(jsonb_agg(d), '[]') FROM (
            SELECT pipeline_id, sum(dq) AS dq, sum(dr) AS dr FROM (
                SELECT pipeline_id, -(status = 'queued')::int AS dq, -(status = 'running')::int AS dr FROM old_rows
                UNION ALL
                SELECT pipeline_id, (status = 'queued')::int, (status = 'running')::int FROM new_rows) x
            GROUP BY pipeline_id) d));
        RETURN NULL;
    END $fn$;
    CREATE TRIGGER jobs_counts_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts_insert();
    CREATE TRIGGER jobs_counts_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts_delete();
    CREATE TRIGGER jobs_counts_update AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts_update();",
    ),
];

/// Applies the migrations this database has not seen yet.
pub(super) async fn migrate(client: &Client) -> anyhow::Result<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .await?;
        for (version, sql) in MIGRATIONS {
            let done = client.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version]).await?.is_some();
            if !done {
                client.batch_execute(&format!("BEGIN; {sql}; INSERT INTO schema_migrations (version) VALUES ({version}); COMMIT;"))
                    .await
                    .with_context(|| format!("applying migration {version}"))?;
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    result
}
