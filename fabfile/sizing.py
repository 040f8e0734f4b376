"""How big a part is: the first wave of a still, and guided parts after it. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def first_wave(pending: Sequence[int], weights: Mapping[int, float], slots: int) -> list[tuple[int, int]]:
    """One run of pending units per slot, in order, of about equal weight; a run also
    ends where the pending units do. The last run takes whatever is left: a dear unit
    near the end must not leave a sliver for a run of its own, after the others."""
    share = sum(weights[u] for u in pending) / max(1, slots)
    runs: list[tuple[int, int]] = []
    first = last = None
    total = 0.0
    for unit in pending:
        full = len(runs) < slots - 1 and total + weights[unit] / 2 > share * (len(runs) + 1)
        if first is not None and (unit != last + 1 or full):
            runs.append((first, last))
            first = None
        if first is None:
            first = unit
        last = unit
        total += weights[unit]
    if first is not None:
        runs.append((first, last))
    return runs


def costed_run(
    costs: Mapping[int, float], target: float, limit: int, trusted: Callable[[int], bool]
) -> tuple[int, int]:
    """The dearest of the pending units `costs` names (no late giant), grown into a run
    costing up to `target`, with at most `limit` units whose cost is not `trusted`
    (estimates far from any measurement can be wrong)."""
    seed = max(costs, key=lambda unit: (costs[unit], -unit))
    first = last = seed
    total = costs[seed]
    guesses = 0 if trusted(seed) else 1

    def fits(unit: int) -> bool:
        if unit not in costs or total + costs[unit] > target:
            return False
        return trusted(unit) or guesses < limit

    while fits(last + 1) or fits(first - 1):
        added = last + 1 if fits(last + 1) else first - 1
        first, last = min(first, added), max(last, added)
        total += costs[added]
        guesses += 0 if trusted(added) else 1
    return first, last
