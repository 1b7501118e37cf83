//! Turning a job's path parameters into filesystem grants. A worker's schema marks
//! path properties with `"x-alephauto-path": "read" | "write"`; each such value must
//! be absolute, exist, and resolve (symbolic links followed) inside one of the
//! pipeline's configured roots. The canonical path replaces the value, and its
//! folder (the parent, for a file) is preopened at the same path in the guest.

use std::collections::{BTreeMap, HashMap, HashSet};
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
/// reach even when a root contains them. `schema` is the worker's cached [`PathPlan`] (a
/// raw schema `Value` is planned on the spot, for tests and tools).
pub fn resolve(
    schema: &(impl PathSource + ?Sized),
    params: &mut Value,
    roots: &[PathBuf],
    protected: &[PathBuf],
    allow_write: bool,
) -> Result<Vec<Grant>, PathError> {
    let found = schema.find_paths(params)?;
    let mut grants: Vec<Grant> = Vec::new();
    for (pointer, access) in found {
        let Some(slot) = params.pointer_mut(&pointer) else {
            continue;
        };
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
        return Err(format!(
            "{raw:?} would grant its folder {}, which is outside the folders this pipeline is granted",
            dir.display()
        ));
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

/// Subschemas the host visits when expanding a worker's schema once (local `$ref`s followed,
/// recursion through a child property cut); more fails the worker's `init`.
pub const MAX_SCHEMA_NODES: usize = 5_000;
/// Subschemas that may apply to ONE parameter value (`allOf`/`anyOf`/`oneOf`/`$ref`/... fan-out):
/// this bounds what validating each value costs.
pub const MAX_SCHEMA_FAN_OUT: usize = 500;
/// Nesting of subschemas, `$ref`s followed.
pub const MAX_SCHEMA_DEPTH: usize = 64;
/// Distinct places a path parameter can be found through (states of the plan).
pub const MAX_PLAN_STATES: usize = 1_000;
/// Deepest parameter value the plan follows (serde_json refuses deeper input anyway).
const MAX_VALUE_DEPTH: usize = 256;

/// A parameter schema the host refuses: it exceeds a walk budget or uses a reference the
/// host cannot follow statically. The message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// What the load-time walk learnt about a schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaStats {
    /// Subschemas visited (within [`MAX_SCHEMA_NODES`]).
    pub nodes: usize,
    /// Whether any subschema matches strings against a regular expression
    /// (`pattern`, `patternProperties`, `format: regex`).
    pub uses_patterns: bool,
}

/// Where the path parameters of a worker's schema are, computed ONCE when the worker loads:
/// a small automaton over the parameter value (one state per set of subschemas that can
/// apply at a place; `anyOf`/`oneOf`/`allOf`/`$ref` are merged into the state). Applying it
/// costs one step per parameter value it descends into, whatever the schema looks like.
#[derive(Debug, Clone, Default)]
pub struct PathPlan {
    /// State 0 is the root; empty when the schema marks no reachable path.
    states: Vec<PlanState>,
    stats: SchemaStats,
}

#[derive(Debug, Clone, Default)]
struct PlanState {
    mark: Option<Access>,
    props: BTreeMap<String, usize>,
    items: Option<usize>,
}

/// Anything `resolve` can find path parameters with.
pub trait PathSource {
    /// JSON pointers of the annotated string values in `params`, with their access.
    fn find_paths(&self, params: &Value) -> Result<Vec<(String, Access)>, PathError>;
}

impl PathSource for PathPlan {
    fn find_paths(&self, params: &Value) -> Result<Vec<(String, Access)>, PathError> {
        Ok(self.paths(params))
    }
}

/// Plans the schema on every call: for tests and tools; workers use their cached plan.
impl PathSource for Value {
    fn find_paths(&self, params: &Value) -> Result<Vec<(String, Access)>, PathError> {
        let plan = PathPlan::build(self)
            .map_err(|e| PathError { field: "parameters".into(), message: format!("schema refused: {e}") })?;
        Ok(plan.paths(params))
    }
}

impl PathPlan {
    /// Walks `schema` within the budgets and builds its plan; the error names the budget.
    pub fn build(schema: &Value) -> Result<Self, SchemaError> {
        let stats = measure(schema)?;
        let mut plan = plan_states(schema)?;
        plan.stats = stats;
        Ok(plan)
    }

    /// What the walk learnt about the schema.
    pub fn stats(&self) -> SchemaStats {
        self.stats
    }

    /// Whether no path parameter can ever be found.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Pointers (and access) of the annotated strings present in `params`.
    pub fn paths(&self, params: &Value) -> Vec<(String, Access)> {
        let mut out = Vec::new();
        if !self.states.is_empty() {
            self.visit(0, params, &mut String::new(), &mut out, 0);
        }
        out
    }

    fn visit(&self, state: usize, value: &Value, pointer: &mut String, out: &mut Vec<(String, Access)>, depth: usize) {
        if depth > MAX_VALUE_DEPTH {
            return;
        }
        let st = &self.states[state];
        match value {
            Value::String(_) => {
                if let Some(access) = st.mark {
                    out.push((pointer.clone(), access));
                }
            }
            Value::Object(map) => {
                for (key, &next) in &st.props {
                    if let Some(v) = map.get(key) {
                        let len = pointer.len();
                        pointer.push('/');
                        pointer.push_str(&escape(key));
                        self.visit(next, v, pointer, out, depth + 1);
                        pointer.truncate(len);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(next) = st.items {
                    for (i, v) in items.iter().enumerate() {
                        let len = pointer.len();
                        pointer.push('/');
                        pointer.push_str(&i.to_string());
                        self.visit(next, v, pointer, out, depth + 1);
                        pointer.truncate(len);
                    }
                }
            }
            _ => {}
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The keywords that reference another subschema.
const REF_KEYWORDS: [&str; 3] = ["$ref", "$dynamicRef", "$recursiveRef"];

/// Follows a local JSON-pointer reference (`#` or `#/...`). Anything else (anchors, `$id`-relative
/// or external URLs, percent-encoding) is refused: the host must see exactly what the validator
/// will expand, so it only accepts references it resolves the same way.
fn local_ref<'a>(root: &'a Value, keyword: &str, reference: &str) -> Result<&'a Value, SchemaError> {
    let pointer = reference
        .strip_prefix('#')
        .filter(|p| (p.is_empty() || p.starts_with('/')) && !p.contains('%'))
        .ok_or_else(|| {
            SchemaError(format!(
                "{keyword} {:?}: parameter schemas may only use local JSON-pointer references (\"#/$defs/Name\")",
                shorten(reference, 80)
            ))
        })?;
    root.pointer(pointer)
        .ok_or_else(|| SchemaError(format!("{keyword} {:?} points at nothing in the schema", shorten(reference, 80))))
}

/// Cuts `s` to at most `max` bytes (on a character boundary), marking the cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// The load-time budget walk: expands the schema the way a validator does (every applicator,
/// local `$ref`s followed), counting subschemas. Recursion through a child location (a tree
/// schema) is cut: the value being validated bounds it. Recursion at the same location (a
/// `$ref` loop, `anyOf` fan-out) is not: the budgets stop it, so a bomb costs at most
/// [`MAX_SCHEMA_NODES`] steps, once.
fn measure(root: &Value) -> Result<SchemaStats, SchemaError> {
    let mut walk =
        Walk { root, stats: SchemaStats::default(), stack: Vec::new(), here: 0, fan_out: vec![0], at: vec![] };
    walk.node(root, 0)?;
    Ok(walk.stats)
}

struct Walk<'a> {
    root: &'a Value,
    stats: SchemaStats,
    /// Subschemas being expanded, outermost first (by address: all live in `root`).
    stack: Vec<*const Value>,
    /// Where in `stack` the current value location starts.
    here: usize,
    /// Subschemas counted so far at each value location being expanded.
    fan_out: Vec<usize>,
    /// Keyword path of the current subschema, for messages.
    at: Vec<String>,
}

/// Keywords whose subschemas apply to the same value.
const SAME_PLACE: [&str; 4] = ["not", "if", "then", "else"];
const SAME_PLACE_LISTS: [&str; 3] = ["allOf", "anyOf", "oneOf"];
/// Keywords whose subschemas apply to a child value (or a property name).
const CHILD: [&str; 8] = [
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "items",
    "additionalItems",
    "contains",
    "unevaluatedItems",
    "contentSchema",
];
const CHILD_MAPS: [&str; 2] = ["properties", "patternProperties"];

impl<'a> Walk<'a> {
    fn location(&self) -> String {
        if self.at.is_empty() { "#".into() } else { format!("#/{}", self.at.join("/")) }
    }

    fn node(&mut self, node: &'a Value, depth: usize) -> Result<(), SchemaError> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(SchemaError(format!(
                "the parameter schema nests deeper than {MAX_SCHEMA_DEPTH} subschemas ($refs followed) at {} \
                 (host walk budget; a $ref loop?)",
                shorten(&self.location(), 120)
            )));
        }
        self.stats.nodes += 1;
        if self.stats.nodes > MAX_SCHEMA_NODES {
            return Err(SchemaError(format!(
                "the parameter schema expands to more than {MAX_SCHEMA_NODES} subschemas ($refs followed; host walk \
                 budget), reached at {}: look for $ref loops or anyOf/oneOf/allOf fan-out",
                shorten(&self.location(), 120)
            )));
        }
        let count = self.fan_out.last_mut().expect("a location is always open");
        *count += 1;
        if *count > MAX_SCHEMA_FAN_OUT {
            return Err(SchemaError(format!(
                "more than {MAX_SCHEMA_FAN_OUT} subschemas apply to one parameter value (host validation budget), \
                 reached at {}: look for $ref loops or anyOf/oneOf/allOf fan-out",
                shorten(&self.location(), 120)
            )));
        }
        let Value::Object(map) = node else {
            return Ok(());
        };
        if depth > 0 && (map.get("$id").is_some_and(Value::is_string) || map.get("id").is_some_and(Value::is_string)) {
            return Err(SchemaError(format!(
                "{}: a nested $id is not supported in parameter schemas (references resolve against the root)",
                shorten(&self.location(), 120)
            )));
        }
        if map.contains_key("pattern")
            || map.contains_key("patternProperties")
            || map.get("format").and_then(Value::as_str) == Some("regex")
        {
            self.stats.uses_patterns = true;
        }
        self.stack.push(node as *const Value);
        let result = self.children(map, depth);
        self.stack.pop();
        result
    }

    fn children(&mut self, map: &'a serde_json::Map<String, Value>, depth: usize) -> Result<(), SchemaError> {
        for keyword in REF_KEYWORDS {
            let Some(reference) = map.get(keyword) else {
                continue;
            };
            let Some(reference) = reference.as_str() else {
                continue;
            };
            let target = local_ref(self.root, keyword, reference)?;
            // A target already open at an outer value location: recursion through a child
            // (a tree schema), which the value's own depth bounds.
            if self.stack[..self.here].contains(&(target as *const Value)) {
                continue;
            }
            self.at.push(keyword.to_string());
            self.node(target, depth + 1)?;
            self.at.pop();
        }
        for keyword in SAME_PLACE {
            if let Some(sub) = map.get(keyword) {
                self.at.push(keyword.to_string());
                self.node(sub, depth + 1)?;
                self.at.pop();
            }
        }
        for keyword in SAME_PLACE_LISTS {
            if let Some(Value::Array(subs)) = map.get(keyword) {
                for (i, sub) in subs.iter().enumerate() {
                    self.at.push(format!("{keyword}/{i}"));
                    self.node(sub, depth + 1)?;
                    self.at.pop();
                }
            }
        }
        if let Some(Value::Object(deps)) = map.get("dependentSchemas") {
            for (name, sub) in deps {
                self.at.push(format!("dependentSchemas/{}", escape(name)));
                self.node(sub, depth + 1)?;
                self.at.pop();
            }
        }
        for keyword in CHILD {
            match map.get(keyword) {
                Some(Value::Array(subs)) => {
                    for (i, sub) in subs.iter().enumerate() {
                        self.child(format!("{keyword}/{i}"), sub, depth)?;
                    }
                }
                Some(sub) => self.child(keyword.to_string(), sub, depth)?,
                None => {}
            }
        }
        if let Some(Value::Array(subs)) = map.get("prefixItems") {
            for (i, sub) in subs.iter().enumerate() {
                self.child(format!("prefixItems/{i}"), sub, depth)?;
            }
        }
        for keyword in CHILD_MAPS {
            if let Some(Value::Object(props)) = map.get(keyword) {
                for (name, sub) in props {
                    self.child(format!("{keyword}/{}", escape(name)), sub, depth)?;
                }
            }
        }
        Ok(())
    }

    /// Expands a subschema that applies to a child value: a new value location.
    fn child(&mut self, at: String, sub: &'a Value, depth: usize) -> Result<(), SchemaError> {
        let here = std::mem::replace(&mut self.here, self.stack.len());
        self.fan_out.push(0);
        self.at.push(at);
        let result = self.node(sub, depth + 1);
        self.at.pop();
        self.fan_out.pop();
        self.here = here;
        result
    }
}

