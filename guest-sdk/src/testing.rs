//! Test helpers for workers (feature `testing`, for `[dev-dependencies]`): the contract check
//! every worker runs, the README-matches-the-schema check, and fixture-file writing.

use std::path::Path;

use serde_json::Value;

use crate::Worker;
use crate::bindings::exports::alephauto::worker::worker::Guest;
use crate::worker::Adapter;

/// Checks what the host will see from `describe`: the id is `crate_name` (pass
/// `env!("CARGO_PKG_NAME")`), version, name and description are set, the parameter schema is a
/// closed (`additionalProperties: false`), fully inline (no `$ref`) object whose
/// `x-alephauto-path` marks are all `read` or `write`, and each `(JSON pointer, value)` of
/// `expect` is in it.
///
/// # Panics
/// On the first part of the contract that does not hold, naming it.
pub fn assert_contract<W: Worker>(crate_name: &str, expect: &[(&str, Value)]) {
    let info = <Adapter<W> as Guest>::describe();
    assert_eq!(info.id, crate_name, "the worker id is its crate name");
    assert!(!info.name.trim().is_empty(), "{crate_name}: empty name");
    assert!(!info.description.trim().is_empty(), "{crate_name}: empty description");
    let numbers: Vec<&str> = info.version.split('.').collect();
    assert!(
        numbers.len() == 3 && numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        "{crate_name}: version {:?} is not MAJOR.MINOR.PATCH",
        info.version
    );
    let schema: Value = match serde_json::from_str(&info.params_schema) {
        Ok(schema) => schema,
        Err(e) => panic!("{crate_name}: the parameter schema is not JSON: {e}"),
    };
    assert_eq!(schema["type"], "object", "{crate_name}: parameters are an object: {schema}");
    assert_eq!(schema["additionalProperties"], false, "{crate_name}: the schema must be closed: {schema}");
    assert!(!info.params_schema.contains("$ref"), "{crate_name}: the schema must be inline: {schema}");
    let mut marks = Vec::new();
    path_marks(&schema, String::new(), &mut marks);
    for (at, mark) in &marks {
        assert!(
            mark == "read" || mark == "write",
            "{crate_name}: {at}/x-alephauto-path is {mark}, not \"read\" or \"write\""
        );
    }
    for (pointer, value) in expect {
        assert_eq!(schema.pointer(pointer), Some(value), "{crate_name}: {pointer} in {schema}");
    }
}

/// Every `x-alephauto-path` in `value`, as (pointer of the marked schema, mark).
fn path_marks(value: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            if let Some(mark) = map.get("x-alephauto-path") {
                out.push((at.clone(), mark.clone()));
            }
            for (k, v) in map {
                path_marks(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path_marks(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Checks that every parameter `P`'s schema names (nested ones too) appears in `readme` as
/// `` `name` ``, with its description (whitespace folded, `|` escaped as in a Markdown table), so
/// a worker's README cannot drift from what the API serves. Pass `include_str!("../README.md")`.
///
/// # Panics
/// Listing every parameter or description the README lacks.
pub fn assert_readme_documents<P: schemars::JsonSchema>(readme: &str) {
    fn flat(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    fn walk(node: &Value, text: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for (name, prop) in map.get("properties").and_then(Value::as_object).into_iter().flatten() {
                    if !text.contains(&format!("`{name}`")) {
                        missing.push(name.clone());
                    }
                    if let Some(d) = prop.get("description").and_then(Value::as_str)
                        && !text.contains(&flat(d).replace('|', "\\|"))
                    {
                        missing.push(format!("{name}: {d}"));
                    }
                }
                map.values().for_each(|v| walk(v, text, missing));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, text, missing)),
            _ => {}
        }
    }
    let schema: Value = serde_json::from_str(&crate::params::schema_for::<P>())
        .unwrap_or_else(|e| panic!("the parameter schema is not JSON: {e}"));
    let mut missing = Vec::new();
    walk(&schema, &flat(readme), &mut missing);
    assert!(missing.is_empty(), "README.md does not document: {missing:#?}");
}

/// Writes `contents` to `root/rel`, creating the folders on the way.
///
/// # Panics
/// When the folder or the file cannot be written.
pub fn put(root: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use schemars::JsonSchema;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::{Context, JobError, WorkerInfo};

    /// A worker over parameters `P`.
    struct Test<P>(PhantomData<P>);
    impl<P: DeserializeOwned + JsonSchema + 'static> Worker for Test<P> {
        type Params = P;
        fn info() -> WorkerInfo {
            WorkerInfo {
                id: "alephauto-guest".into(),
                version: "1.2.3".into(),
                name: "Test".into(),
                description: "A worker under test.".into(),
                git_workflow: None,
            }
        }
        fn run(_: &Context, _: P) -> Result<Value, JobError> {
            Ok(Value::Null)
        }
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Good {
        /// A folder.
        #[schemars(extend("x-alephauto-path" = "read"))]
        dir: String,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Open {
        dir: String,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct BadMark {
        #[schemars(extend("x-alephauto-path" = "rw"))]
        dir: String,
    }

    const CRATE: &str = env!("CARGO_PKG_NAME");

    #[test]
    fn a_worker_that_keeps_the_contract_passes() {
        assert_contract::<Test<Good>>(CRATE, &[("/properties/dir/x-alephauto-path", json!("read"))]);
    }

    #[test]
    #[should_panic(expected = "the worker id is its crate name")]
    fn a_wrong_id_fails() {
        assert_contract::<Test<Good>>("other", &[]);
    }

    #[test]
    #[should_panic(expected = "/properties/dir/x-alephauto-path in")]
    fn a_missing_expectation_fails() {
        assert_contract::<Test<Good>>(CRATE, &[("/properties/dir/x-alephauto-path", json!("write"))]);
    }

    #[test]
    #[should_panic(expected = "the schema must be closed")]
    fn an_open_schema_fails() {
        assert_contract::<Test<Open>>(CRATE, &[]);
    }

    #[test]
    #[should_panic(expected = "/properties/dir/x-alephauto-path is \"rw\"")]
    fn an_unknown_path_mark_fails() {
        assert_contract::<Test<BadMark>>(CRATE, &[]);
    }

    #[test]
    fn put_creates_folders() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "a/b/c.txt", "hi");
        assert_eq!(std::fs::read_to_string(dir.path().join("a/b/c.txt")).unwrap(), "hi");
    }
}
