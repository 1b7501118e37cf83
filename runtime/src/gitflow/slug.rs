//! Job branch names: `<prefix>/<pipeline>-<slug ≤30>-<tag>`, the tag derived from the job id.

/// Longest slug put into a branch name.
pub(crate) const MAX_SLUG: usize = 30;

/// Lowercase `[a-z0-9-]`, runs of anything else as one dash, no edge dashes, ≤ `max` chars.
pub(crate) fn slug(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    // Truncation or a trailing separator can leave a dash at the end.
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The job branch name; the slug comes from `description`, else from `repo_name`.
pub(crate) fn branch_name(
    prefix: &str,
    pipeline: &str,
    description: Option<&str>,
    repo_name: &str,
    tag: &str,
) -> String {
    let from_description = description.map(|d| slug(d, MAX_SLUG)).filter(|s| !s.is_empty());
    let mut text = from_description.unwrap_or_else(|| slug(repo_name, MAX_SLUG));
    if text.is_empty() {
        text = "job".into();
    }
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { format!("{pipeline}-{text}-{tag}") } else { format!("{prefix}/{pipeline}-{text}-{tag}") }
}

/// A short tag naming one job in its branch: the same for every attempt of the job, and
/// only `[0-9a-f]` whatever the id holds.
pub(crate) fn job_tag(job_id: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(job_id.as_bytes());
    hex::encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_dashed_and_collapsed() {
        assert_eq!(slug("Fix the README!", 30), "fix-the-readme");
        assert_eq!(slug("  --Hello,,  World--  ", 30), "hello-world");
        assert_eq!(slug("a_b.c/d", 30), "a-b-c-d");
        assert_eq!(slug("Ünïcode café 42", 30), "n-code-caf-42");
        assert_eq!(slug("!!!", 30), "");
        assert_eq!(slug("", 30), "");
    }

    #[test]
    fn slugs_are_at_most_thirty_chars_without_a_trailing_dash() {
        let s = slug("Consolidate duplicated helpers across the whole repository", MAX_SLUG);
        assert!(s.len() <= 30, "{s}");
        assert_eq!(s, "consolidate-duplicated-helpers");
        // Cut exactly at a separator: no dash left at the end.
        let s = slug("abcdefghijklmnopqrstuvwxyz abcd efgh", MAX_SLUG);
        assert_eq!(s, "abcdefghijklmnopqrstuvwxyz-abc");
        let s = slug("abcdefghijklmnopqrstuvwxyz123 x", MAX_SLUG);
        assert_eq!(s, "abcdefghijklmnopqrstuvwxyz123");
        assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn job_tags_name_one_job_the_same_every_time() {
        let tag = job_tag("schema-enhancement-manual-1764375600123");
        assert_eq!(tag, job_tag("schema-enhancement-manual-1764375600123"));
        assert_ne!(tag, job_tag("schema-enhancement-manual-1764375600124"));
        assert_eq!(tag.len(), 12);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn branch_names_use_the_description_or_the_repository_folder() {
        assert_eq!(
            branch_name("consolidate", "duplicate-detection", Some("Merge dupes"), "My Repo", "17"),
            "consolidate/duplicate-detection-merge-dupes-17"
        );
        assert_eq!(branch_name("docs/", "schema", None, "My_Repo.rs", "5"), "docs/schema-my-repo-rs-5");
        assert_eq!(branch_name("docs", "schema", Some("???"), "proj", "5"), "docs/schema-proj-5");
        assert_eq!(branch_name("", "schema", None, "", "5"), "schema-job-5");
    }
}
