//! duplicate-detection: a block planted in two files is found with its exact line ranges (as
//! a token clone and as a duplicated function), vendored and gitignored copies are not, reports
//! are written; renamed copies are found in structural mode; results are paged with exact
//! totals; inter-project mode flags groups that span repositories.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{config, p, read, run_ok};
use crate::support::{Server, init_repo, write_tree};

/// 9 lines, 58 tokens.
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
    // The `;` before the block and the `export` after it match too; clones are reported by whole lines.
    assert_eq!(occurrences(d), set(&[("shop", "src/checkout.js", 4, 12), ("shop", "lib/cart.js", 3, 11)]), "{d}");
    assert_eq!(d["lines"], 9);
    assert_eq!(d["tokens"], 58);
    assert_eq!(d["impactScore"], 9, "lines x (occurrences - 1)");
    assert_eq!(d["crossRepository"], false);
    // The same block is one function, found as a duplicated function too.
    let f = &r["functionDuplicates"][0];
    assert_eq!((f["id"].as_str(), f["similarity"].as_str()), (Some("fn-1"), Some("identical")), "{r}");
    assert_eq!(occurrences(f), occurrences(d));
    assert_eq!(f["occurrences"][0]["function"], "totalPrice");
    assert_eq!(r["stats"]["duplicateGroups"], 1);
    assert_eq!(r["stats"]["functionGroups"], 1);
    assert_eq!(r["stats"]["duplicatedLines"], 18);
    assert_eq!(
        r["page"],
        json!({"offset": 0, "limit": 100, "duplicates": 1, "functionDuplicates": 1, "nextOffset": null})
    );
    let s = &r["suggestions"][0];
    assert_eq!((s["duplicateId"].as_str(), s["type"].as_str()), (Some("dup-1"), Some("extract-module")));
    assert_eq!((s["strategy"].as_str(), s["targetLocation"].as_str()), (Some("local_util"), Some("shared.js")));
    assert_eq!(r["suggestions"][1]["targetName"], "totalPrice");
    assert!(r["duration"].is_u64());

    // The reports exist where the result says, inside this job's output folder.
    let out = server.data_dir().join("outputs").join(job["id"].as_str().unwrap());
    let json_path = r["reportPaths"]["json"].as_str().unwrap();
    let md_path = r["reportPaths"]["markdown"].as_str().unwrap();
    assert!(std::path::Path::new(json_path).starts_with(&out), "{json_path}");
    let report: Value = serde_json::from_str(&read(json_path)).unwrap();
    assert_eq!(report["duplicates"], r["duplicates"]);
    let md = read(md_path);
    assert!(md.contains("shop:lib/cart.js:3-11") && md.contains("shop:src/checkout.js:4-12"), "{md}");
    assert!(md.contains("`totalPrice`") && md.contains("(local_util, "), "{md}");

    // Structural mode finds a renamed copy that exact mode does not.
    let renamed = BLOCK.replace("subtotal", "sum").replace("taxRate", "rate").replace("9.99", "4.5");
    write_tree(&repo, &[("lib/cart.js", "const cart = createCart();\n"), ("src/renamed.js", &renamed)]);
    let exact = run_ok(&server, "duplicate-detection", json!({"repositoryPath": p(&repo)}), "scan complete").await;
    assert_eq!(exact["result"]["duplicates"], json!([]), "{}", exact["result"]);
    // Whole functions are compared by shape in every mode: the renamed copy is a `renamed` function.
    let f = &exact["result"]["functionDuplicates"][0];
    assert_eq!(f["similarity"], "renamed", "{}", exact["result"]);
    assert_eq!(occurrences(f), set(&[("shop", "src/checkout.js", 4, 12), ("shop", "src/renamed.js", 1, 9)]));
    assert!(exact["result"]["suggestions"][0]["message"].as_str().unwrap().contains("parameters"));
    let structural = run_ok(
        &server,
        "duplicate-detection",
        json!({"repositoryPath": p(&repo), "mode": "structural"}),
        "scan complete",
    )
    .await;
    assert_eq!(structural["result"]["duplicates"].as_array().map(Vec::len), Some(1), "{}", structural["result"]);
    let d = &structural["result"]["duplicates"][0];
    assert_eq!(occurrences(d), set(&[("shop", "src/checkout.js", 4, 12), ("shop", "src/renamed.js", 1, 9)]), "{d}");
}

/// Seven distinct 6-line functions (of one shape), each copied once: seven token clone groups.
fn seven_blocks(file_tag: &str) -> String {
    (1..=7)
        .map(|i| {
            format!(
                "function compute{i}(values) {{\n  const scaled{i} = values.map((v) => v * {i} + {i});\n  const kept{i} = scaled{i}.filter((v) => v % 2 === {i} % 2);\n  const total{i} = kept{i}.reduce((a, b) => a + b, 0);\n  return total{i} / Math.max(kept{i}.length, 1);\n}}\nconst {file_tag}{i} = '{file_tag}';\n"
            )
        })
        .collect()
}

