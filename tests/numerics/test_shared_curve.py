"""SharedCurve (bnsym.numerics.curve): which curve answers a solve, and which one is kept for the next."""

from __future__ import annotations

from bnsym.numerics.curve import SharedCurve


class _Curve:
    """A stand-in for RadialCurve: covers kappa >= lo; fails (like a degree past 128) when asked below ``fails_below``."""

    def __init__(self, name, lo, fails_below=0.0):
        self.name, self.lo, self.fails_below, self.failed, self.asked = name, lo, fails_below, False, []

    def covers(self, kappas, slacks):
        return not self.failed and min(kappas) >= self.lo

    def at(self, kappas, slacks):
        self.asked.append(list(kappas))
        if min(kappas) < self.fails_below:
            self.failed = True
            return None
        self.lo = min(self.lo, min(kappas))
        return [self.name] * len(kappas)


def test_a_covered_solve_uses_the_shared_curve_and_builds_none():
    holder = {"curve": _Curve("shared", 0.5)}
    made = []
    solve = SharedCurve(holder, lambda: made.append(1) or _Curve("own", 1.0))
    assert solve.at([0.9, 0.6], [0, 0]) == ["shared", "shared"]
    assert made == [] and holder["curve"].name == "shared"


def test_an_uncovered_solve_builds_its_own_curve_once_and_shares_it():
    holder = {"curve": _Curve("shared", 0.5)}
    solve = SharedCurve(holder, lambda: _Curve("own", 1.0))
    assert solve.at([0.9, 0.3], [0, 0]) == ["own", "own"]
    assert solve.at([0.95], [0]) == ["own"]  # once its own, always its own within the solve
    assert holder["curve"] is solve.own and holder["curve"].asked == [[0.9, 0.3], [0.95]]


def test_a_failed_own_curve_does_not_replace_a_working_shared_one():
    working = _Curve("shared", 0.5)
    holder = {"curve": working}
    solve = SharedCurve(holder, lambda: _Curve("own", 1.0, fails_below=0.2))
    assert solve.at([0.1], [0]) is None  # the caller then evaluates node by node
    assert holder["curve"] is working
    first = SharedCurve({}, lambda: _Curve("own", 1.0, fails_below=0.2))
    first.at([0.1], [0])
    assert first.holder["curve"] is first.own  # nothing better to keep
