"""Native unit tests of the link checker: `python3 -m unittest` (scripts/build-polyglot.sh --unit-tests)."""

import os
import tempfile
import unittest

import links


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
        with tempfile.TemporaryDirectory() as root:
            write(root, "README.md", "# Top\n[ok](docs/a.md#intro) [gone](docs/b.md) [anchor](docs/a.md#nope)\n"
                                     "[self](#top) [out](../x.md) [web](https://example.com)\n")
            write(root, "docs/a.md", "## Intro\n[up](../README.md) [abs](/docs/)\n")
            write(root, "node_modules/p/README.md", "[skipped](nope.md)\n")
            report = links.check_repository(root, links.Options())
            self.assertEqual(report.files_scanned, 2)
            self.assertEqual(report.external_links, 1)
            self.assertEqual(report.links_checked, 7)
            self.assertEqual(
                [(b.file, b.link, b.reason) for b in report.broken],
                [("README.md", "docs/b.md", "missing-file"), ("README.md", "docs/a.md#nope", "missing-anchor"),
                 ("README.md", "../x.md", "outside-repository")],
            )

    def test_skip_dirs_must_be_folder_names(self):
        with self.assertRaises(links.InvalidInput) as cm:
            links.parse_options({"skipDirs": ["ok", "a/b"]})
        self.assertEqual(cm.exception.field, "skipDirs/1")


if __name__ == "__main__":
    unittest.main()
