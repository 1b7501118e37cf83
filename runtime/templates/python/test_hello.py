"""Native tests over the SDK's fake host: `python3 -m unittest`."""

import unittest

import sdk_path  # noqa: F401

from alephauto_guest import JobError
from alephauto_guest.testing import run_worker

from hello import Hello


class HelloTest(unittest.TestCase):
    def test_greets_reports_progress_and_refuses_a_blank_name(self):
        out = run_worker(Hello, {"name": "Ada", "times": 2})
        self.assertEqual(out.result["lines"], ["Hello, Ada!", "Hello, Ada!"])
        self.assertEqual(out.progress[-1], (100, "greeted 2 of 2"))
        self.assertEqual(run_worker(Hello, {}).result["greeting"], "Hello, world!")
        self.assertEqual(run_worker(Hello, {"name": " "}).error, JobError.invalid("name", "must not be blank"))


if __name__ == "__main__":
    unittest.main()
