//! The secret check the repomix CLI runs by default: secretlint 11's recommended preset, rule
//! for rule (AWS secret access keys, GCP service-account JSON, private keys, npm tokens, basic-auth
//! URLs, Slack tokens and webhooks, SendGrid, Shopify, GitHub, OpenAI, Anthropic, Linear,
//! 1Password service-account tokens, database connection strings with passwords) and the
//! `secretlint-disable` comments. A flagged file is left out of the pack and listed.
//!
//! The JavaScript rules use look-behind and look-ahead, which the `regex` crate does not have;
//! those rules find the token's maximal run and check its length and neighbours instead, which
//! accepts exactly what the look-around would.
//! Findings name the rule and the line, never the secret itself.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

mod gate;

use gate::{Hints, Lazy, Literal};
use serde::Serialize;

/// One finding in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, alephauto_guest::schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The secretlint rule (e.g. `@secretlint/secretlint-rule-github`).
    pub rule: String,
    /// What was found (without the secret).
    pub message: String,
    /// 1-based line of the finding.
    pub line: usize,
}

/// A raw report: rule id, message, byte range (as the JavaScript rule computes it).
struct Report {
    rule: &'static str,
    message: &'static str,
    range: (usize, usize),
}

const AWS: &str = "@secretlint/secretlint-rule-aws";
const PRIVATE_KEY: &str = "@secretlint/secretlint-rule-privatekey";
const NPM: &str = "@secretlint/secretlint-rule-npm";
const BASIC_AUTH: &str = "@secretlint/secretlint-rule-basicauth";
const SLACK: &str = "@secretlint/secretlint-rule-slack";
const SENDGRID: &str = "@secretlint/secretlint-rule-sendgrid";
const SHOPIFY: &str = "@secretlint/secretlint-rule-shopify";
const GITHUB: &str = "@secretlint/secretlint-rule-github";
const OPENAI: &str = "@secretlint/secretlint-rule-openai";
const ANTHROPIC: &str = "@secretlint/secretlint-rule-anthropic";
const LINEAR: &str = "@secretlint/secretlint-rule-linear";
const ONEPASSWORD: &str = "@secretlint/secretlint-rule-1password";
const DATABASE: &str = "@secretlint/secretlint-rule-database-connection-string";

/// The compiled rules (build once per job).
pub struct Scanner {
    aws_secret: Lazy,
    pem: Lazy,
    npm_xoauth: Lazy,
    npm_auth_token: Lazy,
    basic_auth: Lazy,
    slack_token: Lazy,
    slack_webhook: Lazy,
    openai: Lazy,
    mongodb: Lazy,
    mysql: Lazy,
    postgres: Lazy,
    disable_comment: Lazy,
    base64_line: Regex,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the tests; a failure here is a programming error.
    Regex::new(pattern).unwrap_or_else(|e| panic!("secret rule pattern {pattern:?}: {e}"))
}

/// JavaScript's `.` (any character but a line terminator).
const JS_DOT: &str = r"[^\n\r\u{2028}\u{2029}]";