/// Subschemas applying at one place: `seeds` and everything their `allOf`/`anyOf`/`oneOf`
/// and references reach at that same place, sorted by address (a state's identity).
fn closure<'a>(root: &'a Value, seeds: Vec<&'a Value>) -> Result<Vec<&'a Value>, SchemaError> {
    let mut seen: HashSet<*const Value> = HashSet::new();
    let mut queue = seeds;
    let mut out = Vec::new();
    while let Some(node) = queue.pop() {
        if !seen.insert(node as *const Value) {
            continue;
        }
        out.push(node);
        let Value::Object(map) = node else { continue };
        for keyword in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(subs)) = map.get(keyword) {
                queue.extend(subs.iter());
            }
        }
        for keyword in REF_KEYWORDS {
            if let Some(reference) = map.get(keyword).and_then(Value::as_str) {
                queue.push(local_ref(root, keyword, reference)?);
            }
        }
    }
    out.sort_by_key(|n| *n as *const Value as usize);
    Ok(out)
}

/// Subset construction over the schema: the states a parameter value can be in, where each
/// marked path is, then only the states that can still reach a mark.
fn plan_states(root: &Value) -> Result<PathPlan, SchemaError> {
    let mut sets: Vec<Vec<&Value>> = Vec::new();
    let mut index: HashMap<Vec<usize>, usize> = HashMap::new();
    let mut states: Vec<PlanState> = Vec::new();
    intern(&mut sets, &mut index, closure(root, vec![root])?)?;
    let mut next = 0;
    while next < sets.len() {
        let set = sets[next].clone();
        let mut state = PlanState::default();
        let mut props: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        let mut items: Vec<&Value> = Vec::new();
        for node in &set {
            if let Some(mark) = node.get(PATH_KEYWORD).and_then(Value::as_str) {
                let access = if mark == "write" { Access::Write } else { Access::Read };
                state.mark = state.mark.max(Some(access));
            }
            if let Some(Value::Object(p)) = node.get("properties") {
                for (k, sub) in p {
                    props.entry(k.as_str()).or_default().push(sub);
                }
            }
            if let Some(sub @ (Value::Object(_) | Value::Bool(_))) = node.get("items") {
                items.push(sub);
            }
        }
        for (k, seeds) in props {
            let id = intern(&mut sets, &mut index, closure(root, seeds)?)?;
            state.props.insert(k.to_string(), id);
        }
        if !items.is_empty() {
            state.items = Some(intern(&mut sets, &mut index, closure(root, items)?)?);
        }
        states.push(state);
        next += 1;
    }
    Ok(prune(states))
}

