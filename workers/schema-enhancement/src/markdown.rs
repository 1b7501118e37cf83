//! Reading a README: the first heading, the first real paragraph, and where to insert.

/// Index and text of the first ATX heading outside code fences.
pub fn first_heading(text: &str) -> Option<(usize, String)> {
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let hashes = t.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
            let title = t[hashes..].trim().trim_end_matches('#').trim();
            return Some((i, title.to_owned()));
        }
    }
    None
}

/// The text of the first `# ` (level 1) heading outside code fences (a `# comment` in a
/// shell snippet is not a title).
pub fn title(text: &str) -> Option<String> {
    let mut in_fence = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(rest) = t.strip_prefix("# ") {
            let title = rest.trim().trim_end_matches('#').trim();
            if !title.is_empty() {
                return Some(title.to_owned());
            }
        }
    }
    None
}

/// First paragraph of over 10 characters after the title, cut to 200 characters with `...`.
pub fn description(text: &str) -> Option<String> {
    let start = first_heading(text).map_or(0, |(i, _)| i + 1);
    let mut paragraph: Vec<&str> = Vec::new();
    let mut in_fence = false;
    let mut candidates = Vec::new();
    for line in text.lines().skip(start) {
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            candidates.push(std::mem::take(&mut paragraph).join(" "));
            continue;
        }
        let structural = t.starts_with('#')
            || t.starts_with('<')
            || t.starts_with("![")
            || t.starts_with("[![")
            || t.starts_with('|')
            || t.starts_with("---");
        if in_fence || t.is_empty() || structural {
            candidates.push(std::mem::take(&mut paragraph).join(" "));
            continue;
        }
        paragraph.push(t);
    }
    candidates.push(paragraph.join(" "));
    let found = candidates.into_iter().find(|p| p.chars().count() > 10)?;
    Some(if found.chars().count() > 200 {
        format!("{}...", found.chars().take(197).collect::<String>())
    } else {
        found
    })
}

/// Inserts `block` after the first heading line (at the top when there is none), with blank lines around it.
pub fn insert_after_heading(text: &str, block: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (head, rest) = match first_heading(text) {
        Some((i, _)) => lines.split_at(i + 1),
        None => lines.split_at(0),
    };
    let mut out = String::with_capacity(text.len() + block.len() + 4);
    for l in head {
        out.push_str(l);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !head.is_empty() {
        out.push('\n');
    }
    out.push_str(block.trim_end_matches('\n'));
    out.push('\n');
    // Do not double an existing blank line after the heading.
    if rest.first().is_none_or(|l| !l.trim().is_empty()) {
        out.push('\n');
    }
    for l in rest {
        out.push_str(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_title_and_description() {
        let text = "[![ci](x)](y)\n# My Tool #\n\n![logo](l.png)\n\nShort.\n\nThis tool packs\nrepositories for AI.\n\n## Usage\n";
        assert_eq!(title(text).as_deref(), Some("My Tool"));
        assert_eq!(title("## Setup\n\n```sh\n# install it\nnpm i\n```\n\n# Real\n").as_deref(), Some("Real"));
        assert_eq!(title("## Setup\n\n```sh\n# install it\n```\n"), None);
        assert_eq!(first_heading(text).map(|h| h.0), Some(1));
        assert_eq!(description(text).as_deref(), Some("This tool packs repositories for AI."));
        let long = format!("# T\n\n{}\n", "word ".repeat(60));
        let d = description(&long).expect("description");
        assert_eq!(d.chars().count(), 200);
        assert!(d.ends_with("..."));
    }

    #[test]
    fn inserts_after_first_heading_or_at_top() {
        let block = "<script>\n{}\n</script>";
        assert_eq!(insert_after_heading("# T\n\nBody\n", block), "# T\n\n<script>\n{}\n</script>\n\nBody\n");
        assert_eq!(insert_after_heading("# T\nBody\n", block), "# T\n\n<script>\n{}\n</script>\n\nBody\n");
        assert_eq!(insert_after_heading("Body\n", block), "<script>\n{}\n</script>\n\nBody\n");
        assert_eq!(
            insert_after_heading("```\n# not\n```\n## Real\nx\n", block),
            "```\n# not\n```\n## Real\n\n<script>\n{}\n</script>\n\nx\n"
        );
    }
}
