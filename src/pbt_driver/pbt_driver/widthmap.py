"""Peak -> pulse width [us]: fixed, or linear in the amplitude with clamp; quantized so that the
pigpio backend can prepare every possible wave ahead of time. No ROS."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_WAVES = 200  # pigpiod holds at most 250 waves; leave room


class WidthMapError(ValueError):
    """Invalid width mapping."""


@dataclass(frozen=True)
class WidthMap:
    mode: str = "fixed"  # "fixed" | "linear"
    width_us: int = 100  # fixed width
    min_us: int = 50  # linear: width at amp_lo and below
    max_us: int = 1000  # linear: width at amp_hi and above
    amp_lo: float = 0.0
    amp_hi: float = 1000.0
    step_us: int = 10  # linear: widths are multiples of step from min_us

    def check(self) -> None:
        if self.mode not in ("fixed", "linear"):
            raise WidthMapError(f"unknown mode {self.mode!r}; 'fixed' or 'linear'")
        if self.mode == "fixed":
            if not 1 <= self.width_us <= 1_000_000:
                raise WidthMapError("width_us must be in 1..1000000")
            return
        if not 1 <= self.min_us <= self.max_us <= 1_000_000:
            raise WidthMapError("need 1 <= min_us <= max_us <= 1000000")
        if not self.amp_hi > self.amp_lo:
            raise WidthMapError("amp_hi must be > amp_lo")
        if self.step_us < 1:
            raise WidthMapError("step_us must be >= 1")
        if len(self.widths()) > MAX_WAVES:
            raise WidthMapError(
                f"{len(self.widths())} distinct widths; raise step_us so there are <= {MAX_WAVES}"
            )

    def widths(self) -> list[int]:
        """Every width map() can return (the waves the pigpio backend prepares)."""
        if self.mode == "fixed":
            return [self.width_us]
        out = list(range(self.min_us, self.max_us + 1, self.step_us))
        if out[-1] != self.max_us:
            out.append(self.max_us)
        return out

    def map(self, amplitude: float) -> int:
        if self.mode == "fixed":
            return self.width_us
        if not math.isfinite(amplitude):
            return self.max_us if amplitude > 0 else self.min_us
        f = (amplitude - self.amp_lo) / (self.amp_hi - self.amp_lo)
        f = min(1.0, max(0.0, f))
        w = self.min_us + f * (self.max_us - self.min_us)
        q = self.min_us + round((w - self.min_us) / self.step_us) * self.step_us
        return int(min(self.max_us, max(self.min_us, q)))
