"""Files and walking, confined to grants; the walk is checked against git itself."""

import os
import subprocess
import tempfile
import unittest

from alephauto_guest import FsError, normalize, relative
from alephauto_guest.testing import test_context as context


def tree(files):
    root = os.path.realpath(tempfile.mkdtemp(prefix="guest-sdk-py-"))
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
    return root


def walked_files(ctx, root, **opts):
    return sorted(e.relative for e in ctx.fs.walk(root, **opts) if e.kind == "file")


class PathTest(unittest.TestCase):
    def test_normalise_and_relative(self):
        self.assertEqual(normalize("/a//b/./c/../d/"), "/a/b/d")
        self.assertEqual(normalize("/../x"), "/x")
        with self.assertRaises(FsError) as cm:
            normalize("rel/path")
        self.assertEqual(cm.exception.code, "not-granted")
        self.assertEqual(relative("/a/b", "/a/b/c/d"), "c/d")
        self.assertIsNone(relative("/a/b", "/a/bc"))


class WalkTest(unittest.TestCase):
    def test_walk_lists_exactly_what_git_lists_as_not_ignored(self):
        root = tree({
            ".gitignore": "\n".join([
                "# comment", "*.log", "!keep.log", "build/", "/top-only.txt", "docs/**/*.tmp", "**/cache",
                "a?c.txt", "x[0-9].md", "y[!0-9].md", "\\#hash.txt", "trailing.txt   ", "deep/**", "sub/anchored.txt", "",
            ]),
            "keep.log": "k", "drop.log": "d", "top-only.txt": "t", "nested/top-only.txt": "n",
            "build/out.js": "o", "src/build/gen.js": "g", "docs/a.tmp": "a", "docs/x/y/b.tmp": "b", "docs/readme.md": "r",
            "src/cache/c.bin": "c", "cache": "file named cache", "abc.txt": "1", "abbc.txt": "2", "x1.md": "3",
            "xa.md": "4", "y1.md": "5", "ya.md": "6", "#hash.txt": "7", "trailing.txt": "8", "deep/a/b.txt": "9",
            "deepfile.txt": "10", "sub/anchored.txt": "11", "other/sub/anchored.txt": "12",
            "src/.gitignore": "*.gen.js\n!important.gen.js\n/local.txt\n",
            "src/a.gen.js": "a", "src/important.gen.js": "i", "src/local.txt": "l", "src/inner/local.txt": "il",
            "src/main.js": "m", "src/inner/.gitignore": "!*.log\n", "src/inner/kept.log": "kl", ".hidden/h.txt": "h",
        })
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        with open(os.path.join(root, ".git/info/exclude"), "a") as fh:
            fh.write("excluded-by-info.txt\n")
        with open(os.path.join(root, "excluded-by-info.txt"), "w") as fh:
            fh.write("e")
        out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
        git = sorted(p for p in out.split("\0") if p)
        ctx, _ = context(grants=[root])
        self.assertEqual(walked_files(ctx, root), git)
        self.assertIn("src/inner/kept.log", git)
        self.assertNotIn("deep/a/b.txt", git)

    def test_options_and_symlinks(self):
        root = tree({".gitignore": "ignored.txt\n", "ignored.txt": "i", "a/b/c.txt": "c", ".dot/x.txt": "x",
                     "node_modules/m.js": "m", "z.tmp": "z", ".git/HEAD": "ref"})
        outside = tree({"secret.txt": "s"})
        os.symlink(outside, os.path.join(root, "link"))
        ctx, _ = context(grants=[root])
        self.assertEqual(walked_files(ctx, root, gitignore=False),
                         [".dot/x.txt", ".gitignore", "a/b/c.txt", "ignored.txt", "node_modules/m.js", "z.tmp"])
        self.assertEqual(walked_files(ctx, root, include_hidden=False, skip_dirs=["node_modules"], ignore=["*.tmp"]),
                         ["a/b/c.txt"])
        self.assertEqual(walked_files(ctx, root, max_depth=1), [".gitignore", "z.tmp"])
        entries = list(ctx.fs.walk(root))
        link = [e for e in entries if e.relative == "link"]
        self.assertEqual([(e.kind, e.depth) for e in link], [("symlink", 1)])
        self.assertFalse(any("secret" in e.relative or e.relative.startswith(".git/") for e in entries))
        self.assertEqual([e.relative for e in entries if e.kind == "dir"], [".dot", "a", "a/b", "node_modules"])


class FilesTest(unittest.TestCase):
    def test_reads_and_writes_stay_inside_the_grants(self):
        root = tree({"in.txt": "héllo\n"})
        out = os.path.realpath(tempfile.mkdtemp(prefix="guest-sdk-py-out-"))
        outside = tree({"secret.txt": "top secret"})
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "escape.txt"))
        ctx, _ = context(grants=[root], output_dir=out)
        self.assertEqual(ctx.fs.read_text(f"{root}/in.txt"), "héllo\n")
        self.assertEqual([(e.relative, e.kind) for e in ctx.fs.list(root)], [("escape.txt", "symlink"), ("in.txt", "file")])
        self.assertFalse(ctx.fs.exists(f"{root}/nope"))

        def code(f):
            with self.assertRaises(FsError) as cm:
                f()
            return cm.exception.code, cm.exception.denied

        self.assertEqual(code(lambda: ctx.fs.read_text(f"{outside}/secret.txt")), ("not-granted", True))
        self.assertEqual(code(lambda: ctx.fs.read_text(f"{root}/../{os.path.basename(outside)}/secret.txt")), ("not-granted", True))
        self.assertEqual(code(lambda: ctx.fs.read_text(f"{root}/escape.txt")), ("not-permitted", True))
        self.assertEqual(code(lambda: ctx.fs.write(f"{root}/new.txt", "x")), ("not-permitted", True))
        self.assertEqual(code(lambda: ctx.fs.read_text(f"{root}/missing.txt")), ("no-entry", False))

        ctx.fs.mkdir(f"{out}/a/b", recursive=True)
        ctx.fs.write(ctx.output_path("a/b/report.md"), "# report\n")
        ctx.fs.write(f"{out}/bytes.bin", b"\0\1\2")
        with open(os.path.join(out, "a/b/report.md")) as fh:
            self.assertEqual(fh.read(), "# report\n")
        self.assertEqual(ctx.fs.read_bytes(f"{out}/bytes.bin"), b"\0\1\2")
        ctx.fs.remove_file(f"{out}/bytes.bin")
        self.assertFalse(ctx.fs.exists(f"{out}/bytes.bin"))


if __name__ == "__main__":
    unittest.main()