impl Scanner {
    /// Compiles the rules.
    pub fn new() -> Self {
        let db = |scheme: &str| {
            Lazy::new(format!(
                r"(?i){scheme}://(?:(?P<user>[^:/\s]{{1,100}}):(?P<password>[^@/\s]{{1,200}})@)?[^/\s?]{{1,100}}(?:/[^?\s]{{0,100}})?(?:\?\S{{0,500}})?"
            ))
        };
        Self {
            aws_secret: Lazy::new(
                r#"["']?(?:AWS|aws|Aws)?_?(?:SECRET|secret|Secret)_?(?:ACCESS|access|Access)_?(?:KEY|key|Key)["']?\s*(?::|=>|=)\s*["']?([A-Za-z0-9/+=]{40})["']?(?-u:\b)"#,
            ),
            pem: Lazy::new(
                r"-----BEGIN[ ]?(?:(?:RSA|DSA|EC|OPENSSH|PGP) )?PRIVATE KEY(?: BLOCK)?-----\n?([A-Za-z0-9+/=\s\\]+?)\n?-----END[ ]?(?:(?:RSA|DSA|EC|OPENSSH|PGP) )?PRIVATE KEY(?: BLOCK)?-----",
            ),
            npm_xoauth: Lazy::new(format!(r"https?://({JS_DOT}{{1,256}}):x-oauth-basic@github{JS_DOT}com/")),
            npm_auth_token: Lazy::new(format!(r"_authToken=([^$\n\r\u{{2028}}\u{{2029}}]{JS_DOT}*)")),
            basic_auth: Lazy::new(
                r"(?:https?|ftp|ftps)://(?P<user>[-a-zA-Z0-9_]{1,256}):(?P<password>[-a-zA-Z0-9_]{1,256})@[-a-zA-Z0-9%._+~#=]{1,256}\.[a-zA-Z0-9()]{1,6}(?-u:\b)",
            ),
            slack_token: Lazy::new(
                r"(?-u:\b)(?:xoxb|xoxp|xapp|xoxa|xoxo|xoxr)-(?:\d-)?(?:[a-zA-Z0-9]{1,40}-)+[a-zA-Z0-9]{1,40}(?-u:\b)",
            ),
            slack_webhook: Lazy::new(
                r"(?i)https://hooks\.slack\.com/services/T[a-zA-Z0-9]{1,40}/B[a-zA-Z0-9]{1,40}/[a-zA-Z0-9]{1,40}",
            ),
            openai: Lazy::new(
                r"sk-(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})(?-u:\b)|sk-[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20}",
            ),
            mongodb: db(r"mongodb(?:\+srv)?"),
            mysql: db(r"(?:jdbc:)?mysql(?:x)?"),
            postgres: db(r"postgres(?:ql)?"),
            disable_comment: Lazy::new(format!(
                r"secretlint-(?P<kind>disable-next-line|disable-line|disable|enable)(?P<options>{JS_DOT}*)"
            )),
            base64_line: re(r"^[A-Za-z0-9+/]+=*$"),
        }
    }

    /// Findings in one file (`rel` is its path relative to the packed folder); empty when clean.
    pub fn scan(&self, rel: &str, text: &str) -> Vec<Finding> {
        let mut reports = Vec::new();
        let hints = Hints::of(text);
        self.aws(text, hints, &mut reports);
        // The GCP rule looks at `.p12` and `.json` extensions, but the CLI hands secretlint the
        // extension without its dot ("json"), so the rule never fires there; nor here.
        self.private_key(text, hints, &mut reports);
        self.npm(rel, text, hints, &mut reports);
        self.basic_auth(text, hints, &mut reports);
        self.slack(text, hints, &mut reports);
        sendgrid(text, &mut reports);
        token_runs(text, &mut reports);
        for m in hints.has(Literal::OpenAi).then(|| self.openai.get().find_iter(text)).into_iter().flatten() {
            reports.push(Report { rule: OPENAI, message: "OpenAI API key", range: (m.start(), m.end()) });
        }
        self.one_password(text, &mut reports);
        self.database(text, hints, &mut reports);
        if reports.is_empty() {
            return Vec::new();
        }
        let ignores = self.disabled_ranges(text);
        reports.retain(|r| {
            !ignores.iter().any(|(start, end, rule)| {
                *start <= r.range.0
                    && r.range.0 <= *end
                    && *start <= r.range.1
                    && r.range.1 <= *end
                    && (rule == "*" || rule == r.rule)
            })
        });
        reports.sort_by_key(|r| r.range);
        reports.dedup_by(|a, b| a.range == b.range && a.message == b.message);
        reports
            .into_iter()
            .map(|r| Finding {
                rule: r.rule.to_string(),
                message: r.message.to_string(),
                line: line_of(text, r.range.0),
            })
            .collect()
    }

