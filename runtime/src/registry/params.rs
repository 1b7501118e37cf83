//! A worker's parameter schema, compiled once when the worker loads and run on every
//! trigger. The schema comes from the (untrusted) guest: it is compiled on its own, with no
//! loader for `$ref`s to files or URLs.

use serde_json::Value;

use super::worker::ParamError;

/// Largest parameter object accepted, serialised (the request body cap is separate).
pub(crate) const MAX_PARAMS_BYTES: usize = 256 * 1024;
/// Most JSON values (objects, arrays, scalars) in one parameter object.
pub(crate) const MAX_PARAM_VALUES: usize = 20_000;
/// Longest string (value or property name) when the schema matches strings against regular
/// expressions: the `regex` crate boon uses runs in linear time, but its constant for a large
/// pattern is high (`[\p{L}\p{N}]{1,200}Z` costs microseconds per byte), so the input is
/// what keeps each validation provably short.
pub(crate) const MAX_PATTERN_STRING_BYTES: usize = 8 * 1024;
/// All string bytes together, in that case.
pub(crate) const MAX_PATTERN_TOTAL_BYTES: usize = 32 * 1024;

/// Where the schema is registered; only a name, never fetched.
const SCHEMA_URL: &str = "urn:alephauto:parameters";

/// Resolves no `$ref` outside the schema itself (the default loader reads local files).
struct NoExternalRefs;

impl boon::UrlLoader for NoExternalRefs {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("external reference {url}: parameter schemas must be self-contained").into())
    }
}

/// A compiled parameter schema (JSON Schema draft 2020-12 unless it says otherwise).
pub(crate) struct ParamSchema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
    /// Whether strings are matched against regular expressions (caps them, see above).
    uses_patterns: bool,
}

impl std::fmt::Debug for ParamSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamSchema").finish_non_exhaustive()
    }
}

impl ParamSchema {
    /// Compiles `schema`, checked against its draft's meta-schema; the error names the problem.
    /// `uses_patterns` comes from the load-time walk (`grants::PathPlan::stats`).
    pub(crate) fn compile(schema: &Value, uses_patterns: bool) -> Result<Self, String> {
        let mut compiler = boon::Compiler::new();
        compiler.use_loader(Box::new(NoExternalRefs));
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.add_resource(SCHEMA_URL, schema.clone()).map_err(|e| e.to_string())?;
        let mut schemas = boon::Schemas::new();
        let index = compiler.compile(SCHEMA_URL, &mut schemas).map_err(|e| format!("{e:#}"))?;
        Ok(Self { schemas, index, uses_patterns })
    }

    /// The first problem with `params`, if any: the size caps first, then the schema.
    pub(crate) fn check(&self, params: &Value) -> Result<(), ParamError> {
        check_size(params, self.uses_patterns)?;
        self.schemas.validate(params, self.index).map_err(|e| param_error(&e))
    }
}

/// Counts serialised bytes, failing once past the cap so a huge value is not written out.
struct CappedCount(usize);