#[tokio::test]
async fn duplicate_detection_pages_its_groups_and_its_totals_count_every_group() {
    let server = Server::start(&config(&["duplicate-detection"]));
    let repo = server.dir.join("paged");
    write_tree(&repo, &[("a.js", &seven_blocks("alpha")), ("b.js", &seven_blocks("beta"))]);
    let params = |offset: u64| json!({"repositoryPath": p(&repo), "limit": 3, "offset": offset});
    let mut seen = BTreeSet::new();
    let mut offset = 0;
    for (n, expected) in [(0, 3), (1, 3), (2, 1)] {
        let job = run_ok(&server, "duplicate-detection", params(offset), "scan complete").await;
        let r = &job["result"];
        assert_eq!(r["stats"]["duplicateGroups"], 7, "page {n}: totals are never a page's: {r}");
        assert_eq!(r["stats"]["functionGroups"], 1, "the fourteen functions have one shape: {r}");
        let page = r["duplicates"].as_array().unwrap();
        assert_eq!(page.len(), expected, "page {n}: {r}");
        assert_eq!(r["page"]["duplicates"], expected);
        let functions = if n == 0 { 1 } else { 0 };
        assert_eq!(r["functionDuplicates"].as_array().map(Vec::len), Some(functions), "page {n}: {r}");
        for d in page {
            assert!(seen.insert(d["id"].as_str().unwrap().to_string()), "{d} on two pages");
            assert_eq!(d["occurrences"].as_array().map(Vec::len), Some(2), "{d}");
        }
        assert_eq!(r["suggestions"].as_array().map(Vec::len), Some(expected + functions));
        match r["page"]["nextOffset"].as_u64() {
            Some(next) => offset = next,
            None => assert_eq!(n, 2, "only the last page has no next offset: {r}"),
        }
        // The report files hold every group, whatever the page.
        let report: Value = serde_json::from_str(&read(r["reportPaths"]["json"].as_str().unwrap())).unwrap();
        assert_eq!(report["duplicates"].as_array().map(Vec::len), Some(7));
        assert_eq!(report["functionDuplicates"][0]["occurrences"].as_array().map(Vec::len), Some(14));
        assert_eq!(report["functionDuplicates"][0]["similarity"], "renamed");
    }
    assert_eq!(seen.len(), 7);
    // An offset past the end is an empty page with the same totals.
    let past = run_ok(&server, "duplicate-detection", params(50), "scan complete").await;
    assert_eq!(past["result"]["duplicates"], json!([]));
    assert_eq!(past["result"]["stats"]["duplicateGroups"], 7);
    assert_eq!(past["result"]["page"]["nextOffset"], Value::Null);
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
    assert_eq!(occurrences(&dups[0]), set(&[("storefront", "web/price.js", 2, 10), ("two", "src/total.js", 2, 10)]));
    assert_eq!(dups[1]["crossRepository"], false);
    assert_eq!(
        occurrences(&dups[1]),
        set(&[("storefront", "etl/a.py", 3, 9), ("storefront", "etl/b.py", 1, 7), ("storefront", "etl/c.py", 1, 7)])
    );
    assert!(dups[1]["impactScore"].as_u64() > dups[0]["impactScore"].as_u64(), "{r}");
    // The cross-repository function ranks first among functions too.
    let funcs = r["functionDuplicates"].as_array().unwrap();
    assert_eq!(funcs.len(), 2, "{r}");
    assert_eq!(
        (funcs[0]["crossRepository"].as_bool(), funcs[0]["occurrences"][0]["function"].as_str()),
        (Some(true), Some("totalPrice"))
    );
    assert_eq!(funcs[1]["occurrences"][0]["function"], "parse_rows");
    assert_eq!(r["stats"]["crossRepositoryGroups"], 2, "one token clone and one function: {r}");
    let s = r["suggestions"].as_array().unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!((s[0]["type"].as_str(), s[0]["strategy"].as_str()), (Some("shared-package"), Some("shared_package")));
    assert_eq!(s[0]["affectedRepositories"], 2);
    assert_eq!(s[0]["breakingChanges"], true);
    assert_eq!((s[1]["type"].as_str(), s[1]["strategy"].as_str()), (Some("extract-module"), Some("local_util")));
    assert_eq!(s[1]["targetLocation"], "etl/shared.py");
    assert_eq!(s[1]["estimatedLinesSaved"], 14);
    let md = read(r["reportPaths"]["markdown"].as_str().unwrap());
    assert!(md.contains("storefront:web/price.js:2-10<br>two:src/total.js:2-10"), "{md}");
}