    fn aws(&self, text: &str, hints: Hints, out: &mut Vec<Report>) {
        if !hints.has(Literal::Secret) {
            return;
        }
        for c in self.aws_secret.get().captures_iter(text) {
            let (Some(all), Some(key)) = (c.get(0), c.get(1)) else { continue };
            if key.as_str() == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" {
                continue;
            }
            out.push(Report {
                rule: AWS,
                message: "AWS secret access key",
                range: (all.start(), all.start() + key.len()),
            });
        }
    }

    fn private_key(&self, text: &str, hints: Hints, out: &mut Vec<Report>) {
        if !hints.has(Literal::PrivateKey) {
            return;
        }
        for c in self.pem.get().captures_iter(text) {
            let (Some(all), Some(body)) = (c.get(0), c.get(1)) else { continue };
            // The rule's body is 100 to 10,000 characters (the optional newlines around it included).
            if !(100..=10_002).contains(&body.len()) {
                continue;
            }
            let base64: String = body.as_str().replace("\\n", "").chars().filter(|c| !c.is_whitespace()).collect();
            let magic = base64.starts_with("MI") || base64.starts_with("b3BlbnNzaC1rZXktdjE");
            if base64.len() >= 100 && magic && self.base64_line.is_match(&base64) {
                out.push(Report { rule: PRIVATE_KEY, message: "private key", range: (all.start(), all.end()) });
            }
        }
    }

    fn npm(&self, rel: &str, text: &str, hints: Hints, out: &mut Vec<Report>) {
        if (rel.ends_with("package.json") || rel.ends_with("package-lock.json")) && hints.has(Literal::XOauth) {
            for c in self.npm_xoauth.get().captures_iter(text) {
                let (Some(all), Some(tok)) = (c.get(0), c.get(1)) else { continue };
                out.push(Report {
                    rule: NPM,
                    message: "GitHub x-oauth-basic token in a package file",
                    range: (all.start(), all.start() + tok.len()),
                });
            }
        } else if rel.ends_with(".npmrc") && hints.has(Literal::AuthToken) {
            for c in self.npm_auth_token.get().captures_iter(text) {
                let (Some(all), Some(tok)) = (c.get(0), c.get(1)) else { continue };
                out.push(Report {
                    rule: NPM,
                    message: "_authToken in .npmrc",
                    range: (all.start(), all.start() + tok.len()),
                });
            }
        }
        prefixed_runs(
            text,
            occurrences(text, "npm_"),
            |b| b.is_ascii_alphanumeric() || b == b'_',
            |run| run.len() == 36,
            |s, e| out.push(Report { rule: NPM, message: "npm access token", range: (s, e) }),
        );
    }

    fn basic_auth(&self, text: &str, hints: Hints, out: &mut Vec<Report>) {
        if !hints.has(Literal::Scheme) || !gate::credentials_after_scheme(text) {
            return;
        }
        const IGNORED: &[&str] = &[
            "localhost",
            "127.0.0.1",
            "password",
            "mypassword",
            "myusername",
            "{password}",
            "${password}",
            "{{password}}",
            "{username}",
            "${username}",
            "{{username}}",
            "YOUR_PASSWORD",
            "YOUR_USERNAME",
            "REPLACE_WITH_PASSWORD",
            "REPLACE_WITH_USERNAME",
        ];
        let builtin = |s: &str| {
            let lower = s.to_lowercase();
            IGNORED.iter().any(|p| lower.contains(&p.to_lowercase()))
        };
        for c in self.basic_auth.get().captures_iter(text) {
            let (Some(all), Some(user), Some(pass)) = (c.get(0), c.name("user"), c.name("password")) else { continue };
            let (user, pass) = (user.as_str(), pass.as_str());
            // The user and password classes hold no `$`, `{`, `%`: never variable-like here.
            if user.len() < 2 || builtin(user) {
                continue;
            }
            if pass.len() < 4 || builtin(pass) || all_same(pass) {
                continue;
            }
            out.push(Report {
                rule: BASIC_AUTH,
                message: "basic auth credential in a URL",
                range: (all.start(), all.end()),
            });
        }
    }

    fn slack(&self, text: &str, hints: Hints, out: &mut Vec<Report>) {
        if hints.has(Literal::Xox) || hints.has(Literal::Xapp) {
            for m in self.slack_token.get().find_iter(text) {
                out.push(Report { rule: SLACK, message: "Slack token", range: (m.start(), m.end()) });
            }
        }
        if !hints.has(Literal::SlackHook) {
            return;
        }
        for m in self.slack_webhook.get().find_iter(text) {
            out.push(Report { rule: SLACK, message: "Slack incoming webhook URL", range: (m.start(), m.end()) });
        }
    }

    fn one_password(&self, text: &str, out: &mut Vec<Report>) {
        let class = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        prefixed_runs(
            text,
            occurrences(text, "ops_"),
            class,
            |run| {
                let t = run.trim_end_matches('=');
                let pad = run.len() - t.len();
                pad <= 2
                    && t.starts_with("ey")
                    && t.ends_with("fQ")
                    && (104..=1284).contains(&t.len())
                    && json_object_base64(&run.replace('-', "+").replace('_', "/"))
            },
            |s, e| out.push(Report { rule: ONEPASSWORD, message: "1Password service account token", range: (s, e) }),
        );
    }

    fn database(&self, text: &str, hints: Hints, out: &mut Vec<Report>) {
        for (regex, message, could) in [
            (
                &self.mongodb,
                "MongoDB connection string with a password",
                hints.has(Literal::Mongo) && gate::word_then(text, &gate::MONGO, gate::MONGO_TAILS),
            ),
            (
                &self.mysql,
                "MySQL connection string with a password",
                hints.has(Literal::MySql) || hints.has(Literal::MySqlX),
            ),
            (
                &self.postgres,
                "PostgreSQL connection string with a password",
                hints.has(Literal::Postgres) && gate::word_then(text, &gate::POSTGRES, gate::POSTGRES_TAILS),
            ),
        ] {
            if !could {
                continue;
            }
            for c in regex.get().captures_iter(text) {
                let (Some(all), Some(_), Some(pass)) = (c.get(0), c.name("user"), c.name("password")) else { continue };
                if likely_real_db_password(pass.as_str()) {
                    out.push(Report { rule: DATABASE, message, range: (all.start(), all.end()) });
                }
            }
        }
    }

    /// `secretlint-disable…` comments: (start, end, rule or "*") ranges whose findings are dropped.
    fn disabled_ranges(&self, text: &str) -> Vec<(usize, usize, String)> {
        let mut ranges: Vec<(usize, Option<usize>, String)> = Vec::new();
        for c in self.disable_comment.get().captures_iter(text) {
            let (Some(all), Some(kind)) = (c.get(0), c.name("kind")) else { continue };
            let options = c.name("options").map_or("", |m| m.as_str());
            let rules_text = options.split_once("--").map_or(options, |(r, _)| r);
            let mut rules: Vec<String> =
                rules_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            let all_rules = rules.is_empty();
            if all_rules {
                rules.push("*".into());
            }
            match kind.as_str() {
                "disable-line" | "disable-next-line" => {
                    let mut line_start = text[..all.start()].rfind('\n').map_or(0, |i| i + 1);
                    if kind.as_str() == "disable-next-line" {
                        match text[all.start()..].find('\n') {
                            Some(i) => line_start = all.start() + i + 1,
                            None => continue,
                        }
                    }
                    let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
                    for r in rules {
                        ranges.push((line_start, Some(line_end), r));
                    }
                }
                "disable" => {
                    for r in rules {
                        ranges.push((all.start(), None, r));
                    }
                }
                _ => {
                    // enable: closes the matching open ranges (all of the last group when no rule is named).
                    if all_rules {
                        let mut group_start = None;
                        for r in ranges.iter_mut().rev() {
                            if group_start.is_some_and(|s| s != r.0) {
                                break;
                            }
                            if r.1.is_none() {
                                r.1 = Some(all.start());
                                group_start = Some(r.0);
                            }
                        }
                    } else {
                        for rule in rules {
                            if let Some(r) = ranges.iter_mut().rev().find(|r| r.1.is_none() && r.2 == rule) {
                                r.1 = Some(all.start());
                            }
                        }
                    }
                }
            }
        }
        ranges.into_iter().map(|(s, e, r)| (s, e.unwrap_or(text.len()), r)).collect()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count()
}

