//! schema-enhancement: the JSON-LD block lands right after the first heading, a second
//! run is skipped, and the type follows the README and its project.

use serde_json::{Value, json};

use super::{config, p, read, run_ok};
use crate::support::{Server, git, init_repo, write_tree};

const README: &str = "[![ci](https://ci.example/badge.svg)](https://ci.example)\n\
\n\
# Widget Factory\n\
\n\
Widget Factory turns sprockets into gears for every project you have.\n\
\n\
## Install\n\
\n\
npm install widget-factory\n";

const MARKER: &str = "<script type=\"application/ld+json\">";

#[tokio::test]
async fn schema_enhancement_inserts_json_ld_after_the_first_heading_then_skips() {
    let server = Server::start(&config(&["schema-enhancement"]));
    let repo = server.dir.join("widget-factory");
    write_tree(
        &repo,
        &[
            ("README.md", README),
            ("package.json", "{\"name\": \"widget-factory\"}\n"),
            ("src/index.js", "export const widget = () => 1;\n"),
            ("src/gears.js", "export const gear = 2;\n"),
            ("scripts/build.py", "print('build')\n"),
        ],
    );
    init_repo(&repo);
    git(&repo, &["remote", "add", "origin", "git@github.com:acme/widget-factory.git"]);
    let readme = repo.join("README.md");

    // No repositoryPath and no context: both are derived (git root, package.json, remote, languages).
    let job = run_ok(&server, "schema-enhancement", json!({"readmePath": p(&readme)}), "README enhanced").await;
    let r = &job["result"];
    assert_eq!(r["status"], "enhanced", "{r}");
    assert_eq!(r["readmePath"], p(&readme));
    assert_eq!(r["schemaType"], "SoftwareApplication", "package.json beside the README: {r}");
    let schema = &r["schema"];
    assert_eq!(schema["@context"], "https://schema.org");
    assert_eq!(schema["@type"], "SoftwareApplication");
    assert_eq!(schema["name"], "Widget Factory");
    assert_eq!(schema["description"], "Widget Factory turns sprockets into gears for every project you have.");
    assert_eq!(schema["applicationCategory"], "DeveloperApplication");
    assert_eq!(schema["operatingSystem"], "Cross-platform");
    assert_eq!(schema["codeRepository"], "https://github.com/acme/widget-factory");
    assert_eq!(schema["programmingLanguage"], json!(["JavaScript", "Python"]), "{schema}");
    assert_eq!(r["validation"]["valid"], true);
    assert_eq!(r["validation"]["errors"], json!([]));
    assert_eq!(r["impact"]["score"], 100, "{r}");
    assert_eq!(r["impact"]["rating"], "excellent");

    // On disk: lines 1-3 untouched, a blank line, the block, a blank line, then the rest as it was.
    let text = read(&readme);
    let lines: Vec<&str> = text.lines().collect();
    let original: Vec<&str> = README.lines().collect();
    assert_eq!(lines[..3], original[..3], "{text}");
    assert_eq!(lines[3], "", "{text}");
    assert_eq!(lines[4], MARKER, "the block starts on line 5, right after the heading and a blank line:\n{text}");
    let close = lines.iter().position(|l| *l == "</script>").expect("closing tag");
    let body: Value = serde_json::from_str(&lines[5..close].join("\n")).expect("the block holds JSON");
    assert_eq!(&body, schema, "the file holds the schema the result reports");
    assert!(lines[5..close].iter().skip(1).all(|l| l.starts_with("  ") || *l == "}"), "2-space indent:\n{text}");
    assert_eq!(lines[close + 1], "", "{text}");
    assert_eq!(lines[close + 2..], original[4..], "everything after the heading follows unchanged:\n{text}");
    assert_eq!(text.matches(MARKER).count(), 1);
    assert!(text.ends_with("npm install widget-factory\n"));

    // Second run: skipped, file unchanged byte for byte.
    let again = run_ok(
        &server,
        "schema-enhancement",
        json!({"readmePath": p(&readme), "repositoryPath": p(&repo)}),
        "already has schema markup",
    )
    .await;
    assert_eq!(again["result"]["status"], "skipped", "{}", again["result"]);
    assert_eq!(again["result"]["reason"], "Already has schema markup");
    assert_eq!(read(&readme), text);
}

