"""The one error every loader raises for a bad or missing data file."""
from __future__ import annotations

import os


class DataError(ValueError):
    """A data file is missing, truncated, malformed or holds values out of range.

    The message names the file and the problem; ``path`` holds the file (or folder) as given.
    """

    def __init__(self, path, problem: str):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