fn all_same(s: &str) -> bool {
    let mut chars = s.chars();
    let first = chars.next();
    s.chars().count() >= 4 && chars.all(|c| Some(c) == first)
}

fn likely_real_db_password(p: &str) -> bool {
    const IGNORED: &[&str] = &[
        "localhost",
        "127.0.0.1",
        "example.com",
        "example.org",
        "test.com",
        "password",
        "username",
        "secret",
        "mypassword",
        "myusername",
        "root",
        "admin",
        "user",
        "pass",
        "{password}",
        "${password}",
        "{{password}}",
        "{username}",
        "${username}",
        "{{username}}",
        "YOUR_PASSWORD",
        "YOUR_USERNAME",
        "REPLACE_WITH_PASSWORD",
    ];
    if p.chars().count() < 4 || variable_like(p) {
        return false;
    }
    let lower = p.to_lowercase();
    if IGNORED.iter().any(|i| lower == i.to_lowercase()) {
        return false;
    }
    !all_same(p)
}

/// `${var}`, `{{var}}`, `{var}`, `%VAR%`, `$VAR`, `$(var)`.
fn variable_like(s: &str) -> bool {
    static PATTERNS: std::sync::LazyLock<Vec<Regex>> = std::sync::LazyLock::new(|| {
        [
            r"\$\{[^}]{1,50}\}",
            r"\{\{[^}]{1,50}\}\}",
            r"\{[^}]{1,50}\}",
            r"%[A-Z_]{1,30}%",
            r"\$[A-Z_]{1,30}",
            r"\$\([^)]{1,50}\)",
        ]
        .iter()
        .map(|p| re(p))
        .collect()
    });
    PATTERNS.iter().any(|r| r.is_match(s))
}

