//! Choosing the Schema.org type, building the JSON-LD, validating and scoring it.

use alephauto_guest::schemars;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Facts about the project the README belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectContext {
    /// A package.json sits beside the README or at the repository root.
    #[serde(default)]
    pub has_package_json: bool,
    /// A pyproject.toml sits beside the README or at the repository root.
    #[serde(default)]
    pub has_pyproject: bool,
    /// URL of the `origin` remote.
    #[serde(default)]
    pub git_remote: Option<String>,
    /// Programming languages, most used first.
    #[serde(default)]
    pub languages: Vec<String>,
}

fn has_word(haystack: &str, word: &str) -> bool {
    haystack.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == word)
}

/// Whether a word of `s` starts with "test" (test, tests, `__tests__`, testing; not latest or contest).
fn mentions_testing(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w.starts_with("test"))
}

/// The Schema.org type, by the spec's precedence (testing, API, package, tutorial, remote, article).
///
/// `readme_path` is the README's path from its repository's folder on (`repo/docs/README.md`):
/// the folders above the repository say nothing about what the README is about.
pub fn choose_type(readme_path: &str, title: &str, text: &str, ctx: &ProjectContext) -> &'static str {
    let path = readme_path.to_ascii_lowercase();
    let title = title.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    // "About testing" means the path or the title says so; a Testing section alone does not.
    if mentions_testing(&path) || mentions_testing(&title) {
        return "HowTo";
    }
    if has_word(&title, "api") || text.contains("api reference") || has_word(&text, "endpoints") {
        return "APIReference";
    }
    if ctx.has_package_json || ctx.has_pyproject {
        return "SoftwareApplication";
    }
    if ["tutorial", "getting started", "guide"].iter().any(|w| text.contains(w)) {
        return "HowTo";
    }
    if ctx.git_remote.is_some() {
        return "SoftwareSourceCode";
    }
    "TechArticle"
}

/// `git@host:owner/repo.git` and `https://host/owner/repo.git` become `https://host/owner/repo`.
pub fn repository_url(remote: &str) -> String {
    let r = remote.trim();
    let r = r.strip_suffix(".git").unwrap_or(r);
    if let Some((host, path)) = r.strip_prefix("git@").and_then(|rest| rest.split_once(':')) {
        return format!("https://{host}/{path}");
    }
    if let Some(rest) = r.strip_prefix("ssh://git@") {
        return format!("https://{rest}");
    }
    r.to_owned()
}

/// Builds the JSON-LD object.
pub fn build(schema_type: &str, name: &str, description: Option<&str>, ctx: &ProjectContext, date: &str) -> Value {
    let mut m = Map::new();
    m.insert("@context".into(), json!("https://schema.org"));
    m.insert("@type".into(), json!(schema_type));
    m.insert("name".into(), json!(name));
    if let Some(d) = description {
        m.insert("description".into(), json!(d));
    }
    match schema_type {
        "SoftwareApplication" | "SoftwareSourceCode" => {
            if let Some(remote) = &ctx.git_remote {
                m.insert("codeRepository".into(), json!(repository_url(remote)));
            }
            match ctx.languages.as_slice() {
                [] => {}
                [one] => {
                    m.insert("programmingLanguage".into(), json!(one));
                }
                many => {
                    m.insert("programmingLanguage".into(), json!(many));
                }
            }
            if schema_type == "SoftwareApplication" {
                m.insert("applicationCategory".into(), json!("DeveloperApplication"));
                m.insert("operatingSystem".into(), json!("Cross-platform"));
            }
        }
        _ => {
            m.insert("dateModified".into(), json!(date));
            m.insert("inLanguage".into(), json!("en-US"));
        }
    }
    Value::Object(m)
}

/// Result of checking the JSON-LD.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Validation {
    /// No errors.
    pub valid: bool,
    /// Missing `@context` or `@type`.
    pub errors: Vec<String>,
    /// Missing `name` or `description`.
    pub warnings: Vec<String>,
}

/// Missing `@context`/`@type` are errors, missing `name`/`description` warnings.
pub fn validate(schema: &Value) -> Validation {
    let present = |k: &str| schema.get(k).is_some_and(|v| v.as_str().is_none_or(|s| !s.is_empty()));
    let errors: Vec<String> =
        ["@context", "@type"].iter().filter(|k| !present(k)).map(|k| format!("Missing required field: {k}")).collect();
    let warnings = ["name", "description"]
        .iter()
        .filter(|k| !present(k))
        .map(|k| format!("Missing recommended field: {k}"))
        .collect();
    Validation { valid: errors.is_empty(), errors, warnings }
}