/// The state id of a set of subschemas, adding it when new (within [`MAX_PLAN_STATES`]).
fn intern<'a>(
    sets: &mut Vec<Vec<&'a Value>>,
    index: &mut HashMap<Vec<usize>, usize>,
    set: Vec<&'a Value>,
) -> Result<usize, SchemaError> {
    let key: Vec<usize> = set.iter().map(|n| *n as *const Value as usize).collect();
    if let Some(&id) = index.get(&key) {
        return Ok(id);
    }
    if sets.len() >= MAX_PLAN_STATES {
        return Err(SchemaError(format!(
            "the parameter schema has more than {MAX_PLAN_STATES} distinct places for path parameters (host walk budget)"
        )));
    }
    index.insert(key, sets.len());
    sets.push(set);
    Ok(sets.len() - 1)
}

/// Keeps only the states from which a marked path can be reached, renumbered (root first).
fn prune(states: Vec<PlanState>) -> PathPlan {
    let mut live: Vec<bool> = states.iter().map(|s| s.mark.is_some()).collect();
    loop {
        let mut changed = false;
        for (i, s) in states.iter().enumerate() {
            if !live[i] && (s.props.values().any(|&t| live[t]) || s.items.is_some_and(|t| live[t])) {
                live[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    if states.is_empty() || !live[0] {
        return PathPlan::default();
    }
    let mut renumber = vec![usize::MAX; states.len()];
    let mut n = 0;
    for (i, &l) in live.iter().enumerate() {
        if l {
            renumber[i] = n;
            n += 1;
        }
    }
    let states = states
        .into_iter()
        .enumerate()
        .filter(|(i, _)| live[*i])
        .map(|(_, s)| PlanState {
            mark: s.mark,
            props: s.props.into_iter().filter(|(_, t)| live[*t]).map(|(k, t)| (k, renumber[t])).collect(),
            items: s.items.filter(|&t| live[t]).map(|t| renumber[t]),
        })
        .collect();
    PathPlan { states, stats: SchemaStats::default() }
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

    fn refused(schema: Value) -> String {
        let started = std::time::Instant::now();
        let err = PathPlan::build(&schema).expect_err("over budget").to_string();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "the walk itself is bounded");
        err
    }

    #[test]
    fn the_issue_bomb_and_its_relatives_are_refused_by_budget() {
        // The issue's 30 bytes: anyOf fanning out into $refs back to the root.
        let err = refused(json!({"anyOf": [true, {"$ref": "#"}, {"$ref": "#"}, {"$ref": "#"}]}));
        assert!(err.contains("budget"), "{err}");
        // A plain same-place $ref loop: the depth budget.
        let err =
            refused(json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}));
        assert!(err.contains(&format!("deeper than {MAX_SCHEMA_DEPTH}")), "{err}");
        // A DAG with no cycle at all (billion laughs): 2^40 expansions, the node budget.
        let mut defs = serde_json::Map::new();
        for i in 0..20 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(format!("d{i}"), json!({"anyOf": [{"$ref": next}, {"$ref": next}]}));
        }
        defs.insert("d20".into(), json!({"type": "string"}));
        let err = refused(json!({"$ref": "#/$defs/d0", "$defs": defs}));
        assert!(err.contains(&format!("{MAX_SCHEMA_FAN_OUT} subschemas apply to one parameter value")), "{err}");
        // The same fan-out spread over child properties: each value sees little, the whole is too big.
        let mut defs = serde_json::Map::new();
        for i in 0..20 {
            let next = format!("#/$defs/p{}", i + 1);
            defs.insert(format!("p{i}"), json!({"properties": {"a": {"$ref": next}, "b": {"$ref": next}}}));
        }
        defs.insert("p20".into(), json!({"type": "string"}));
        let err = refused(json!({"$ref": "#/$defs/p0", "$defs": defs}));
        assert!(err.contains(&format!("more than {MAX_SCHEMA_NODES} subschemas")), "{err}");
        // Nesting alone.
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"properties": {"x": deep}});
        }
        assert!(refused(deep).contains("deeper than"));
    }

    #[test]
    fn references_the_host_cannot_follow_statically_are_refused() {
        for schema in [
            json!({"$ref": "#anchor", "$defs": {"a": {"$anchor": "anchor"}}}),
            json!({"$ref": "urn:other"}),
            json!({"$ref": "#/$defs/a%20b", "$defs": {"a b": {}}}),
            json!({"$ref": "#/$defs/missing"}),
            json!({"$defs": {"a": {"$id": "urn:a"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}),
            json!({"$dynamicRef": "#meta"}),
        ] {
            let err = refused(schema.clone());
            assert!(
                err.contains("reference") || err.contains("$id") || err.contains("points at nothing"),
                "{schema}: {err}"
            );
        }
    }

    #[test]
    fn recursive_schemas_through_properties_are_fine_and_planned() {
        // A tree: recursion through a child location is cut by the walk, followed by the plan.
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {
                "dir": {"type": "string", "x-alephauto-path": "read"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }}}
        });
        let plan = PathPlan::build(&schema).unwrap();
        let value = json!({"dir": "/a", "children": [{"dir": "/b", "children": [{"dir": "/c"}]}, {"children": []}]});
        let found: Vec<String> = plan.paths(&value).into_iter().map(|(p, _)| p).collect();
        assert_eq!(found, ["/children/0/children/0/dir", "/children/0/dir", "/dir"]);
    }

    #[test]
    fn the_plan_finds_what_the_old_walk_found() {
        let schema = json!({
            "type": "object",
            "properties": {
                "top": {"type": "string", "x-alephauto-path": "write"},
                "label": {"type": "string"},
                "either": {"anyOf": [{"type": "string", "x-alephauto-path": "read"}, {"type": "integer"}]},
                "all": {"allOf": [{"$ref": "#/definitions/P"}]},
                "list": {"type": "array", "items": {"$ref": "#/$defs/Repo"}},
                "a/b~c": {"type": "string", "x-alephauto-path": "read"},
                "plain": {"type": "object", "properties": {"deep": {"type": "object"}}}
            },
            "$defs": {"Repo": {"oneOf": [{"properties": {"path": {"x-alephauto-path": "read"}}}, {"type": "null"}]}},
            "definitions": {"P": {"x-alephauto-path": "write"}}
        });
        let plan = PathPlan::build(&schema).unwrap();
        let value = json!({
            "top": "/t", "label": "/l", "either": "/e", "all": "/a",
            "list": [{"path": "/p0"}, null, {"path": 3}, {"path": "/p3", "other": "/x"}],
            "a/b~c": "/escaped", "plain": {"deep": {"x": "/no"}}
        });
        let mut found = plan.paths(&value);
        found.sort();
        let expected: Vec<(String, Access)> = [
            ("/all", Access::Write),
            ("/a~1b~0c", Access::Read),
            ("/either", Access::Read),
            ("/list/0/path", Access::Read),
            ("/list/3/path", Access::Read),
            ("/top", Access::Write),
        ]
        .into_iter()
        .map(|(p, a)| (p.to_string(), a))
        .collect();
        assert_eq!(found, expected);
        // Only the states leading to a mark are kept: "plain" and "label" are not walked.
        assert!(plan.states.iter().all(|s| !s.props.contains_key("plain") && !s.props.contains_key("label")));
        // A schema without marks plans to nothing, so applying it costs nothing.
        assert!(
            PathPlan::build(&json!({"type": "object", "properties": {"x": {"type": "string"}}})).unwrap().is_empty()
        );
    }

    #[test]
    fn applying_the_plan_is_linear_in_the_value() {
        // The issue's bomb shape but with a child step: fine to plan, and a big value is one pass.
        let schema = json!({"anyOf": [{"x-alephauto-path": "read"}, {"type": "array", "items": {"$ref": "#"}}]});
        let plan = PathPlan::build(&schema).unwrap();
        let value = Value::Array((0..50_000).map(|i| json!([format!("/v{i}")])).collect());
        let started = std::time::Instant::now();
        assert_eq!(plan.paths(&value).len(), 50_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
