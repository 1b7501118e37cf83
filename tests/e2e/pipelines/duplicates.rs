//! duplicate-detection: a block planted in two files is found with its exact line ranges,
//! vendored and gitignored copies are not, reports are written; inter-project mode flags
//! groups that span repositories.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{config, p, read, run_ok};
use crate::support::{Server, init_repo, write_tree};

/// 9 lines, 7 of them significant (the lone braces are not).
const BLOCK: &str = "function totalPrice(items, taxRate) {
  let subtotal = 0;
  for (const item of items) {
    subtotal += item.price * item.quantity;
  }
  const tax = subtotal * taxRate;
  const shipping = subtotal > 100 ? 0 : 9.99;
  return subtotal + tax + shipping;
}
";

/// A second, different block (for a group inside one repository).
const OTHER: &str = "def parse_rows(text):
    rows = text.splitlines()
    cleaned = [row.strip() for row in rows]
    kept = [row for row in cleaned if row]
    pairs = [row.split('=', 1) for row in kept]
    result = {key.strip(): value.strip() for key, value in pairs}
    return result
";

fn occurrences(dup: &Value) -> BTreeSet<(String, String, u64, u64)> {
    dup["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["repository"].as_str().unwrap_or_default().to_string(),
                o["file"].as_str().unwrap().to_string(),
                o["startLine"].as_u64().unwrap(),
                o["endLine"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, u64, u64)]) -> BTreeSet<(String, String, u64, u64)> {
    items.iter().map(|(r, f, s, e)| (r.to_string(), f.to_string(), *s, *e)).collect()
}

