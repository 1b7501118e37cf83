//! Turning a job's path parameters into filesystem grants. A worker's schema marks
//! path properties with `"x-alephauto-path": "read" | "write"`; each such value must
//! be absolute, exist, and resolve (symbolic links followed) inside one of the
//! pipeline's configured roots. The canonical path replaces the value, and its
//! folder (the parent, for a file) is preopened at the same path in the guest.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::expand_home;

/// The schema keyword that marks a path parameter.
pub const PATH_KEYWORD: &str = "x-alephauto-path";

/// Read or read-write access to a granted folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// The guest may read.
    Read,
    /// The guest may read and write.
    Write,
}

/// One folder preopened for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// JSON pointer of the parameter that named it, or `output`.
    pub param: String,
    /// Canonical absolute folder, host path == guest path.
    pub dir: PathBuf,
    /// Granted access.
    pub access: Access,
}

/// A parameter that names a path the job may not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PathError {
    /// Parameter name (a JSON pointer without the leading slash for nested ones).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Resolves every annotated path in `params` (rewriting them to canonical form) and
/// returns the grants. `roots` must already be canonical, and so must `protected`: the
/// runtime's own folders and files (data folder, cache, database), which no grant may
/// reach even when a root contains them.
pub fn resolve(
    schema: &Value,
    params: &mut Value,
    roots: &[PathBuf],
    protected: &[PathBuf],
    allow_write: bool,
) -> Result<Vec<Grant>, PathError> {
    let mut found = Vec::new();
    collect(schema, schema, params, String::new(), &mut found, 0);
    let mut grants: Vec<Grant> = Vec::new();
    for (pointer, access) in found {
        let Some(slot) = params.pointer_mut(&pointer) else { continue };
        let Value::String(raw) = slot else { continue };
        let field = pointer.trim_start_matches('/').to_string();
        let canonical = check_path(raw, roots).map_err(|message| PathError { field: field.clone(), message })?;
        let dir = if canonical.is_dir() {
            canonical.clone()
        } else {
            canonical.parent().map(Path::to_path_buf).unwrap_or_else(|| canonical.clone())
        };
        check_grant(raw, &dir, roots, protected).map_err(|message| PathError { field: field.clone(), message })?;
        *raw = canonical.to_string_lossy().into_owned();
        let access = if access == Access::Write && allow_write { Access::Write } else { Access::Read };
        match grants.iter_mut().find(|g| g.dir == dir) {
            Some(existing) => existing.access = existing.access.max(access),
            None => grants.push(Grant { param: pointer, dir, access }),
        }
    }
    Ok(grants)
}

/// Canonicalises `raw` and checks it lies under a root; the error is user-facing.
fn check_path(raw: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.contains('\0') {
        return Err("must not contain NUL bytes".into());
    }
    let expanded = expand_home(Path::new(raw));
    if !expanded.is_absolute() {
        return Err(format!("must be an absolute path, got {raw:?}"));
    }
    let canonical = std::fs::canonicalize(&expanded).map_err(|e| format!("{raw:?} cannot be used: {e}"))?;
    if !roots.iter().any(|root| canonical.starts_with(root)) {
        let roots: Vec<_> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(format!(
            "{raw:?} is outside the folders this pipeline is granted ({})",
            if roots.is_empty() { "none".to_string() } else { roots.join(", ") }
        ));
    }
    Ok(canonical)
}

/// Checks the folder a path grants: it stays inside a root (a root naming a file does not
/// grant that file's folder) and neither lies inside nor contains anything protected.
fn check_grant(raw: &str, dir: &Path, roots: &[PathBuf], protected: &[PathBuf]) -> Result<(), String> {
    if !roots.iter().any(|root| dir.starts_with(root)) {
        return Err(format!("{raw:?} would grant its folder {}, which is outside the folders this pipeline is granted", dir.display()));
    }
    if let Some(place) = protected.iter().find(|p| dir.starts_with(p)) {
        return Err(format!("{raw:?} lies inside AlephAuto's own data ({}), which no job may reach", place.display()));
    }
    if let Some(place) = protected.iter().find(|p| p.starts_with(dir)) {
        return Err(format!(
            "{raw:?} would grant {}, which holds AlephAuto's own data ({}); no job may reach it",
            dir.display(),
            place.display()
        ));
    }
    Ok(())
}