impl std::io::Write for CappedCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 > MAX_PARAMS_BYTES {
            return Err(std::io::Error::other("over the cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The input caps that bound what validating `params` can cost, whatever the schema.
fn check_size(params: &Value, uses_patterns: bool) -> Result<(), ParamError> {
    let too_big = || ParamError {
        field: "parameters".into(),
        message: format!("are larger than {} KiB serialised (host limit)", MAX_PARAMS_BYTES / 1024),
    };
    // Iterative: the caller may hand in a value nested deeper than the stack likes.
    let mut stack: Vec<(&Value, String)> = vec![(params, String::new())];
    let (mut values, mut string_bytes) = (0usize, 0usize);
    let mut string = |at: &str, s: &str, what: &str| -> Result<(), ParamError> {
        string_bytes += s.len();
        if s.len() > MAX_PATTERN_STRING_BYTES {
            return Err(ParamError {
                field: if at.is_empty() { "parameters".into() } else { at.to_string() },
                message: format!(
                    "{what} is {} bytes; this pipeline's schema matches strings against patterns, so each may be at most {} bytes",
                    s.len(),
                    MAX_PATTERN_STRING_BYTES
                ),
            });
        }
        if string_bytes > MAX_PATTERN_TOTAL_BYTES {
            return Err(ParamError {
                field: "parameters".into(),
                message: format!(
                    "hold more than {} KiB of text; this pipeline's schema matches strings against patterns, which caps the total",
                    MAX_PATTERN_TOTAL_BYTES / 1024
                ),
            });
        }
        Ok(())
    };
    while let Some((value, at)) = stack.pop() {
        values += 1;
        if values > MAX_PARAM_VALUES {
            return Err(ParamError {
                field: "parameters".into(),
                message: format!("hold more than {MAX_PARAM_VALUES} JSON values (host limit)"),
            });
        }
        match value {
            Value::String(s) if uses_patterns => string(&at, s, "the value")?,
            Value::Object(map) => {
                for (k, v) in map {
                    let child = if at.is_empty() { k.clone() } else { format!("{at}/{k}") };
                    if uses_patterns {
                        string(&child, k, "the property name")?;
                    }
                    stack.push((v, child));
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    stack.push((v, if at.is_empty() { i.to_string() } else { format!("{at}/{i}") }));
                }
            }
            _ => {}
        }
    }
    serde_json::to_writer(CappedCount(0), params).map_err(|_| too_big())
}

/// Names the parameter of the first leaf error and says what is wrong with it.
fn param_error(err: &boon::ValidationError<'_, '_>) -> ParamError {
    let mut leaf = err;
    while let Some(first) = leaf.causes.first() {
        leaf = first;
    }
    let location = leaf.instance_location.to_string();
    let at = location.trim_start_matches('/');
    let under = |name: &str| {
        if at.is_empty() { name.to_string() } else { format!("{at}/{name}") }
    };
    match &leaf.kind {
        boon::ErrorKind::AdditionalProperties { got } if !got.is_empty() => {
            ParamError { field: under(&got[0]), message: "is not a known parameter".into() }
        }
        boon::ErrorKind::Required { want } if !want.is_empty() => {
            ParamError { field: under(want[0]), message: "is required".into() }
        }
        // A `false` subschema (e.g. `then: {properties: {x: false}}`) forbids the parameter here.
        boon::ErrorKind::FalseSchema if !at.is_empty() => {
            ParamError { field: at.to_string(), message: "is not allowed with the other parameters given".into() }
        }
        // Said without the value: boon's own messages start by quoting it whole.
        boon::ErrorKind::Pattern { want, .. } => ParamError {
            field: if at.is_empty() { "parameters".to_string() } else { at.to_string() },
            message: format!("does not match the pattern {:?}", crate::sandbox::grants::shorten(want, 100)),
        },
        boon::ErrorKind::Format { want, .. } => ParamError {
            field: if at.is_empty() { "parameters".to_string() } else { at.to_string() },
            message: format!("is not a valid {want}"),
        },
        kind => {
            let field = if at.is_empty() { "parameters".to_string() } else { at.to_string() };
            ParamError { field, message: kind.to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> ParamSchema {
        ParamSchema::compile(&json!({
            "type": "object",
            "properties": {
                "mode": {"enum": ["fast", "slow"]},
                "count": {"type": "integer", "minimum": 1},
                "repos": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
            },
            "required": ["mode"],
            "additionalProperties": false
        }), false)
        .unwrap()
    }

    #[test]
    fn each_error_names_the_parameter_it_is_about() {
        let s = schema();
        assert!(s.check(&json!({"mode": "fast", "count": 2})).is_ok());
        let cases = [
            (json!({}), "mode", "is required"),
            (json!({"mode": "sideways"}), "mode", "value must be one of"),
            (json!({"mode": "fast", "count": "two"}), "count", "want integer, but got string"),
            (json!({"mode": "fast", "count": 0}), "count", "must be >=1"),
            (json!({"mode": "fast", "extra": 1}), "extra", "is not a known parameter"),
            (json!({"mode": "fast", "repos": [{"path": "a"}, {}]}), "repos/1/path", "is required"),
        ];
        for (params, field, message) in cases {
            let err = s.check(&params).unwrap_err();
            assert_eq!(err.field, field, "{params}: {err}");
            assert!(err.message.contains(message), "{params}: {err}");
        }
    }

    #[test]
    fn a_parameter_forbidden_beside_another_is_named() {
        let s = ParamSchema::compile(
            &json!({
                "type": "object",
                "properties": {"one": {"type": "string"}, "other": {"type": "string"}},
                "if": {"required": ["other"]},
                "then": {"properties": {"one": false}}
            }),
            false,
        )
        .unwrap();
        assert!(s.check(&json!({"one": "x"})).is_ok());
        let err = s.check(&json!({"one": "x", "other": "y"})).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            ("one", "is not allowed with the other parameters given")
        );
    }

    #[test]
    fn a_schema_may_not_reach_outside_itself() {
        let err = ParamSchema::compile(&json!({"$ref": "file:///etc/passwd"}), false).unwrap_err();
        assert!(err.contains("self-contained"), "{err}");
        assert!(ParamSchema::compile(&json!({"type": "objekt"}), false).is_err(), "checked against the meta-schema");
    }

    #[test]
    fn a_declared_draft_needs_no_loader() {
        for draft in ["http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"] {
            let s = ParamSchema::compile(&json!({"$schema": draft, "type": "object", "required": ["a"]}), false)
                .unwrap_or_else(|e| panic!("{draft}: {e}"));
            assert_eq!(s.check(&json!({})).unwrap_err().field, "a");
        }
    }

    /// The issue's pattern: linear in the input, but microseconds per byte.
    const HEAVY: &str = r"[\p{L}\p{N}]{1,200}Z";

    fn heavy() -> ParamSchema {
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "pattern": HEAVY}}});
        let uses = crate::sandbox::grants::PathPlan::build(&schema).unwrap().stats().uses_patterns;
        assert!(uses, "the walk notices the pattern");
        ParamSchema::compile(&schema, uses).unwrap()
    }

    #[test]
    fn strings_checked_against_patterns_are_capped_before_the_regex_runs() {
        let s = heavy();
        let started = std::time::Instant::now();
        let err = s.check(&json!({"name": "a".repeat(1_000_000)})).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "refused before matching");
        assert_eq!(err.field, "name");
        assert!(err.message.contains("at most 8192 bytes"), "{err}");
        assert!(err.message.len() < 200, "the value is not echoed: {err}");
        // Many strings just under the per-string cap hit the total cap.
        let many: serde_json::Map<String, Value> =
            (0..10).map(|i| (format!("k{i}"), json!("a".repeat(8000)))).collect();
        let err = s.check(&Value::Object(many)).unwrap_err();
        assert!(err.message.contains("32 KiB"), "{err}");
        // Property names count too (patternProperties match them).
        let err = s.check(&json!({ "k".repeat(9000): 1 })).unwrap_err();
        assert!(err.message.contains("property name"), "{err}");
    }

