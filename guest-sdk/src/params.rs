//! Parameter schemas (schemars, draft 2020-12) and typed parsing of `job.params`.
//!
//! Schemas are fully inlined and `Option<T>` is not made nullable, so the host sees plain
//! `"type": "string"` properties and finds `x-alephauto-path` without resolving `$ref`s.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::JobError;

/// The JSON Schema of `P` as the host expects it in `worker-info.params-schema`.
pub fn schema_for<P: JsonSchema>() -> String {
    let generator = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator();
    let mut schema = generator.into_root_schema_for::<P>().to_value();
    strip_null(&mut schema);
    schema.to_string()
}

/// Drops the `null` that schemars allows for `Option<T>`: an absent parameter is the way to omit one.
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get("anyOf") {
                let rest: Vec<Value> = any.iter().filter(|s| s.get("type") != Some(&"null".into())).cloned().collect();
                if rest.len() == 1 {
                    map.remove("anyOf");
                    if let Value::Object(inner) = &rest[0] {
                        for (k, v) in inner {
                            map.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Parses `job.params`; a serde error becomes `invalid-input` naming the offending field.
pub fn parse<P: DeserializeOwned>(json: &str) -> Result<P, JobError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let mut message = err.inner().to_string();
        // serde_json appends the position; the field name says more to a caller.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // Missing/unknown fields are reported at the parent; name the field itself.
        let named = backticked(&message)
            .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"));
        let field = match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "params".to_owned(),
            (p, Some(name)) if p != name && !p.ends_with(&format!(".{name}")) => {
                format!("{p}.{name}")
            }
            (p, _) => p.to_owned(),
        };
        JobError::invalid(field, message)
    })
}

/// The first `` `quoted` `` word of a serde message.
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// schemars `transform`: marks the `items` of an array of strings as paths the worker reads.
pub fn read_path_items(schema: &mut Schema) {
    mark_items(schema, "read");
}

/// schemars `transform`: marks the `items` of an array of strings as paths the worker writes.
pub fn write_path_items(schema: &mut Schema) {
    mark_items(schema, "write");
}

fn mark_items(schema: &mut Schema, access: &str) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert("x-alephauto-path".to_owned(), access.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code, reason = "only the schema and parse errors are under test")]
    struct Repo {
        #[schemars(extend("x-alephauto-path" = "read"))]
        path: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code, reason = "only the schema and parse errors are under test")]
    struct P {
        #[schemars(extend("x-alephauto-path" = "write"))]
        target_dir: String,
        #[serde(default = "yes")]
        #[schemars(default = "yes")]
        dry_run: bool,
        #[serde(default)]
        repos: Vec<Repo>,
        #[serde(default)]
        #[schemars(transform = read_path_items)]
        extra: Option<Vec<String>>,
    }

    fn yes() -> bool {
        true
    }

    #[test]
    fn schema_is_inline_annotated_and_closed() {
        let s: serde_json::Value = serde_json::from_str(&schema_for::<P>()).expect("schema is JSON");
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["targetDir"]["x-alephauto-path"], "write");
        assert_eq!(s["properties"]["dryRun"]["default"], true);
        assert_eq!(s["properties"]["repos"]["items"]["properties"]["path"]["x-alephauto-path"], "read");
        assert_eq!(s["properties"]["extra"]["type"], "array");
        assert_eq!(s["properties"]["extra"]["items"]["x-alephauto-path"], "read");
        assert_eq!(s["required"], serde_json::json!(["targetDir"]));
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<P>("{}").err();
        assert_eq!(err, Some(JobError::invalid("targetDir", "missing field `targetDir`")));
        let err = parse::<P>(r#"{"targetDir":"/x","dryRun":"no"}"#).err();
        assert!(matches!(err, Some(JobError::InvalidInput { ref field, .. }) if field == "dryRun"));
        let err = parse::<P>(r#"{"targetDir":"/x","repos":[{"path":3}]}"#).err();
        assert!(matches!(err, Some(JobError::InvalidInput { ref field, .. }) if field == "repos[0].path"));
        let err = parse::<P>(r#"{"targetDir":"/x","bogus":1}"#).err();
        assert!(matches!(err, Some(JobError::InvalidInput { ref field, .. }) if field == "bogus"));
        let ok = parse::<P>(r#"{"targetDir":"/x"}"#).expect("valid params");
        assert!(ok.dry_run);
    }
}
