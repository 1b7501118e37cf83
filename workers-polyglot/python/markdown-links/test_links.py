"""Native unit tests of the link checker over the SDK's fake host: `python3 -m unittest`
(scripts/build-polyglot.sh --unit-tests puts guest-sdk-py on PYTHONPATH)."""

import json
import os
import tempfile
import unittest

from alephauto_guest import JobError
from alephauto_guest.testing import run_worker

import links
from worker import MarkdownLinks


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


class SlugTest(unittest.TestCase):
    def test_github_slugs_and_duplicates(self):
        text = "# Hello, World!\n## `code` and [link](x.md)\n# Hello, World!\nSetext\n---\n<a name=\"here\"></a>\n"
        self.assertEqual(
            links.anchors_of(text),
            {"hello-world", "code-and-link", "hello-world-1", "setext", "here"},
        )

    def test_code_is_not_scanned(self):
        text = "```\n[a](b.md)\n```\n`[c](d.md)` [e](f.md \"title\")\n    [g](h.md)\n[r]: <i j.md>\n"
        self.assertEqual(list(links.links_of(text)), [(4, "f.md"), (6, "<i j.md>")])


class CheckTest(unittest.TestCase):
    def test_broken_links_are_reported_with_reasons(self):
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as out:
            root = os.path.realpath(tmp)
            write(root, "README.md", "# Top\n[ok](docs/a.md#intro) [gone](docs/b.md) [anchor](docs/a.md#nope)\n"
                                     "[self](#top) [out](../x.md) [web](https://example.com)\n")
            write(root, "docs/a.md", "## Intro\n[up](../README.md) [abs](/docs/)\n")
            write(root, "node_modules/p/README.md", "[skipped](nope.md)\n")
            write(root, "generated/api.md", "[ignored](nope.md)\n")
            write(root, ".gitignore", "generated/\n")
            r = run_worker(MarkdownLinks, {"repositoryPath": root}, grants=[root], output_dir=os.path.realpath(out))
            self.assertTrue(r.ok, r.error)
            self.assertEqual(r.result["filesScanned"], 2)
            self.assertEqual(r.result["externalLinks"], 1)
            self.assertEqual(r.result["linksChecked"], 7)
            self.assertEqual(
                [(b["file"], b["link"], b["reason"]) for b in r.result["broken"]],
                [("README.md", "docs/b.md", "missing-file"), ("README.md", "docs/a.md#nope", "missing-anchor"),
                 ("README.md", "../x.md", "outside-repository")],
            )
            with open(os.path.join(out, "markdown-links.json")) as fh:
                self.assertEqual(json.load(fh)["brokenCount"], 3)
            self.assertEqual(r.progress[-1][0], 100)
            # Without .gitignore the generated file is checked too.
            r = run_worker(MarkdownLinks, {"repositoryPath": root, "gitignore": False}, grants=[root])
            self.assertEqual(r.result["filesScanned"], 3)

    def test_hidden_folders_are_skipped_hidden_files_are_not(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = os.path.realpath(tmp)
            write(root, ".notes.md", "[gone](nope.md)\n")
            write(root, ".github/PULL_REQUEST_TEMPLATE.md", "[skipped](nope.md)\n")
            r = run_worker(MarkdownLinks, {"repositoryPath": root}, grants=[root])
            self.assertEqual([b["file"] for b in r.result["broken"]], [".notes.md"])

    def test_parameters_are_checked(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = os.path.realpath(tmp)
            write(root, "a.md", "x")
            r = run_worker(MarkdownLinks, {"repositoryPath": root, "skipDirs": ["ok", "a/b"]}, grants=[root])
            self.assertEqual((r.error.kind, r.error.field), ("invalid-input", "skipDirs/1"))
            r = run_worker(MarkdownLinks, {"repositoryPath": f"{root}/a.md"}, grants=[root])
            self.assertEqual(r.error, JobError.invalid("repositoryPath", f"{root}/a.md is not a folder"))
            schema = json.loads(r.info["params_schema"])
            self.assertEqual(schema["properties"]["repositoryPath"]["x-alephauto-path"], "read")
            self.assertEqual(schema["required"], ["repositoryPath"])


if __name__ == "__main__":
    unittest.main()
