"""{{name}}: the work, free of WIT imports so `python3 -m unittest` can run it."""


class InvalidInput(Exception):
    """A parameter the worker refuses; app.py turns it into `invalid-input`."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def greet(params: dict, progress=lambda pct, msg: None) -> list:
    name = str(params.get("name", "world")).strip()
    if not name:
        raise InvalidInput("name", "must not be blank")
    times = int(params.get("times", 1))
    lines = []
    for i in range(times):
        lines.append(f"Hello, {name}!")
        progress((i + 1) * 100 // times, f"greeted {i + 1} of {times}")
    return lines