#[tokio::test]
async fn schema_enhancement_chooses_the_type_from_the_readme_and_its_project() {
    let server = Server::start(&config(&["schema-enhancement"]));
    let root = server.dir.clone();
    write_tree(
        &root,
        &[
            ("api/README.md", "# Payments API\n\nEndpoints for charging cards and issuing refunds.\n"),
            ("guide/README.md", "# Onboarding\n\nA step by step guide to getting started with the platform.\n"),
            ("notes/README.md", "# Design notes\n\nWhy the scheduler is a priority queue and not a ring.\n"),
            ("py/README.md", "# Packer\n\nPacks folders into archives quickly and safely.\n"),
            ("py/pyproject.toml", "[project]\nname = \"packer\"\n"),
            ("remote/README.md", "# Remote thing\n\nA library that is only known by its remote.\n"),
            ("remote/lib.rs", "pub fn f() {}\n"),
            ("suite/tests/README.md", "# Fixtures\n\nHow the fixtures in this folder are laid out.\n"),
            ("bare/README.md", "Just a paragraph of text without any heading at all.\n"),
        ],
    );
    let remote = root.join("remote");
    init_repo(&remote);
    git(&remote, &["remote", "add", "origin", "https://git.example/acme/remote-thing.git"]);

    let cases = [
        ("api/README.md", "APIReference"),
        ("guide/README.md", "HowTo"),
        ("notes/README.md", "TechArticle"),
        ("py/README.md", "SoftwareApplication"),
        ("remote/README.md", "SoftwareSourceCode"),
        ("suite/tests/README.md", "HowTo"),
        ("bare/README.md", "TechArticle"),
    ];
    for (rel, ty) in cases {
        let readme = root.join(rel);
        let before = read(&readme);
        let job = run_ok(
            &server,
            "schema-enhancement",
            json!({"readmePath": p(&readme), "dryRun": true}),
            "dry run: README unchanged",
        )
        .await;
        let r = &job["result"];
        assert_eq!(r["status"], "would_enhance", "{rel}: {r}");
        assert_eq!(r["schemaType"], ty, "{rel}: {r}");
        assert_eq!(r["schema"]["@type"], ty);
        assert_eq!(read(&readme), before, "{rel}: a dry run writes nothing");
        match ty {
            "TechArticle" | "HowTo" | "APIReference" => {
                assert_eq!(r["schema"]["inLanguage"], "en-US", "{rel}: {r}");
                assert!(r["schema"]["dateModified"].as_str().is_some_and(|d| d.len() == 10), "{rel}: {r}");
            }
            _ => assert!(r["schema"].get("dateModified").is_none(), "{rel}: {r}"),
        }
    }

    // Without a heading the name is the folder's and the block goes at the very top.
    let bare = root.join("bare/README.md");
    let job = run_ok(&server, "schema-enhancement", json!({"readmePath": p(&bare)}), "README enhanced").await;
    assert_eq!(job["result"]["schema"]["name"], "bare");
    let text = read(&bare);
    assert!(text.starts_with(&format!("{MARKER}\n{{\n  \"@context\": \"https://schema.org\",")), "{text}");
    assert!(text.ends_with("</script>\n\nJust a paragraph of text without any heading at all.\n"), "{text}");

    // A given context wins over what the files say.
    let notes = root.join("notes/README.md");
    let job = run_ok(
        &server,
        "schema-enhancement",
        json!({"readmePath": p(&notes), "dryRun": true, "context": {"hasPackageJson": true, "languages": ["Go"]}}),
        "dry run",
    )
    .await;
    assert_eq!(job["result"]["schemaType"], "SoftwareApplication", "{}", job["result"]);
    assert_eq!(job["result"]["schema"]["programmingLanguage"], "Go");
}

#[tokio::test]
async fn schema_enhancement_judges_testing_by_the_path_inside_the_repository_only() {
    // A repository that happens to live under a folder called `tests-and-contests`:
    // the folders above the repository say nothing about what the README is about.
    let server = Server::start(&config(&["schema-enhancement"]));
    let repo = server.dir.join("tests-and-contests/latest-widget");
    write_tree(
        &repo,
        &[
            ("README.md", "# Latest Widget\n\nThe latest widget library for building dashboards.\n"),
            ("package.json", "{}\n"),
        ],
    );
    init_repo(&repo);
    let readme = repo.join("README.md");
    let job = run_ok(&server, "schema-enhancement", json!({"readmePath": p(&readme), "dryRun": true}), "dry run").await;
    assert_eq!(job["result"]["schemaType"], "SoftwareApplication", "{}", job["result"]);
}

#[tokio::test]
async fn schema_enhancement_does_not_take_a_comment_in_a_code_block_for_the_title() {
    let server = Server::start(&config(&["schema-enhancement"]));
    let repo = server.dir.join("quickstart");
    let readme_text = "## Setup\n\n```sh\n# install the tool\nnpm install quickstart\n```\n\nQuickstart scaffolds new projects in seconds.\n";
    write_tree(&repo, &[("README.md", readme_text)]);
    let readme = repo.join("README.md");
    let job = run_ok(&server, "schema-enhancement", json!({"readmePath": p(&readme)}), "README enhanced").await;
    let r = &job["result"];
    assert_eq!(r["schema"]["name"], "quickstart", "no `# ` heading outside code: the folder name: {r}");
    assert_eq!(r["schema"]["description"], "Quickstart scaffolds new projects in seconds.");
    // Inserted after the first real heading (`## Setup`), the code block untouched.
    let text = read(&readme);
    assert!(text.starts_with(&format!("## Setup\n\n{MARKER}\n")), "{text}");
    assert!(text.ends_with(&format!("</script>\n\n{}", &readme_text["## Setup\n\n".len()..])), "{text}");
}