/// Every prefix [`token_runs`] looks for, in the order its rules report.
const PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "shppa_",
    "shpca_",
    "shpat_",
    "shpss_",
    "lin_api_",
    "sk-ant-api0",
];

/// One automaton for all of [`PREFIXES`]: a single pass over the text instead of one per prefix
/// (those passes were most of the secret check's time).
static PREFIX_FINDER: LazyLock<AhoCorasick> =
    LazyLock::new(|| AhoCorasick::new(PREFIXES).expect("the token prefixes are plain strings"));

/// Every `(prefix, start)` of one prefix in the text.
fn occurrences<'p>(text: &str, prefix: &'p str) -> impl Iterator<Item = (&'p str, usize)> {
    memchr::memmem::find_iter(text.as_bytes(), prefix.as_bytes()).map(move |start| (prefix, start))
}

/// For every occurrence `(prefix, start)` not preceded by a letter, the maximal run of `class`
/// bytes after the prefix; `accept(run)` decides, `report(start, end)` records the token's range.
fn prefixed_runs<'p>(
    text: &str,
    hits: impl Iterator<Item = (&'p str, usize)>,
    class: impl Fn(u8) -> bool,
    accept: impl Fn(&str) -> bool,
    mut report: impl FnMut(usize, usize),
) {
    let bytes = text.as_bytes();
    for (prefix, start) in hits {
        if text[..start].chars().next_back().is_some_and(char::is_alphabetic) {
            continue;
        }
        let run_start = start + prefix.len();
        let run_end = run_start + bytes[run_start..].iter().take_while(|&&b| class(b)).count();
        if accept(&text[run_start..run_end]) {
            report(start, run_end);
        }
    }
}

