//! What keeps the secret check cheap on clean files: each rule's regex is compiled only the first
//! time a file could match it, and whether a file could is decided by one pass that finds the
//! literals every match must contain.
//!
//! Compiling every rule up front cost ~80 ms per job natively (a job is a fresh instance), most of
//! it the bounded repeats of Unicode classes in the URL rules, for files that almost never hold a
//! secret. The literals are ASCII and searched ASCII-case-insensitively, and none holds `k`, `s`
//! or `i` where a case-insensitive rule could match a non-ASCII letter (`K` Kelvin, `ſ` long s),
//! so a file the pre-check rejects cannot match the rule: the findings are unchanged.

use std::sync::{LazyLock, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::Regex;

/// A literal some rules need, one bit each in [`Hints`].
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Literal {
    /// `secret` in any case: the AWS rule (`SECRET|secret|Secret`), the disable comments.
    Secret,
    /// `PRIVATE KEY`: the private key rule.
    PrivateKey,
    /// The npm x-oauth-basic URL.
    XOauth,
    /// `_authToken=`: `.npmrc` tokens.
    AuthToken,
    /// `://`: basic auth in URLs.
    Scheme,
    /// Slack token prefixes.
    Xox,
    /// Slack app token prefix.
    Xapp,
    /// `//hoo` of `https://hooks.slack.com` (case-insensitive rule: no `k`/`s` in the literal).
    SlackHook,
    /// OpenAI keys' `T3BlbkFJ`.
    OpenAi,
    /// `mongodb` (case-insensitive rule; no letter of it folds to non-ASCII).
    Mongo,
    /// `ql://` of `mysql://`.
    MySql,
    /// `qlx://` of `mysqlx://`.
    MySqlX,
    /// `tgre` of `postgres`.
    Postgres,
}

const LITERALS: &[&str] = &[
    "secret",
    "private key",
    ":x-oauth-basic@github",
    "_authtoken=",
    "://",
    "xox",
    "xapp-",
    "//hoo",
    "t3blbkfj",
    "mongodb",
    "ql://",
    "qlx://",
    "tgre",
];

static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new().ascii_case_insensitive(true).build(LITERALS).expect("the literals are plain strings")
});

/// Which [`Literal`]s a text contains.
#[derive(Debug, Clone, Copy)]
pub struct Hints(u32);

impl Hints {
    /// One pass over `text`.
    pub fn of(text: &str) -> Self {
        let mut bits = 0u32;
        for m in FINDER.find_overlapping_iter(text) {
            bits |= 1 << m.pattern().as_u32();
        }
        Hints(bits)
    }

    /// Whether the text contains `literal` (case aside).
    pub fn has(self, literal: Literal) -> bool {
        self.0 & (1 << literal as u32) != 0
    }
}

/// A rule's regex, compiled on first use.
pub struct Lazy {
    pattern: String,
    regex: OnceLock<Regex>,
}

impl Lazy {
    /// A rule for `pattern` (compiled later).
    pub fn new(pattern: impl Into<String>) -> Self {
        Self { pattern: pattern.into(), regex: OnceLock::new() }
    }

    /// The compiled regex.
    pub fn get(&self) -> &Regex {
        self.regex.get_or_init(|| super::re(&self.pattern))
    }
}

/// Whether some ASCII-case-insensitive `word` in `text` is directly followed by one of `tails`
/// (compared ASCII-case-insensitively): the database rules' `scheme://`, whose regexes cost
/// 6-18 ms each to compile and whose scheme names turn up in prose and code often.
pub fn word_then(text: &str, word: &'static LazyLock<AhoCorasick>, tails: &[&str]) -> bool {
    let bytes = text.as_bytes();
    word.find_iter(text).any(|m| {
        let rest = &bytes[m.end()..];
        tails.iter().any(|t| rest.get(..t.len()).is_some_and(|r| r.eq_ignore_ascii_case(t.as_bytes())))
    })
}

fn ascii_ci(word: &str) -> AhoCorasick {
    AhoCorasickBuilder::new().ascii_case_insensitive(true).build([word]).expect("a plain string")
}

/// `mongodb`, then `://` or the `+` of `+srv://`.
pub static MONGO: LazyLock<AhoCorasick> = LazyLock::new(|| ascii_ci("mongodb"));
/// Tails after [`MONGO`].
pub const MONGO_TAILS: &[&str] = &["://", "+"];
/// `tgre` of `postgres`, then `s` (or the long s `ſ` a case-insensitive `s` also matches) and
/// `://` or `ql://`.
pub static POSTGRES: LazyLock<AhoCorasick> = LazyLock::new(|| ascii_ci("tgre"));
/// Tails after [`POSTGRES`].
pub const POSTGRES_TAILS: &[&str] = &["s://", "sql://", "\u{17f}://", "\u{17f}ql://"];

/// Whether some `://` is followed by `user:password@` as the basic-auth rule's classes allow
/// (a superset of its matches: lengths and the host are left to the regex).
pub fn credentials_after_scheme(text: &str) -> bool {
    let bytes = text.as_bytes();
    let class = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    memchr::memmem::find_iter(bytes, b"://").any(|at| {
        let user = &bytes[at + 3..];
        let u = user.iter().take_while(|b| class(b)).count();
        if u == 0 || user.get(u) != Some(&b':') {
            return false;
        }
        let pass = &user[u + 1..];
        let p = pass.iter().take_while(|b| class(b)).count();
        p > 0 && pass.get(p) == Some(&b'@')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_in_any_case_and_only_when_there() {
        let h = Hints::of("let url = \"MongoDB+SRV://u:p@h\"; // Postgres and MYSQLX://, HTTPS://HOOKS");
        for l in [Literal::Mongo, Literal::Postgres, Literal::MySqlX, Literal::Scheme, Literal::SlackHook] {
            assert!(h.has(l), "{l:?}");
        }
        for l in [Literal::Secret, Literal::PrivateKey, Literal::OpenAi, Literal::Xox, Literal::MySql] {
            assert!(!h.has(l), "{l:?}");
        }
        assert!(!Hints::of("").has(Literal::Scheme));
        assert!(word_then("x = 'PostGreSQL://u:p@h'", &POSTGRES, POSTGRES_TAILS));
        assert!(word_then("x = 'postgreſ://u:p@h'", &POSTGRES, POSTGRES_TAILS));
        assert!(!word_then("the postgres docs, https://postgresql.org", &POSTGRES, POSTGRES_TAILS));
        assert!(word_then("MONGODB+SRV://u:p@h", &MONGO, MONGO_TAILS));
        assert!(!word_then("MongoDB is a database", &MONGO, MONGO_TAILS));
    }

    #[test]
    fn the_basic_auth_pre_check_accepts_every_credential_url_shape() {
        assert!(credentials_after_scheme("see https://ab-c_1:pass-word_2@example.com/x"));
        assert!(credentials_after_scheme("https://nothing here, then ftp://a:b@c.d"));
        assert!(!credentials_after_scheme("https://example.com/path?q=a:b@c"));
        assert!(!credentials_after_scheme("https://user@example.com"));
        assert!(!credentials_after_scheme("https://:pw@example.com"));
        assert!(!credentials_after_scheme("https://user:@example.com"));
        assert!(!credentials_after_scheme("user:pw@example.com"));
    }
}
