//! `ScheduleStore` on PostgreSQL, shared by every node of a cluster. Which node fires a
//! schedule does not matter: the job id derived from (schedule, fire time) lets one insert win.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{PostgresStore, backend};
use crate::store::schedules::{SOURCE_CONFIG, ScheduleDef, ScheduleRecord, ScheduleState, ScheduleStore, differs};
use crate::store::{StoreError, StoreResult};

/// Migration 2: the schedules table.
pub(super) const MIGRATION: &str = "CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        pipeline_id TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        parameters JSONB NOT NULL,
        inventory TEXT,
        misfire TEXT NOT NULL,
        overlap TEXT NOT NULL,
        paused BOOLEAN NOT NULL,
        source TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        last_fire TIMESTAMPTZ,
        next_fire TIMESTAMPTZ,
        last_job_id TEXT,
        pending_fire TIMESTAMPTZ
    )";

const COLUMNS: &str = "id, pipeline_id, cron, timezone, parameters, inventory, misfire, overlap, paused, source, \
    created_at, updated_at, last_fire, next_fire, last_job_id, pending_fire";

fn to_record(row: &Row) -> ScheduleRecord {
    ScheduleRecord {
        def: ScheduleDef {
            id: row.get(0),
            pipeline_id: row.get(1),
            cron: row.get(2),
            timezone: row.get(3),
            parameters: row.get(4),
            inventory: row.get(5),
            misfire: row.get(6),
            overlap: row.get(7),
            paused: row.get(8),
            source: row.get(9),
        },
        created_at: row.get(10),
        updated_at: row.get(11),
        state: ScheduleState {
            last_fire: row.get(12),
            next_fire: row.get(13),
            last_job_id: row.get(14),
            pending_fire: row.get(15),
        },
    }
}

const INSERT: &str = "INSERT INTO schedules (id, pipeline_id, cron, timezone, parameters, inventory, misfire, \
    overlap, paused, source, created_at, updated_at, next_fire) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now(), $11) ON CONFLICT (id) DO NOTHING";

const UPDATE: &str = "UPDATE schedules SET pipeline_id = $2, cron = $3, timezone = $4, parameters = $5, \
    inventory = $6, misfire = $7, overlap = $8, paused = $9, source = $10, updated_at = now(), next_fire = $11, \
    pending_fire = NULL WHERE id = $1";

/// The bind parameters of `INSERT` and `UPDATE`, in order.
fn def_params<'a>(
    def: &'a ScheduleDef,
    next_fire: &'a Option<DateTime<Utc>>,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 11] {
    [
        &def.id,
        &def.pipeline_id,
        &def.cron,
        &def.timezone,
        &def.parameters,
        &def.inventory,
        &def.misfire,
        &def.overlap,
        &def.paused,
        &def.source,
        next_fire,
    ]
}

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn list_schedules(&self) -> StoreResult<Vec<ScheduleRecord>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {COLUMNS} FROM schedules ORDER BY id"), &[]).await.map_err(backend)?;
        Ok(rows.iter().map(to_record).collect())
    }

    async fn get_schedule(&self, id: &str) -> StoreResult<Option<ScheduleRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {COLUMNS} FROM schedules WHERE id = $1"), &[&id])
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(to_record))
    }

    async fn create_schedule(&self, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> StoreResult<()> {
        let client = self.client().await?;
        if client.execute(INSERT, &def_params(def, &next_fire)).await.map_err(backend)? == 0 {
            return Err(StoreError::Duplicate(def.id.clone()));
        }
        Ok(())
    }

    async fn update_schedule(&self, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> StoreResult<bool> {
        let client = self.client().await?;
        Ok(client.execute(UPDATE, &def_params(def, &next_fire)).await.map_err(backend)? > 0)
    }

    async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM schedules WHERE id = $1", &[&id]).await.map_err(backend)? > 0)
    }

    async fn save_schedule_state(&self, id: &str, state: &ScheduleState) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE schedules SET last_fire = $2, next_fire = $3, last_job_id = $4, pending_fire = $5 \
                 WHERE id = $1 AND (last_fire IS NULL OR $2::timestamptz IS NULL OR last_fire <= $2)",
                &[&id, &state.last_fire, &state.next_fire, &state.last_job_id, &state.pending_fire],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn sync_config_schedules(&self, defs: &[(ScheduleDef, Option<DateTime<Utc>>)]) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Nodes starting together sync one at a time (the lock ends with the transaction).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SYNC_LOCK]).await.map_err(backend)?;
        for (def, next_fire) in defs {
            let old = tx
                .query_opt(&format!("SELECT {COLUMNS} FROM schedules WHERE id = $1"), &[&def.id])
                .await
                .map_err(backend)?
                .as_ref()
                .map(to_record);
            match old {
                None => {
                    tx.execute(INSERT, &def_params(def, next_fire)).await.map_err(backend)?;
                }
                Some(old) if old.def.source != SOURCE_CONFIG => {
                    return Err(backend(anyhow::anyhow!(
                        "schedule id {:?} of the configuration is taken by a schedule made over the API",
                        def.id
                    )));
                }
                Some(old) if differs(&old.def, def) => {
                    let timing_changed = old.def.cron != def.cron || old.def.timezone != def.timezone;
                    let next = if timing_changed { *next_fire } else { old.state.next_fire };
                    tx.execute(UPDATE, &def_params(def, &next)).await.map_err(backend)?;
                }
                Some(_) => {}
            }
        }
        let ids: Vec<String> = defs.iter().map(|(d, _)| d.id.clone()).collect();
        tx.execute("DELETE FROM schedules WHERE source = $1 AND NOT (id = ANY($2))", &[&SOURCE_CONFIG, &ids])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}

/// Advisory lock key serialising configuration syncs (arbitrary constant: "alephsch").
const SYNC_LOCK: i64 = 0x616c_6570_6873_6368;