/// GitHub, Shopify, Linear and Anthropic tokens: a prefix and a run of a fixed class whose length
/// is in a range, not followed by another class character.
fn token_runs(text: &str, out: &mut Vec<Report>) {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    // Every occurrence of every prefix (overlapping too), by prefix then position: the order
    // the searches prefix by prefix found them in.
    let mut hits: Vec<(usize, usize)> =
        PREFIX_FINDER.find_overlapping_iter(text).map(|m| (m.pattern().as_usize(), m.start())).collect();
    hits.sort_unstable();
    let of = |prefixes: &[&str]| {
        let first = PREFIXES.iter().position(|p| *p == prefixes[0]).unwrap_or(PREFIXES.len());
        let wanted = first..first + prefixes.len();
        hits.iter().filter(move |(p, _)| wanted.contains(p)).map(|&(p, start)| (PREFIXES[p], start))
    };
    prefixed_runs(
        text,
        of(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
        word,
        |r| r.len() == 36,
        |s, e| out.push(Report { rule: GITHUB, message: "GitHub token", range: (s, e) }),
    );
    prefixed_runs(
        text,
        of(&["github_pat_"]),
        word,
        |r| r.len() == 82,
        |s, e| out.push(Report { rule: GITHUB, message: "GitHub fine-grained token", range: (s, e) }),
    );
    prefixed_runs(
        text,
        of(&["shppa_", "shpca_", "shpat_", "shpss_"]),
        |b| b.is_ascii_alphanumeric(),
        |r| (32..=64).contains(&r.len()),
        |s, e| out.push(Report { rule: SHOPIFY, message: "Shopify token", range: (s, e) }),
    );
    prefixed_runs(
        text,
        of(&["lin_api_"]),
        word,
        |r| (32..=128).contains(&r.len()),
        |s, e| out.push(Report { rule: LINEAR, message: "Linear API token", range: (s, e) }),
    );
    // `sk-ant-api0<digit>-` then 90-128 characters and `AA` ending the run.
    let anthropic_class = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    prefixed_runs(
        text,
        of(&["sk-ant-api0"]),
        anthropic_class,
        |r| {
            let b = r.as_bytes();
            b.len() >= 2
                && b[0].is_ascii_digit()
                && b[1] == b'-'
                && r.ends_with("AA")
                && (92..=130).contains(&(r.len() - 2))
        },
        |s, e| out.push(Report { rule: ANTHROPIC, message: "Anthropic API key", range: (s, e) }),
    );
}

/// SendGrid: `SG.` + word run + `.` + word run (optionally `-` + word run), 69 characters in all.
fn sendgrid(text: &str, out: &mut Vec<Report>) {
    let bytes = text.as_bytes();
    let word_run =
        |from: usize| from + bytes[from..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
    for start in memchr::memmem::find_iter(bytes, b"SG.") {
        if text[..start].chars().next_back().is_some_and(char::is_alphabetic) {
            continue;
        }
        let a_end = word_run(start + 3);
        let a_len = a_end - start - 3;
        if !(1..=128).contains(&a_len) || bytes.get(a_end) != Some(&b'.') {
            continue;
        }
        let b_end = word_run(a_end + 1);
        let b_len = b_end - a_end - 1;
        if b_len == 0 {
            continue;
        }
        // Greedy: `\w{1,128}` `-` `\w{1,128}` when a dash follows; else two word runs (maybe `_`).
        let mut end = None;
        if bytes.get(b_end) == Some(&b'-') && b_len <= 128 {
            let c_end = word_run(b_end + 1);
            if (1..=128).contains(&(c_end - b_end - 1)) {
                end = Some(c_end);
            }
        }
        if end.is_none() && (2..=257).contains(&b_len) {
            end = Some(b_end);
        }
        if let Some(end) = end
            && end - start == 69
        {
            out.push(Report { rule: SENDGRID, message: "SendGrid API key", range: (start, end) });
        }
    }
}

/// `atob` then `JSON.parse` gives an object (or array).
fn json_object_base64(s: &str) -> bool {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return false;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // atob yields one character per byte (Latin-1).
    let latin1: String = out.iter().map(|&b| b as char).collect();
    serde_json::from_str::<serde_json::Value>(&latin1).is_ok_and(|v| v.is_object() || v.is_array())
}

#[cfg(test)]
#[path = "secrets/tests.rs"]
mod tests;
