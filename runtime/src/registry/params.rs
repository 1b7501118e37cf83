//! A worker's parameter schema, compiled once when the worker loads and run on every
//! trigger. The schema comes from the (untrusted) guest: it is compiled on its own, with no
//! loader for `$ref`s to files or URLs.

use serde_json::Value;

use super::worker::ParamError;

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
}

impl std::fmt::Debug for ParamSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamSchema").finish_non_exhaustive()
    }
}

impl ParamSchema {
    /// Compiles `schema`, checked against its draft's meta-schema; the error names the problem.
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        let mut compiler = boon::Compiler::new();
        compiler.use_loader(Box::new(NoExternalRefs));
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.add_resource(SCHEMA_URL, schema.clone()).map_err(|e| e.to_string())?;
        let mut schemas = boon::Schemas::new();
        let index = compiler.compile(SCHEMA_URL, &mut schemas).map_err(|e| format!("{e:#}"))?;
        Ok(Self { schemas, index })
    }

    /// The first problem with `params`, if any.
    pub(crate) fn check(&self, params: &Value) -> Result<(), ParamError> {
        self.schemas.validate(params, self.index).map_err(|e| param_error(&e))
    }
}

/// Names the parameter of the first leaf error and says what is wrong with it.
fn param_error(err: &boon::ValidationError<'_, '_>) -> ParamError {
    let mut leaf = err;
    while let Some(first) = leaf.causes.first() {
        leaf = first;
    }
    let location = leaf.instance_location.to_string();
    let at = location.trim_start_matches('/');
    let under = |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}/{name}") };
    match &leaf.kind {
        boon::ErrorKind::AdditionalProperties { got } if !got.is_empty() => {
            ParamError { field: under(&got[0]), message: "is not a known parameter".into() }
        }
        boon::ErrorKind::Required { want } if !want.is_empty() => {
            ParamError { field: under(want[0]), message: "is required".into() }
        }
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
        }))
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
    fn a_schema_may_not_reach_outside_itself() {
        let err = ParamSchema::compile(&json!({"$ref": "file:///etc/passwd"})).unwrap_err();
        assert!(err.contains("self-contained"), "{err}");
        assert!(ParamSchema::compile(&json!({"type": "objekt"})).is_err(), "checked against the meta-schema");
    }

    #[test]
    fn a_declared_draft_needs_no_loader() {
        for draft in ["http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"] {
            let s = ParamSchema::compile(&json!({"$schema": draft, "type": "object", "required": ["a"]}))
                .unwrap_or_else(|e| panic!("{draft}: {e}"));
            assert_eq!(s.check(&json!({})).unwrap_err().field, "a");
        }
    }
}
