import unittest

import hello


class HelloTest(unittest.TestCase):
    def test_greets_and_refuses_a_blank_name(self):
        self.assertEqual(hello.greet({"name": "Ada", "times": 2}), ["Hello, Ada!", "Hello, Ada!"])
        with self.assertRaises(hello.InvalidInput) as cm:
            hello.greet({"name": " "})
        self.assertEqual(cm.exception.field, "name")


if __name__ == "__main__":
    unittest.main()