#[tokio::test]
async fn schema_enhancement_over_a_base_folder_enhances_every_readme_and_reports_per_file() {
    let server = Server::start(&config(&["schema-enhancement"]));
    let base = server.dir.join("monorepo");
    let docs = "# Docs\n\n<script type=\"application/ld+json\">\n{}\n</script>\n\nAlready marked up.\n";
    let dependency = "# left-pad\n\nPads strings on the left, from the registry.\n";
    write_tree(
        &base,
        &[
            ("README.md", "# Monorepo\n\nEverything the team ships, in one repository.\n"),
            ("packages/api/README.md", "# Billing API\n\nEndpoints for invoices and payments.\n"),
            ("packages/web/readme.md", "# Web\n\nThe storefront that customers see first.\n"),
            ("packages/web/package.json", "{\"name\": \"web\"}\n"),
            ("docs/README.md", docs),
            ("node_modules/left-pad/README.md", dependency),
            ("packages/web/node_modules/dep/README.md", dependency),
            ("target/doc/README.md", dependency),
            ("packages/api/dist/README.md", dependency),
            ("legacy/README.md", dependency),
        ],
    );
    init_repo(&base);
    git(&base, &["remote", "add", "origin", "git@github.com:acme/monorepo.git"]);

    // A dry run first: every README is judged, none is written.
    let before = super::snapshot(&base);
    let dry = run_ok(
        &server,
        "schema-enhancement",
        json!({"baseDir": p(&base), "dryRun": true, "excludeDirs": ["legacy"]}),
        "4 README files: 3 would be enhanced, 1 skipped, 0 errors",
    )
    .await;
    assert_eq!(dry["result"]["summary"], json!({"enhanced": 0, "would_enhance": 3, "skipped": 1, "error": 0}));
    assert_eq!(super::snapshot(&base), before, "a dry run writes nothing");

    let job = run_ok(
        &server,
        "schema-enhancement",
        json!({"baseDir": p(&base), "excludeDirs": ["legacy"]}),
        "4 README files: 3 enhanced, 1 skipped, 0 errors",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["baseDir"], p(&base));
    assert_eq!(r["totalReadmes"], 4, "{r}");
    let results = r["results"].as_array().unwrap();
    let row = |rel: &str| results.iter().find(|x| x["relativePath"] == rel).unwrap_or_else(|| panic!("{rel}: {r}"));
    let listed: Vec<&str> = results.iter().map(|x| x["relativePath"].as_str().unwrap()).collect();
    assert_eq!(listed, ["README.md", "docs/README.md", "packages/api/README.md", "packages/web/readme.md"]);
    for (rel, ty) in [
        ("README.md", "SoftwareSourceCode"),
        ("packages/api/README.md", "APIReference"),
        ("packages/web/readme.md", "SoftwareApplication"),
    ] {
        let x = row(rel);
        assert_eq!((x["status"].as_str(), x["schemaType"].as_str()), (Some("enhanced"), Some(ty)), "{rel}: {x}");
        assert_eq!(x["repositoryPath"], p(&base), "{rel}: the repository is the git root above it");
        if ty != "APIReference" {
            assert_eq!(x["schema"]["codeRepository"], "https://github.com/acme/monorepo", "{rel}: {x}");
        }
        let text = read(base.join(rel));
        assert_eq!(text.matches(MARKER).count(), 1, "{rel}:\n{text}");
        let close = text.find("</script>").unwrap();
        let body: Value = serde_json::from_str(&text[text.find(MARKER).unwrap() + MARKER.len()..close]).unwrap();
        assert_eq!(&body, &x["schema"], "{rel}: the file holds the schema the result reports");
    }
    assert_eq!(row("docs/README.md")["status"], "skipped");
    assert_eq!(row("docs/README.md")["reason"], "Already has schema markup");
    assert_eq!(read(base.join("docs/README.md")), docs);
    // Dependency, build and excluded folders are not entered, and the result says so.
    for rel in ["node_modules/left-pad", "packages/web/node_modules/dep", "target/doc", "packages/api/dist", "legacy"] {
        assert_eq!(read(base.join(rel).join("README.md")), dependency, "{rel} must be left alone");
    }
    let skipped: Vec<(String, String)> = r["skippedDirectories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["path"].as_str().unwrap().to_string(), x["reason"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = [
        (".git", "version control"),
        ("legacy", "excluded"),
        ("node_modules", "dependencies"),
        ("packages/api/dist", "build output"),
        ("packages/web/node_modules", "dependencies"),
        ("target", "build output"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(skipped, expected, "{r}");

    // A second run finds every README marked up.
    let again = run_ok(
        &server,
        "schema-enhancement",
        json!({"baseDir": p(&base), "excludeDirs": ["legacy"]}),
        "4 README files: 0 enhanced, 4 skipped, 0 errors",
    )
    .await;
    assert_eq!(again["result"]["summary"]["skipped"], 4, "{}", again["result"]);
}
