"""Stop strings for generate() and stream(): the answer ends where one of
them first appears, and the text handed on as it streams never holds the
start of one that may still complete (as `stretch run --stop` and the
server's `stop` do)."""

from __future__ import annotations

from typing import Sequence


def stop_list(stop: str | Sequence[str] | None) -> list[str]:
    """The stop strings a caller gave: a string or a list of them."""
    if stop is None:
        return []
    given = [stop] if isinstance(stop, str) else list(stop)
    for s in given:
        if not isinstance(s, str):
            raise TypeError(f"stop: expected a string or a list of strings, found "
                            f"{type(s).__name__}")
        if not s:
            raise ValueError("stop: a stop string is empty")
    return given


class StopText:
    """Text in, text out: feed() returns what may be shown now; `hit` is
    set once a stop string completed (nothing after it is shown); end()
    returns what was held back."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.longest = max((len(s) for s in stops), default=0)
        self.held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        if not self.longest:
            return text
        self.held += text
        found = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if found:
            shown, self.held, self.hit = self.held[:min(found)], "", True
            return shown
        keep = self.longest - 1
        shown = self.held[:len(self.held) - keep] if len(self.held) > keep else ""
        self.held = self.held[len(shown):]
        return shown

    def end(self) -> str:
        rest, self.held = ("" if self.hit else self.held), ""
        return rest