    #[test]
    fn the_worst_input_under_the_caps_validates_quickly() {
        let s = heavy();
        // Every string at the per-string cap, up to the total cap: the most regex work allowed.
        let mut worst = serde_json::Map::new();
        worst.insert("name".into(), json!("a".repeat(MAX_PATTERN_STRING_BYTES)));
        let started = std::time::Instant::now();
        let err = s.check(&Value::Object(worst)).unwrap_err();
        let one = started.elapsed();
        assert!(err.message.contains("does not match"), "{err}");
        eprintln!("pattern over {MAX_PATTERN_STRING_BYTES} bytes: {one:?}");
        // The total cap allows 8 such strings: generous bound for a debug build on a busy machine.
        let times = (MAX_PATTERN_TOTAL_BYTES / MAX_PATTERN_STRING_BYTES) as u32;
        assert!(one * times < std::time::Duration::from_secs(2), "{one:?} per string");
    }

    #[test]
    fn parameters_are_capped_in_size_and_count_whatever_the_schema() {
        let s = schema();
        let big = json!({"mode": "fast", "repos": [{"path": "x".repeat(300 * 1024)}]});
        assert!(s.check(&big).unwrap_err().message.contains("256 KiB"));
        let many: Vec<Value> = (0..25_000).map(|_| json!(0)).collect();
        let err = s.check(&json!({"mode": "fast", "repos": many})).unwrap_err();
        assert!(err.message.contains("20000 JSON values"), "{err}");
        // Without patterns, long strings are fine.
        assert!(s.check(&json!({"mode": "fast", "repos": [{"path": "x".repeat(100 * 1024)}]})).is_ok());
    }
}
