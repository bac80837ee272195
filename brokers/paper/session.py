"""The trading session clock: open for ``session_s``, closed for ``overnight_s``, repeat.

Only the state and its next change live here; what a close or an open does to orders is
the engine's. Times are microseconds; a session length of 0 means the market never closes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reported as next_close (and next_open) by a market that never closes: 9999-12-31Z.
NEVER_US = 253_402_214_400_000_000


@dataclass(frozen=True, slots=True)
class Session:
    is_open: bool
    since_us: int  # when the current state began
    next_change_us: int | None  # the next close (open) or open (closed); None: never

    @classmethod
    def opened(cls, at_us: int, session_us: int) -> Session:
        return cls(True, at_us, at_us + session_us if session_us > 0 else None)

    @classmethod
    def closed(cls, at_us: int, overnight_us: int) -> Session:
        return cls(False, at_us, at_us + overnight_us)

    def next_open_close(self, session_us: int, overnight_us: int) -> tuple[int, int]:
        """Alpaca's ``next_open``/``next_close``; ``NEVER_US`` where there is none."""
        if self.is_open:
            if self.next_change_us is None:
                return NEVER_US, NEVER_US
            return self.next_change_us + overnight_us, self.next_change_us
        assert self.next_change_us is not None
        close = self.next_change_us + session_us if session_us > 0 else NEVER_US
        return self.next_change_us, close


def seconds_to_us(seconds: float) -> int:
    return round(seconds * 1_000_000)
