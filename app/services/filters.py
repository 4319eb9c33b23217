"""Repository filters (SPEC §4.2): shell globs on names without the namespace.

A name is included when it matches any plain pattern (or there is none) and no ``!`` pattern.
Matching is case-sensitive ``fnmatch``, and ``*`` also crosses ``/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class FilterDecision:
    included: bool
    reason: str | None = None


class RepositoryFilter:
    def __init__(self, patterns: Sequence[str]) -> None:
        self._include = [p for p in patterns if not p.startswith("!")]
        self._exclude = [p[1:] for p in patterns if p.startswith("!")]

    def decide(self, name: str) -> FilterDecision:
        for pattern in self._exclude:
            if fnmatchcase(name, pattern):
                return FilterDecision(False, f"Excluded by repository filter '!{pattern}'")
        if self._include and not any(fnmatchcase(name, p) for p in self._include):
            return FilterDecision(False, "Matches none of the repository filters")
        return FilterDecision(True)

    def select(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.decide(name).included]
