//! The README edit itself, and deriving the project context from the files.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use alephauto_guest::walk::{EntryKind, Walker};
use alephauto_guest::{JobError, Reporter, ResultExt, lang, time};
use serde_json::{Value, json};

use crate::markdown;
use crate::schema::{self, ProjectContext};

const MARKER: &str = "<script type=\"application/ld+json\">";

/// Files looked at when guessing languages (enough for a ranking, cheap on big trees).
const LANGUAGE_SAMPLE: usize = 5_000;

/// Derives the context: manifests beside the README or at the root, the remote, languages by extension.
pub fn derive_context(
    readme: &Path,
    repo: &Path,
    remote: &dyn Fn(&Path) -> Option<String>,
    r: &dyn Reporter,
) -> ProjectContext {
    let dirs: Vec<&Path> = [readme.parent(), Some(repo)].into_iter().flatten().collect();
    let beside = |name: &str| dirs.iter().any(|d| d.join(name).is_file());
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    match Walker::new(repo).skip_dir_names(["node_modules", "vendor"]).walk() {
        Ok(walk) => {
            for entry in walk.filter_map(Result::ok).filter(|e| e.kind == EntryKind::File).take(LANGUAGE_SAMPLE) {
                if let Some(l) =
                    lang::language_for_extension(&lang::extension(&entry.relative)).filter(|l| lang::is_code(l))
                {
                    *counts.entry(l).or_default() += 1;
                }
            }
        }
        Err(e) => r.log(alephauto_guest::Level::Warn, &format!("language scan skipped: {e}")),
    }
    let mut languages: Vec<(&str, usize)> = counts.into_iter().collect();
    languages.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ProjectContext {
        has_package_json: beside("package.json"),
        has_pyproject: beside("pyproject.toml"),
        git_remote: remote(repo),
        languages: languages.into_iter().take(5).map(|(l, _)| l.to_owned()).collect(),
    }
}

/// Inserts the JSON-LD block into `readme` (unless already there or `dry_run`) and returns the result.
/// `repo` is the repository the README belongs to (its folder when there is none).
pub fn enhance(
    readme: &Path,
    repo: &Path,
    ctx: &ProjectContext,
    dry_run: bool,
    now: i64,
    r: &dyn Reporter,
) -> Result<Value, JobError> {
    let text = fs::read_to_string(readme).or_fail_with(|| format!("reading {}", readme.display()))?;
    let readme_str = readme.to_string_lossy().into_owned();
    if text.contains(MARKER) {
        r.progress(100, "already has schema markup");
        return Ok(json!({"status": "skipped", "reason": "Already has schema markup", "readmePath": readme_str}));
    }
    r.progress(40, "building schema");
    let folder = readme.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    let name = markdown::title(&text).or(folder).unwrap_or_else(|| "README".to_owned());
    let description = markdown::description(&text);
    let heading = markdown::first_heading(&text).map(|(_, t)| t).unwrap_or_default();
    // Judge the path from the repository's folder on, never by the folders above it.
    let in_repo = readme.strip_prefix(repo.parent().unwrap_or(repo)).unwrap_or(readme);
    let schema_type = schema::choose_type(&in_repo.to_string_lossy().replace('\\', "/"), &heading, &text, ctx);
    let schema = schema::build(schema_type, &name, description.as_deref(), ctx, &time::format_date(now));
    let validation = schema::validate(&schema);
    if !validation.valid {
        return Err(JobError::failed(format!("generated schema is invalid: {}", validation.errors.join("; "))));
    }
    let impact = schema::impact(&schema, &validation);
    let pretty = serde_json::to_string_pretty(&schema).or_fail("serialising the schema")?;
    let block = format!("{MARKER}\n{pretty}\n</script>");
    if !dry_run {
        r.progress(70, "writing README");
        let updated = markdown::insert_after_heading(&text, &block);
        fs::write(readme, updated).or_fail_with(|| format!("writing {}", readme.display()))?;
    }
    r.progress(100, if dry_run { "dry run: README unchanged" } else { "README enhanced" });
    Ok(json!({
        "status": if dry_run { "would_enhance" } else { "enhanced" },
        "readmePath": readme_str,
        "schemaType": schema_type,
        "schema": schema,
        "impact": impact,
        "validation": validation,
        "dryRun": dry_run,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alephauto_guest::Silent;

    const README: &str = "# Widget\n\nWidget turns sprockets into gears quickly.\n\n## Install\n\nnpm i widget\n";

    #[test]
    fn inserts_after_heading_then_skips_second_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let readme = dir.path().join("README.md");
        fs::write(&readme, README).expect("write");
        let ctx = ProjectContext { has_package_json: true, languages: vec!["JavaScript".into()], ..Default::default() };
        let out = enhance(&readme, dir.path(), &ctx, false, 1_735_689_600, &Silent).expect("enhance");
        assert_eq!(out["status"], "enhanced");
        assert_eq!(out["schemaType"], "SoftwareApplication");
        assert_eq!(out["schema"]["description"], "Widget turns sprockets into gears quickly.");
        let text = fs::read_to_string(&readme).expect("read");
        assert!(text.starts_with("# Widget\n\n<script type=\"application/ld+json\">\n{\n  \"@context\": \"https://schema.org\",\n  \"@type\": \"SoftwareApplication\","));
        assert!(text.contains("</script>\n\nWidget turns sprockets"));
        assert!(text.ends_with("## Install\n\nnpm i widget\n"));

        let again = enhance(&readme, dir.path(), &ctx, false, 1_735_689_600, &Silent).expect("second run");
        assert_eq!(again["status"], "skipped");
        assert_eq!(again["reason"], "Already has schema markup");
        assert_eq!(fs::read_to_string(&readme).expect("read"), text);
    }

    #[test]
    fn dry_run_leaves_the_file_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let readme = dir.path().join("README.md");
        fs::write(&readme, "No heading here but a long enough paragraph.\n").expect("write");
        let out = enhance(&readme, dir.path(), &ProjectContext::default(), true, 0, &Silent).expect("enhance");
        assert_eq!(out["status"], "would_enhance");
        assert_eq!(out["schemaType"], "TechArticle");
        assert_eq!(out["schema"]["dateModified"], "1970-01-01");
        let folder = dir.path().file_name().expect("name").to_string_lossy().into_owned();
        assert_eq!(out["schema"]["name"], folder);
        assert_eq!(fs::read_to_string(&readme).expect("read"), "No heading here but a long enough paragraph.\n");
    }

    #[test]
    fn derives_context_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("README.md"), README).expect("write");
        fs::write(root.join("pyproject.toml"), "[project]\n").expect("write");
        fs::create_dir_all(root.join("pkg")).expect("mkdir");
        for n in ["a.py", "b.py", "c.rs"] {
            fs::write(root.join("pkg").join(n), "x").expect("write");
        }
        let remote = |_: &Path| Some("https://example.org/o/r.git".to_owned());
        let c = derive_context(&root.join("README.md"), root, &remote, &Silent);
        assert!(c.has_pyproject && !c.has_package_json);
        assert_eq!(c.languages, vec!["Python", "Rust"]);
        assert_eq!(c.git_remote.as_deref(), Some("https://example.org/o/r.git"));
    }
}
