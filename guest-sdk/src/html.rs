//! Self-contained HTML reports: escaping for text and attribute values, and the page shell
//! (inline CSS, no script, a restrictive `Content-Security-Policy` meta) every report shares.
//!
//! Hand-written rather than a crate: escaping is five replacements, and a template engine would
//! add compile time and component size to every worker for no gain. Everything a repository
//! supplies (file names, contents, author names) must go through [`escape`] before it is written.

use std::fmt::Write as _;

/// `s` with `& < > " '` replaced by entities: safe as element text and as a quoted attribute
/// value (single or double quotes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // NUL and other C0 controls (but tab and newlines) are not allowed in HTML text.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The CSS every report starts with; a report appends its own through [`page`].
const BASE_CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}\
h3{font-size:15px;margin:18px 0 6px}.meta{color:#59636e;margin:0 0 16px}\
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 16px}\
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}\
.card b{display:block;font-size:20px}.card span{color:#59636e;font-size:12px}\
.note{background:#fff8c5;border:1px solid #d4a72c66;border-radius:6px;padding:6px 10px}";

/// The Content-Security-Policy a report declares for itself: nothing loads, nothing runs, even
/// when the file is opened from disk instead of through the server (which sends its own).
pub const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// A whole HTML document: `title` (escaped here), the base CSS plus `css` (trusted: the
/// worker's own), and `body` (already-escaped markup built by the worker).
pub fn page(title: &str, css: &str, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + BASE_CSS.len() + css.len() + 512);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{REPORT_CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{BASE_CSS}{css}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    );
    s
}

/// Appends a row of summary cards: `(label, value)` pairs, both escaped.
pub fn cards(out: &mut String, items: &[(&str, String)]) {
    out.push_str("<div class=\"cards\">");
    for (label, value) in items {
        let _ = write!(out, "<div class=\"card\"><b>{}</b><span>{}</span></div>", escape(value), escape(label));
    }
    out.push_str("</div>\n");
}

/// A table cell alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text, left-aligned.
    Left,
    /// Numbers, right-aligned.
    Right,
}

/// Appends a table: `head` is `(heading, alignment)`, each row one cell per heading; every
/// heading and cell is escaped.
pub fn table(out: &mut String, head: &[(&str, Align)], rows: impl IntoIterator<Item = Vec<String>>) {
    let class = |a: Align| if a == Align::Right { " class=\"num\"" } else { "" };
    out.push_str("<table>\n<thead><tr>");
    for (h, a) in head {
        let _ = write!(out, "<th{}>{}</th>", class(*a), escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let a = head.get(i).map_or(Align::Left, |h| h.1);
            let _ = write!(out, "<td{}>{}</td>", class(a), escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\"\0"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;\u{fffd}"
        );
        assert_eq!(escape("tab\tnew\nline é"), "tab\tnew\nline é");
    }

    #[test]
    fn a_page_is_self_contained_and_escapes_its_parts() {
        let mut body = String::new();
        cards(&mut body, &[("<b>files</b>", "3".into())]);
        table(&mut body, &[("Path", Align::Left), ("Bytes", Align::Right)], [vec!["<img src=x>".into(), "7".into()]]);
        let html = page("a <title>", ".x{}", &body);
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>a &lt;title&gt;</title>"));
        assert!(html.contains(&format!("content=\"{REPORT_CSP}\"")));
        assert!(html.contains("<td>&lt;img src=x&gt;</td><td class=\"num\">7</td>"), "{html}");
        assert!(html.contains("<span>&lt;b&gt;files&lt;/b&gt;</span>"));
        for forbidden in ["<script", "<img", "<link", "src=\"http", "@import", "url("] {
            assert!(!html.contains(forbidden), "{forbidden} in {html}");
        }
    }
}
