//! A schedule as a caller states it (a configuration entry or an API body), checked into the
//! stored definition: every problem names its field.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::cron::Timing;
use crate::config::{MisfirePolicy, OverlapPolicy, ScheduleConfig};
use crate::store::schedules::ScheduleDef;

/// A schedule to create or replace (`POST /api/schedules`, `PUT /api/schedules/{id}`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleInput {
    /// `[A-Za-z0-9_-]{1,40}`; required to create, and equal to the path's id (or absent) to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// The pipeline it triggers.
    pub pipeline_id: String,
    /// Cron expression: 5 fields, 6 with seconds first, or `@hourly`, `@daily`, `@weekly`, ...
    pub cron: String,
    /// IANA time zone (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// The job's parameters.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
    /// Start a run over this inventory instead of one job.
    #[serde(default)]
    pub inventory: Option<String>,
    /// Missed fires after downtime: `skip` (default) or `run_once`. (Read as text so a
    /// wrong value is refused naming this field.)
    #[serde(default)]
    #[schema(value_type = Option<MisfirePolicy>)]
    pub misfire: Option<String>,
    /// A fire while the previous job runs: `skip` (default), `queue` or `allow`.
    #[serde(default)]
    #[schema(value_type = Option<OverlapPolicy>)]
    pub overlap: Option<String>,
    /// Created paused.
    #[serde(default)]
    pub paused: Option<bool>,
}

/// A refused schedule: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field (`id`, `pipelineId`, `cron`, `timezone`, `parameters`, `inventory`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// True for `[A-Za-z0-9_-]{1,40}`.
pub fn is_valid_schedule_id(id: &str) -> bool {
    (1..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks the parts every source shares; returns the definition and its timing.
pub fn check(input: ScheduleInput, id: &str, source: &str) -> Result<(ScheduleDef, Timing), FieldError> {
    if !is_valid_schedule_id(id) {
        return Err(FieldError::new("id", "must match [A-Za-z0-9_-]{1,40}"));
    }
    let timezone = input.timezone.unwrap_or_else(|| "UTC".into());
    let timing = Timing::parse(&input.cron, &timezone).map_err(|e| {
        let field = e.field();
        let text = e.to_string();
        let message = text.strip_prefix(&format!("{field}: ")).unwrap_or(&text).to_string();
        FieldError::new(field, message)
    })?;
    if let Some(inv) = &input.inventory
        && (inv.is_empty() || inv.len() > 100)
    {
        return Err(FieldError::new("inventory", "must be 1 to 100 characters"));
    }
    let misfire = match input.misfire.as_deref() {
        None => MisfirePolicy::default(),
        Some(m) => MisfirePolicy::parse(m)
            .ok_or_else(|| FieldError::new("misfire", format!("{m:?} is not skip or run_once")))?,
    };
    let overlap = match input.overlap.as_deref() {
        None => OverlapPolicy::default(),
        Some(o) => OverlapPolicy::parse(o)
            .ok_or_else(|| FieldError::new("overlap", format!("{o:?} is not skip, queue or allow")))?,
    };
    let def = ScheduleDef {
        id: id.to_string(),
        pipeline_id: input.pipeline_id,
        cron: input.cron.trim().to_string(),
        timezone: timezone.trim().to_string(),
        parameters: Value::Object(input.parameters.unwrap_or_default()),
        inventory: input.inventory,
        misfire: misfire.as_str().to_string(),
        overlap: overlap.as_str().to_string(),
        paused: input.paused.unwrap_or(false),
        source: source.to_string(),
    };
    Ok((def, timing))
}

/// A configuration entry as an input.
pub fn from_config(pipeline: &str, s: &ScheduleConfig) -> ScheduleInput {
    ScheduleInput {
        id: Some(s.id.clone()),
        pipeline_id: pipeline.to_string(),
        cron: s.cron.clone(),
        timezone: Some(s.timezone.clone()),
        parameters: Some(s.parameters.clone()),
        inventory: s.inventory.clone(),
        misfire: Some(s.misfire.as_str().to_string()),
        overlap: Some(s.overlap.as_str().to_string()),
        paused: Some(s.paused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(cron: &str, tz: Option<&str>) -> ScheduleInput {
        ScheduleInput {
            id: None,
            pipeline_id: "echo".into(),
            cron: cron.into(),
            timezone: tz.map(String::from),
            parameters: None,
            inventory: None,
            misfire: None,
            overlap: None,
            paused: None,
        }
    }

    #[test]
    fn problems_name_their_field() {
        assert_eq!(check(input("0 2 * * *", None), "bad id!", "api").unwrap_err().field, "id");
        assert_eq!(check(input("0 25 * * *", None), "ok", "api").unwrap_err().field, "cron");
        assert_eq!(check(input("0 2 * * *", Some("Nowhere/City")), "ok", "api").unwrap_err().field, "timezone");
        let (def, _) = check(input("@daily", Some("Asia/Tokyo")), "ok", "api").unwrap();
        assert_eq!((def.misfire.as_str(), def.overlap.as_str(), def.timezone.as_str()), ("skip", "skip", "Asia/Tokyo"));
    }
}