/// How much the markup is worth (0-100) and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    /// 0-100.
    pub score: u8,
    /// excellent ≥ 80, good ≥ 60, fair ≥ 40, else poor.
    pub rating: &'static str,
    /// Fields beyond `@context`/`@type`.
    pub fields_filled: usize,
    /// Fields that would raise the score.
    pub missing_fields: Vec<&'static str>,
}

/// Scores: 40 for a valid base, 15 each for name and description, the rest for type-specific fields.
pub fn impact(schema: &Value, validation: &Validation) -> Impact {
    let has = |k: &str| schema.get(k).is_some();
    let specific: &[&'static str] = match schema.get("@type").and_then(Value::as_str) {
        Some("SoftwareApplication") => {
            &["codeRepository", "programmingLanguage", "applicationCategory", "operatingSystem"]
        }
        Some("SoftwareSourceCode") => &["codeRepository", "programmingLanguage"],
        _ => &["dateModified", "inLanguage"],
    };
    let mut score = if validation.valid { 40u32 } else { 0 };
    let mut missing = Vec::new();
    for k in ["name", "description"] {
        if has(k) { score += 15 } else { missing.push(k) }
    }
    let filled_specific = specific.iter().filter(|k| has(k)).count() as u32;
    score += 30 * filled_specific / specific.len() as u32;
    missing.extend(specific.iter().filter(|k| !has(k)));
    let score = score.min(100) as u8;
    let rating = match score {
        80.. => "excellent",
        60.. => "good",
        40.. => "fair",
        _ => "poor",
    };
    let fields_filled = schema.as_object().map_or(0, |m| m.keys().filter(|k| !k.starts_with('@')).count());
    Impact { score, rating, fields_filled, missing_fields: missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ProjectContext {
        ProjectContext::default()
    }

    #[test]
    fn type_precedence_follows_the_spec() {
        let pkg = ProjectContext { has_package_json: true, ..ctx() };
        let remote = ProjectContext { git_remote: Some("git@github.com:o/r.git".into()), ..ctx() };
        assert_eq!(choose_type("/r/tests/README.md", "T", "", &pkg), "HowTo");
        assert_eq!(choose_type("r/README.md", "Testing guide", "", &pkg), "HowTo");
        assert_eq!(choose_type("r/__tests__/README.md", "T", "", &pkg), "HowTo");
        assert_eq!(choose_type("latest-widget/README.md", "Latest widget", "", &pkg), "SoftwareApplication");
        assert_eq!(choose_type("/r/README.md", "Payments API", "", &pkg), "APIReference");
        assert_eq!(choose_type("/r/README.md", "T", "See the endpoints below", &ctx()), "APIReference");
        assert_eq!(choose_type("/r/README.md", "T", "a guide", &pkg), "SoftwareApplication");
        assert_eq!(choose_type("/r/README.md", "T", "Getting Started", &remote), "HowTo");
        assert_eq!(choose_type("/r/README.md", "T", "rapid capital", &remote), "SoftwareSourceCode");
        assert_eq!(choose_type("/r/README.md", "T", "notes", &ctx()), "TechArticle");
    }

    #[test]
    fn builds_validates_and_scores() {
        let c = ProjectContext {
            has_package_json: true,
            git_remote: Some("git@github.com:o/r.git".into()),
            languages: vec!["TypeScript".into()],
            ..ctx()
        };
        let s = build("SoftwareApplication", "R", Some("Does things well."), &c, "2025-01-02");
        assert_eq!(s["codeRepository"], "https://github.com/o/r");
        assert_eq!(s["programmingLanguage"], "TypeScript");
        assert_eq!(s["operatingSystem"], "Cross-platform");
        let v = validate(&s);
        assert!(v.valid && v.warnings.is_empty());
        assert_eq!(impact(&s, &v).score, 100);

        let a = build("TechArticle", "N", None, &ctx(), "2025-01-02");
        assert_eq!(a["dateModified"], "2025-01-02");
        let v = validate(&a);
        assert_eq!(v.warnings, vec!["Missing recommended field: description"]);
        let i = impact(&a, &v);
        assert_eq!((i.score, i.rating), (85, "excellent"));
        assert!(!validate(&json!({"name": "x"})).valid);
    }
}
