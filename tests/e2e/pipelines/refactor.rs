//! test-refactor: a small vitest suite with repeated patterns; analysis counts,
//! recommendations, helper files written only where absent, dry run writes nothing.

use serde_json::json;

use super::{config, p, read, run_ok, snapshot};
use crate::support::{Server, init_repo, write_tree};

/// One test; every pattern occurs once per copy.
const CASE: &str = "it('renders the page', async () => {
  render(<Page />);
  await waitFor(() => screen.getByText('Welcome to Widgets'));
  expect(screen.getByRole('link', { name: 'Docs' })).toHaveAttribute('href', '/docs');
  expect(screen.getByRole('heading', { name: 'Widgets' })).toBeVisible();
  fireEvent.change(screen.getByLabelText('Email'), { target: { value: 'a@b.c' } });
});
";

fn suite(copies: usize) -> String {
    format!(
        "import {{ describe, it, expect }} from 'vitest';\n\ndescribe('page', () => {{\n{}}});\n",
        CASE.repeat(copies)
    )
}

#[tokio::test]
async fn test_refactor_counts_patterns_and_writes_missing_helpers_once() {
    let server = Server::start(&config(&["test-refactor"]));
    let repo = server.dir.join("web");
    write_tree(
        &repo,
        &[
            (
                "package.json",
                r#"{"name": "web", "devDependencies": {"vitest": "^2.0.0", "@playwright/test": "^1.40.0"}}"#,
            ),
            ("tests/home.test.jsx", &suite(2)),
            ("tests/nested/about.spec.jsx", &suite(2)),
            ("src/widget.test.js", &suite(2)),
            // Not test files, or not where tests are looked for:
            ("tests/setup.js", &suite(5)),
            ("tests/node_modules/lib/x.test.js", &suite(5)),
            ("other/elsewhere.test.js", &suite(5)),
            // A helper the user already wrote: never overwritten.
            ("tests/utils/index.js", "// mine\n"),
        ],
    );
    init_repo(&repo);
    let utils = repo.join("tests/utils");

    // Dry run: the analysis and the files it would write; nothing changes on disk.
    let before = snapshot(&repo);
    let job = run_ok(
        &server,
        "test-refactor",
        json!({"repositoryPath": p(&repo), "dryRun": true}),
        "4 helper files would be written",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["status"], "dry_run", "{r}");
    assert_eq!(r["framework"], "vitest", "vitest wins over @playwright/test");
    assert_eq!(r["testFiles"], 3, "{r}");
    assert_eq!(
        r["analysis"],
        json!({
            "renderWaitFor": 6, "linkAssertions": 6, "headingChecks": 6, "formInteractions": 6,
            "repeatedStrings": [{"text": "Welcome to Widgets", "count": 6}],
            "repeatedExpects": [
                {"text": "expect(screen.getByRole('heading', { name: 'Widgets' })).toBeVisible();", "count": 6},
                {"text": "expect(screen.getByRole('link', { name: 'Docs' })).toHaveAttribute('href', '/docs');", "count": 6}
            ]
        }),
        "{r}"
    );
    let patterns: Vec<&str> =
        r["recommendations"].as_array().unwrap().iter().map(|x| x["pattern"].as_str().unwrap()).collect();
    assert_eq!(
        patterns,
        vec![
            "renderWaitFor",
            "linkAssertions",
            "headingChecks",
            "formInteractions",
            "repeatedStrings",
            "repeatedExpects"
        ]
    );
    let helpers = ["assertions.js", "semantic-validators.js", "form-helpers.js", "test-constants.js"];
    let would: Vec<String> = helpers.iter().map(|h| p(&utils.join(h))).collect();
    assert_eq!(r["generatedFiles"], json!(would), "{r}");
    assert_eq!(r["existingFiles"], json!([p(&utils.join("index.js"))]));
    assert_eq!(snapshot(&repo), before, "a dry run writes nothing");

    // Real run: the four missing helpers are written; index.js is left alone.
    let job = run_ok(&server, "test-refactor", json!({"repositoryPath": p(&repo)}), "4 helper files written").await;
    let r = &job["result"];
    assert_eq!(r["status"], "completed");
    assert_eq!(r["generatedFiles"], json!(would));
    for h in helpers {
        assert!(utils.join(h).is_file(), "{h}");
    }
    assert_eq!(read(utils.join("index.js")), "// mine\n");
    assert!(read(utils.join("assertions.js")).contains("import { expect } from 'vitest';"));
    assert!(
        read(utils.join("assertions.js")).contains("export function expectLink(element, href)"),
        "plain JS, no types"
    );
    assert!(read(utils.join("test-constants.js")).contains("WELCOME_TO_WIDGETS: \"Welcome to Widgets\","));
    assert!(read(utils.join("form-helpers.js")).contains("export async function renderAndWait"));
    assert!(!utils.join("assertions.ts").exists());

    // Edit one helper, run again: nothing generated, nothing overwritten.
    std::fs::write(utils.join("assertions.js"), "// edited by hand\n").unwrap();
    let settled = snapshot(&repo);
    let job = run_ok(&server, "test-refactor", json!({"repositoryPath": p(&repo)}), "0 helper files written").await;
    assert_eq!(job["result"]["generatedFiles"], json!([]));
    assert_eq!(job["result"]["existingFiles"].as_array().unwrap().len(), 5);
    assert_eq!(snapshot(&repo), settled);
    assert_eq!(read(utils.join("assertions.js")), "// edited by hand\n");
}

#[tokio::test]
async fn test_refactor_uses_typescript_custom_folders_and_reports_empty_suites() {
    let server = Server::start(&config(&["test-refactor"]));
    let repo = server.dir.join("app");
    write_tree(
        &repo,
        &[
            ("package.json", r#"{"devDependencies": {"@playwright/test": "^1.40.0"}}"#),
            ("tsconfig.json", "{}"),
            (
                "e2e/login.spec.ts",
                "test('login', async ({ page }) => {\n  await page.getByLabel('User').fill('me');\n});\n",
            ),
            ("spec/unit.test.ts", "it('adds', () => { expect(1 + 1).toBe(2); });\n"),
        ],
    );
    let job = run_ok(
        &server,
        "test-refactor",
        json!({"repositoryPath": p(&repo), "testsDir": "spec", "e2eDir": "e2e", "utilsDir": "spec/support"}),
        "5 helper files written",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["framework"], "playwright", "{r}");
    assert_eq!(r["testFiles"], 2);
    assert_eq!(r["analysis"]["formInteractions"], 1);
    assert_eq!(r["recommendations"], json!([]), "nothing occurs over five times");
    let support = repo.join("spec/support");
    for h in ["assertions.ts", "semantic-validators.ts", "form-helpers.ts", "test-constants.ts", "index.ts"] {
        assert!(support.join(h).is_file(), "{h}");
    }
    assert!(read(support.join("form-helpers.ts")).contains("import type { Page } from '@playwright/test';"));
    assert!(!repo.join("tests").exists());

    let empty = server.dir.join("empty");
    write_tree(&empty, &[("package.json", "{}"), ("src/index.js", "export {}\n")]);
    let job = run_ok(&server, "test-refactor", json!({"repositoryPath": p(&empty)}), "no test files found").await;
    assert_eq!(job["result"]["status"], "no_tests");
    assert_eq!(job["result"]["framework"], "jest");
    assert!(!empty.join("tests").exists(), "nothing written for an empty suite");
}