/// Follows `#/$defs/...` and `#/definitions/...` references within the root schema.
fn deref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => match root.pointer(pointer) {
                Some(target) => node = target,
                None => break,
            },
            None => break,
        }
    }
    node
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Walks the schema alongside the value, collecting pointers of annotated strings.
fn collect(root: &Value, node: &Value, value: &Value, pointer: String, out: &mut Vec<(String, Access)>, depth: u32) {
    if depth > 32 {
        return;
    }
    let node = deref(root, node);
    if let (Some(mark), Value::String(_)) = (node.get(PATH_KEYWORD).and_then(Value::as_str), value) {
        out.push((pointer.clone(), if mark == "write" { Access::Write } else { Access::Read }));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            for branch in branches {
                collect(root, branch, value, pointer.clone(), out, depth + 1);
            }
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(v) = map.get(k) {
                        collect(root, sub, v, format!("{pointer}/{}", escape(k)), out, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.get("items") {
                for (i, v) in items.iter().enumerate() {
                    collect(root, item_schema, v, format!("{pointer}/{i}"), out, depth + 1);
                }
            }
        }
        _ => {}
    }
    out.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "repositoryPath": {"type": "string", "x-alephauto-path": "write"},
                "label": {"type": "string"},
                "repositories": {"type": "array", "items": {"$ref": "#/$defs/Repo"}}
            },
            "$defs": {"Repo": {"type": "object", "properties": {"path": {"type": "string", "x-alephauto-path": "read"}}}}
        })
    }

    #[test]
    fn annotated_paths_become_canonical_grants() {
        let root = tempfile::tempdir().unwrap();
        let root_c = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir_all(root_c.join("a/b")).unwrap();
        std::fs::write(root_c.join("a/file.md"), "x").unwrap();
        let mut params = json!({
            "repositoryPath": format!("{}/a/b/..", root_c.display()),
            "label": "/etc",
            "repositories": [{"path": format!("{}/a/file.md", root_c.display())}]
        });
        let grants = resolve(&schema(), &mut params, std::slice::from_ref(&root_c), &[], true).unwrap();
        assert_eq!(params["repositoryPath"], json!(root_c.join("a").display().to_string()));
        assert_eq!(params["label"], json!("/etc"), "unannotated strings are untouched");
        // Both name folder `a` (the file's parent): one grant, the stronger access wins.
        assert_eq!(grants.len(), 1, "{grants:?}");
        assert_eq!((grants[0].dir.clone(), grants[0].access), (root_c.join("a"), Access::Write));
    }

    #[test]
    fn paths_outside_the_roots_or_relative_are_refused_naming_the_field() {
        let root = tempfile::tempdir().unwrap();
        let root_c = std::fs::canonicalize(root.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut params = json!({"repositoryPath": outside.path().display().to_string()});
        let err = resolve(&schema(), &mut params, std::slice::from_ref(&root_c), &[], true).unwrap_err();
        assert_eq!(err.field, "repositoryPath");
        assert!(err.message.contains("outside"), "{}", err.message);

        let mut params = json!({"repositories": [{"path": "relative/dir"}]});
        let err = resolve(&schema(), &mut params, &[root_c], &[], true).unwrap_err();
        assert_eq!(err.field, "repositories/0/path");
        assert!(err.message.contains("absolute"));
    }

    #[test]
    fn a_symlink_out_of_the_root_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let root_c = std::fs::canonicalize(root.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root_c.join("escape")).unwrap();
        let mut params = json!({"repositoryPath": root_c.join("escape").display().to_string()});
        assert!(resolve(&schema(), &mut params, &[root_c], &[], true).is_err());
    }

    #[test]
    fn paths_into_or_around_protected_data_are_refused_even_inside_a_root() {
        let root = tempfile::tempdir().unwrap();
        let root_c = std::fs::canonicalize(root.path()).unwrap();
        let data = root_c.join("data");
        std::fs::create_dir_all(data.join("outputs/job-1")).unwrap();
        std::fs::write(data.join("alephauto.db-wal"), "wal").unwrap();
        std::fs::create_dir_all(root_c.join("repo")).unwrap();
        let protected = [data.clone()];
        let roots = std::slice::from_ref(&root_c);
        for (path, why) in [
            (data.join("alephauto.db-wal"), "lies inside"),
            (data.join("outputs/job-1"), "lies inside"),
            (data.clone(), "lies inside"),
            (root_c.clone(), "would grant"),
        ] {
            let mut params = json!({"repositoryPath": path.display().to_string()});
            let err = resolve(&schema(), &mut params, roots, &protected, true).unwrap_err();
            assert_eq!(err.field, "repositoryPath");
            assert!(err.message.contains(why) && err.message.contains(&data.display().to_string()), "{}", err.message);
        }
        // A sibling of the data folder is fine.
        let mut params = json!({"repositoryPath": root_c.join("repo").display().to_string()});
        assert!(resolve(&schema(), &mut params, roots, &protected, true).is_ok());
    }

    #[test]
    fn a_root_naming_a_file_does_not_grant_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let root_c = std::fs::canonicalize(root.path()).unwrap();
        std::fs::write(root_c.join("notes.md"), "x").unwrap();
        let file_root = root_c.join("notes.md");
        let mut params = json!({"repositoryPath": file_root.display().to_string()});
        let err = resolve(&schema(), &mut params, &[file_root], &[], true).unwrap_err();
        assert!(err.message.contains("would grant its folder"), "{}", err.message);
    }

    #[test]
    fn write_is_downgraded_when_the_pipeline_forbids_it() {
        let root = tempfile::tempdir().unwrap();
        let root_c = std::fs::canonicalize(root.path()).unwrap();
        let mut params = json!({"repositoryPath": root_c.display().to_string()});
        let grants = resolve(&schema(), &mut params, &[root_c], &[], false).unwrap();
        assert_eq!(grants[0].access, Access::Read);
    }
}
