use super::*;

/// (name, file, text, the rule that must flag it or None), each checked against secretlint 11.7.1's
/// recommended preset as the repomix 1.14.1 CLI runs it (same verdicts, same rules).
const SAMPLES: &[(&str, &str, &str, Option<&str>)] = &[
    ("aws", "config.py", "aws_secret_access_key = \"abcdefghijABCDEFGHIJ0123456789abcdefghij\"", Some("aws")),
    ("aws-example", "config.py", "aws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"", None),
    (
        "privatekey",
        "key.pem",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n-----END RSA PRIVATE KEY-----\n",
        Some("privatekey"),
    ),
    ("privatekey-neg", "key.md", "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n", None),
    ("npm", "a.js", "const t = 'npm_abcdefghijABCDEFGHIJ0123456789abcdef';", Some("npm")),
    ("npm-neg", "a.js", "const t = 'npm_abcdefghijABCDEFGHIJ0123456789abcdefg';", None),
    ("npmrc", ".npmrc", "//registry.npmjs.org/:_authToken=abc123def456\n", Some("npm")),
    ("npmrc-neg", ".npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n", None),
    ("xoauth", "package.json", "{\"repository\": \"https://abcdef123:x-oauth-basic@github.com/o/r.git\"}", Some("npm")),
    ("xoauth-neg", "README.md", "see https://abcdef123:x-oauth-basic@github.com/o/r.git", Some("basicauth")),
    ("basicauth", "a.sh", "curl https://deploy:s3cr3tPass@example.com/path", Some("basicauth")),
    ("basicauth-neg", "a.sh", "curl https://user:password@example.com/path", None),
    ("slack", "a.txt", "token xoxb-1234567890-abcdefABCDEF", Some("slack")),
    ("slack-neg", "a.txt", "token xoxz-1234567890-abcdefABCDEF", None),
    ("webhook", "a.txt", "https://hooks.slack.com/services/T0000AAAA/B0000BBBB/XXXXXXXXXXXXXXXX", Some("slack")),
    ("webhook-neg", "a.txt", "https://hooks.slack.com/services/X0000AAAA/B0000BBBB/XXXXXXXXXXXXXXXX", None),
    (
        "sendgrid",
        "a.txt",
        "key SG.aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        Some("sendgrid"),
    ),
    ("sendgrid-neg", "a.txt", "key SG.aaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", None),
    ("shopify", "a.txt", "shpat_0123456789abcdef0123456789abcdef", Some("shopify")),
    ("shopify-neg", "a.txt", "shpat_0123456789abcdef0123456789abcde", None),
    ("github", "a.txt", "ghp_abcdefghijABCDEFGHIJ0123456789abcdef", Some("github")),
    ("github-neg", "a.txt", "xghp_abcdefghijABCDEFGHIJ0123456789abcdef", None),
    (
        "github-pat",
        "a.txt",
        "github_pat_abcdefghijABCDEFGHIJ0123456789abcdefghijABCDEFGHIJ0123456789abcdefghijABCDEFGHIJ01",
        Some("github"),
    ),
    ("openai", "a.txt", "sk-aaaaaaaaaaaaaaaaaaaaT3BlbkFJbbbbbbbbbbbbbbbbbbbb", Some("openai")),
    ("openai-neg", "a.txt", "sk-aaaaaaaaaaaaaaaaaaaT3BlbkFJbbbbbbbbbbbbbbbbbbbb", None),
    (
        "anthropic",
        "a.txt",
        "sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxAA",
        Some("anthropic"),
    ),
    (
        "anthropic-neg",
        "a.txt",
        "sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxAA",
        None,
    ),
    ("linear", "a.txt", "lin_api_abcdefghijABCDEFGHIJ01234567890123456789", Some("linear")),
    ("linear-neg", "a.txt", "lin_api_abcdefghijABCDEFGHIJ0123456789", None),
    (
        "1password",
        "a.txt",
        "OP_TOKEN=ops_eyJzaWduSW5BZGRyZXNzIjoibXkuMXBhc3N3b3JkLmNvbSIsInVzZXJBdXRoIjp7Im1ldGhvZCI6IlNSUGctNDA5NiIsImFsZyI6IlBCRVMyZy1IUzI1NiIsIml0ZXJhdGlvbnMiOjY1MDAwMCwic2FsdCI6ImFiY2RlZmdoIn0sImVtYWlsIjoieHhAZXhhbXBsZS5jb20ifQ==",
        Some("1password"),
    ),
    (
        "1password-neg",
        "a.txt",
        "OP_TOKEN=ops_eyNOTJSONAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAfQ",
        None,
    ),
    (
        "postgres",
        "a.env",
        "DATABASE_URL=postgres://app:Xk9vLq2w@db.internal:5432/prod",
        Some("database-connection-string"),
    ),
    ("postgres-neg", "a.env", "DATABASE_URL=postgres://app:password@db.internal:5432/prod", None),
    (
        "mongodb",
        "a.env",
        "MONGO=mongodb+srv://app:Xk9vLq2w@cluster0.example.net/db",
        Some("database-connection-string"),
    ),
    ("mysql", "a.env", "jdbc:mysql://app:Xk9vLq2w@db:3306/x", Some("database-connection-string")),
    // The URL rules ignore case: the literal pre-check (secrets/gate.rs) must not skip these.
    ("mysqlx-upper", "a.env", "URL=MySQLX://app:Xk9vLq2w@db:3306/x", Some("database-connection-string")),
    ("postgres-upper", "a.env", "URL=PostgreSQL://app:Xk9vLq2w@db/prod", Some("database-connection-string")),
    (
        "mongodb-upper",
        "a.env",
        "URL=MONGODB://app:Xk9vLq2w@cluster0.example.net/db",
        Some("database-connection-string"),
    ),
    (
        "disable-next-line",
        "a.js",
        "// secretlint-disable-next-line\nconst t = 'ghp_abcdefghijABCDEFGHIJ0123456789abcdef';\n",
        None,
    ),
    (
        "disable-block",
        "a.js",
        "/* secretlint-disable */\nconst t = 'ghp_abcdefghijABCDEFGHIJ0123456789abcdef';\n/* secretlint-enable */\n",
        Some("github"),
    ),
    (
        "disable-other-rule",
        "a.js",
        "// secretlint-disable-next-line @secretlint/secretlint-rule-npm\nconst t = 'ghp_abcdefghijABCDEFGHIJ0123456789abcdef';\n",
        Some("github"),
    ),
    (
        "gcp-json",
        "sa.json",
        "{\"type\": \"service_account\", \"private_key_id\": \"abc\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\"}",
        None,
    ),
];

#[test]
fn every_rule_flags_its_positive_and_not_its_negative() {
    let scanner = Scanner::new();
    for (name, path, text, want) in SAMPLES {
        let findings = scanner.scan(path, text);
        let rules: Vec<&str> =
            findings.iter().map(|f| f.rule.trim_start_matches("@secretlint/secretlint-rule-")).collect();
        match want {
            Some(rule) => {
                assert!(rules.contains(rule), "{name}: expected {rule}, got {rules:?}");
                // A GitHub URL with `user:token@` is also a basic-auth credential; the npm rule only
                // looks at package files.
                if *name == "xoauth-neg" {
                    assert!(!rules.contains(&"npm"), "{name}: {rules:?}");
                }
            }
            None => assert!(findings.is_empty(), "{name}: expected nothing, got {findings:?}"),
        }
    }
}

#[test]
fn findings_name_the_line_and_never_hold_the_secret() {
    let token = format!("ghp_{}", "a".repeat(36));
    let text = format!("line one\nconst t = '{token}';\n");
    let findings = Scanner::new().scan("a.ts", &text);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].line, 2);
    assert!(!findings[0].message.contains(&token));
}

#[test]
fn clean_source_is_not_flagged() {
    let text = include_str!("../select.rs");
    assert!(Scanner::new().scan("select.rs", text).is_empty());
}
