//! `ScheduleStore` on SQLite. Schedule writes are rare (a fire, an API change), so they run on
//! a pooled connection on the blocking pool rather than through the jobs' group-commit writer;
//! SQLite's busy timeout orders them against it.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::store::schedules::{SOURCE_CONFIG, ScheduleDef, ScheduleRecord, ScheduleState, ScheduleStore, differs};
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "id, pipeline_id, cron, timezone, parameters, inventory, misfire, overlap, paused, source, \
    created_at, updated_at, last_fire, next_fire, last_job_id, pending_fire";

fn ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    v.map(|m| {
        DateTime::from_timestamp_millis(m).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, "time out of range".into())
        })
    })
    .transpose()
}

fn to_record(row: &Row<'_>) -> rusqlite::Result<ScheduleRecord> {
    let parameters: String = row.get(4)?;
    let parameters = serde_json::from_str(&parameters)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into()))?;
    let required = |v: Option<DateTime<Utc>>| v.unwrap_or(DateTime::<Utc>::MIN_UTC);
    Ok(ScheduleRecord {
        def: ScheduleDef {
            id: row.get(0)?,
            pipeline_id: row.get(1)?,
            cron: row.get(2)?,
            timezone: row.get(3)?,
            parameters,
            inventory: row.get(5)?,
            misfire: row.get(6)?,
            overlap: row.get(7)?,
            paused: row.get(8)?,
            source: row.get(9)?,
        },
        created_at: required(time(row.get(10)?)?),
        updated_at: required(time(row.get(11)?)?),
        state: ScheduleState {
            last_fire: time(row.get(12)?)?,
            next_fire: time(row.get(13)?)?,
            last_job_id: row.get(14)?,
            pending_fire: time(row.get(15)?)?,
        },
    })
}

fn insert(conn: &Connection, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> anyhow::Result<usize> {
    let now = ms(&Utc::now());
    let parameters = serde_json::to_string(&def.parameters)?;
    Ok(conn.execute(
        "INSERT INTO schedules (id, pipeline_id, cron, timezone, parameters, inventory, misfire, overlap, paused, \
         source, created_at, updated_at, next_fire) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12) \
         ON CONFLICT (id) DO NOTHING",
        params![
            def.id,
            def.pipeline_id,
            def.cron,
            def.timezone,
            parameters,
            def.inventory,
            def.misfire,
            def.overlap,
            def.paused,
            def.source,
            now,
            next_fire.as_ref().map(ms)
        ],
    )?)
}

fn update(conn: &Connection, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> anyhow::Result<usize> {
    let parameters = serde_json::to_string(&def.parameters)?;
    Ok(conn.execute(
        "UPDATE schedules SET pipeline_id = ?2, cron = ?3, timezone = ?4, parameters = ?5, inventory = ?6, \
         misfire = ?7, overlap = ?8, paused = ?9, source = ?10, updated_at = ?11, next_fire = ?12, \
         pending_fire = NULL WHERE id = ?1",
        params![
            def.id,
            def.pipeline_id,
            def.cron,
            def.timezone,
            parameters,
            def.inventory,
            def.misfire,
            def.overlap,
            def.paused,
            def.source,
            ms(&Utc::now()),
            next_fire.as_ref().map(ms)
        ],
    )?)
}

fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<ScheduleRecord>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"))?
        .query_row([id], to_record)
        .optional()?)
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn list_schedules(&self) -> StoreResult<Vec<ScheduleRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM schedules ORDER BY id"))?;
            let rows = stmt.query_map([], to_record)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn get_schedule(&self, id: &str) -> StoreResult<Option<ScheduleRecord>> {
        let id = id.to_string();
        self.read(move |c| get(c, &id)).await
    }

    async fn create_schedule(&self, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> StoreResult<()> {
        let def = def.clone();
        let id = def.id.clone();
        let inserted = self.read(move |c| insert(c, &def, next_fire).context("inserting a schedule")).await?;
        if inserted == 0 { Err(StoreError::Duplicate(id)) } else { Ok(()) }
    }

    async fn update_schedule(&self, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> StoreResult<bool> {
        let def = def.clone();
        self.read(move |c| Ok(update(c, &def, next_fire).context("updating a schedule")? > 0)).await
    }

    async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.read(move |c| Ok(c.execute("DELETE FROM schedules WHERE id = ?1", [id])? > 0)).await
    }

    async fn save_schedule_state(&self, id: &str, state: &ScheduleState) -> StoreResult<bool> {
        let (id, state) = (id.to_string(), state.clone());
        self.read(move |c| {
            let n = c.execute(
                "UPDATE schedules SET last_fire = ?2, next_fire = ?3, last_job_id = ?4, pending_fire = ?5 \
                 WHERE id = ?1 AND (last_fire IS NULL OR ?2 IS NULL OR last_fire <= ?2)",
                params![
                    id,
                    state.last_fire.as_ref().map(ms),
                    state.next_fire.as_ref().map(ms),
                    state.last_job_id,
                    state.pending_fire.as_ref().map(ms)
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn sync_config_schedules(&self, defs: &[(ScheduleDef, Option<DateTime<Utc>>)]) -> StoreResult<()> {
        let defs = defs.to_vec();
        self.read(move |c| {
            // One transaction: a crash mid-sync leaves the previous set, never half of each.
            c.execute_batch("BEGIN IMMEDIATE")?;
            let result = sync(c, &defs);
            match result {
                Ok(()) => c.execute_batch("COMMIT")?,
                Err(_) => {
                    let _ = c.execute_batch("ROLLBACK");
                }
            }
            result
        })
        .await
    }
}

fn sync(c: &Connection, defs: &[(ScheduleDef, Option<DateTime<Utc>>)]) -> anyhow::Result<()> {
    for (def, next_fire) in defs {
        match get(c, &def.id)? {
            None => {
                insert(c, def, *next_fire)?;
            }
            Some(old) if old.def.source != SOURCE_CONFIG => {
                return Err(anyhow!(
                    "schedule id {:?} of the configuration is taken by a schedule made over the API",
                    def.id
                ));
            }
            Some(old) if differs(&old.def, def) => {
                let timing_changed = old.def.cron != def.cron || old.def.timezone != def.timezone;
                let next = if timing_changed { *next_fire } else { old.state.next_fire };
                update(c, def, next)?;
            }
            Some(_) => {}
        }
    }
    let mut stmt = c.prepare("SELECT id FROM schedules WHERE source = ?1")?;
    let stored: Vec<String> = stmt.query_map([SOURCE_CONFIG], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in stored {
        if !defs.iter().any(|(d, _)| d.id == id) {
            c.execute("DELETE FROM schedules WHERE id = ?1", [&id])?;
        }
    }
    Ok(())
}