#[tokio::test]
async fn duplicate_detection_finds_a_planted_block_with_its_line_ranges_and_writes_reports() {
    let server = Server::start(&config(&["duplicate-detection"]));
    let repo = server.dir.join("shop");
    write_tree(
        &repo,
        &[
            // The block starts on line 4 here and on line 3 in lib/cart.js.
            (
                "src/checkout.js",
                &format!(
                    "const config = loadConfig();\nconst region = config.region;\n\n{BLOCK}\nexport const ready = region.length > 0;\n"
                ),
            ),
            ("lib/cart.js", &format!("const cart = createCart();\n\n{BLOCK}export default cart;\n")),
            (
                "src/unique.js",
                "const alpha = 1;\nconst beta = alpha + 2;\nconst gamma = beta * 3;\nconst delta = gamma - 4;\nconst epsilon = delta / 5;\nconst zeta = epsilon % 6;\n",
            ),
            // Copies the scan must not see: vendored, gitignored, and not code.
            ("node_modules/pricing/index.js", BLOCK),
            ("ignored/copy.js", BLOCK),
            (".gitignore", "ignored/\n"),
            ("README.md", &format!("# Shop\n\n```js\n{BLOCK}```\n\n```js\n{BLOCK}```\n")),
        ],
    );
    init_repo(&repo);

    let job = run_ok(
        &server,
        "duplicate-detection",
        json!({"scanType": "intra-project", "repositoryPath": p(&repo)}),
        "scan complete",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["scanType"], "intra-project");
    assert_eq!(r["repository"]["path"], p(&repo));
    assert_eq!(r["repository"]["name"], "shop");
    assert_eq!(r["stats"]["filesScanned"], 3, "vendored, ignored and markdown copies are skipped: {r}");
    let dups = r["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 1, "exactly the planted block: {r}");
    let d = &dups[0];
    assert_eq!(d["id"], "dup-1");
    assert_eq!(occurrences(d), set(&[("shop", "src/checkout.js", 4, 11), ("shop", "lib/cart.js", 3, 10)]), "{d}");
    assert_eq!(d["lines"], 8);
    assert_eq!(d["impactScore"], 8, "lines x (occurrences - 1)");
    assert!(d["tokens"].as_u64().unwrap() > 20, "{d}");
    assert_eq!(d["crossRepository"], false);
    assert_eq!(r["suggestions"][0]["duplicateId"], "dup-1");
    assert_eq!(r["suggestions"][0]["type"], "extract-module");
    assert!(r["duration"].is_u64());

    // The reports exist where the result says, inside this job's output folder.
    let out = server.data_dir().join("outputs").join(job["id"].as_str().unwrap());
    let json_path = r["reportPaths"]["json"].as_str().unwrap();
    let md_path = r["reportPaths"]["markdown"].as_str().unwrap();
    assert!(std::path::Path::new(json_path).starts_with(&out), "{json_path}");
    let report: Value = serde_json::from_str(&read(json_path)).unwrap();
    assert_eq!(report["duplicates"], r["duplicates"]);
    let md = read(md_path);
    assert!(md.contains("shop:lib/cart.js:3-10") && md.contains("shop:src/checkout.js:4-11"), "{md}");

    // Structural mode finds a renamed copy that exact mode does not.
    let renamed = BLOCK.replace("subtotal", "sum").replace("taxRate", "rate").replace("9.99", "4.5");
    write_tree(&repo, &[("lib/cart.js", "const cart = createCart();\n"), ("src/renamed.js", &renamed)]);
    let exact = run_ok(&server, "duplicate-detection", json!({"repositoryPath": p(&repo)}), "scan complete").await;
    assert_eq!(exact["result"]["duplicates"], json!([]), "{}", exact["result"]);
    let structural = run_ok(
        &server,
        "duplicate-detection",
        json!({"repositoryPath": p(&repo), "mode": "structural"}),
        "scan complete",
    )
    .await;
    assert_eq!(structural["result"]["duplicates"].as_array().map(Vec::len), Some(1), "{}", structural["result"]);
    let d = &structural["result"]["duplicates"][0];
    assert_eq!(occurrences(d), set(&[("shop", "src/checkout.js", 4, 11), ("shop", "src/renamed.js", 1, 8)]), "{d}");
}

#[tokio::test]
async fn duplicate_detection_inter_project_flags_groups_across_repositories() {
    let server = Server::start(&config(&["duplicate-detection"]));
    let (one, two) = (server.dir.join("one"), server.dir.join("two"));
    write_tree(
        &one,
        &[
            ("web/price.js", &format!("// pricing\n{BLOCK}")),
            ("etl/a.py", &format!("import os\n\n{OTHER}")),
            ("etl/b.py", &format!("{OTHER}\nprint(parse_rows(os.environ['ROWS']))\n")),
            ("etl/c.py", OTHER),
        ],
    );
    write_tree(&two, &[("src/total.js", &format!("const unrelated = true;\n{BLOCK}"))]);

    let job = run_ok(
        &server,
        "duplicate-detection",
        json!({"scanType": "inter-project", "repositories": [{"name": "storefront", "path": p(&one)}, {"path": p(&two)}]}),
        "scan complete",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["scanType"], "inter-project");
    assert_eq!(r["repositories"], json!([{"name": "storefront", "path": p(&one)}, {"name": "two", "path": p(&two)}]));
    let dups = r["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 2, "{r}");
    // The cross-repository group ranks first although the in-repository one has the higher impact.
    assert_eq!(dups[0]["crossRepository"], true, "{r}");
    assert_eq!(occurrences(&dups[0]), set(&[("storefront", "web/price.js", 2, 9), ("two", "src/total.js", 2, 9)]));
    assert_eq!(dups[1]["crossRepository"], false);
    assert_eq!(
        occurrences(&dups[1]),
        set(&[("storefront", "etl/a.py", 3, 9), ("storefront", "etl/b.py", 1, 7), ("storefront", "etl/c.py", 1, 7)])
    );
    assert!(dups[1]["impactScore"].as_u64() > dups[0]["impactScore"].as_u64(), "{r}");
    assert_eq!(r["stats"]["crossRepositoryGroups"], 1);
    assert_eq!(r["suggestions"][0]["type"], "shared-package");
    assert_eq!(r["suggestions"][1]["type"], "extract-module");
    let md = read(r["reportPaths"]["markdown"].as_str().unwrap());
    assert!(md.contains("storefront:web/price.js:2-9<br>two:src/total.js:2-9"), "{md}");
}
