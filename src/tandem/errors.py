"""Errors a user can cause and fix: each carries a message that says what is wrong and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem with a spec or its data: the field path it concerns and a plain sentence."""

    path: str
    message: str

    @property
    def parts(self) -> tuple[str | int, ...]:
        """The path as keys and list indexes: "features.buyer.0.column" → ("features", "buyer", 0, "column").

        A path that is not a dotted spec path (a file name, "--set") is one part.
        """
        parts = self.path.split(".")
        if "/" in self.path or not all(p.isidentifier() or p.isdigit() for p in parts):
            return (self.path,)
        return tuple(int(p) if p.isdigit() else p for p in parts)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class TandemError(Exception):
    """A user error: the CLI prints it and exits non-zero; the API turns it into a 4xx."""


class SpecError(TandemError):
    """A spec (or its data) breaks one or more rules; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DataError(TandemError):
    """A data file cannot be read or does not hold what the spec says it holds."""


class NotFittedError(TandemError, ValueError):
    """A transform was used before `fit`."""
