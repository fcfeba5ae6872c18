"""Alert triggers: when a signal's series fires at its last value (the paper's rule, robust z)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Firing:
    """Why a rule fired on the last value of a series: ``value`` exceeded ``threshold``."""

    value: float
    threshold: float
    reason: str


@dataclass(frozen=True)
class ReferenceRule:
    """The paper's trigger (``find_trigger_epoch_with_margin``), checked at the last value.

    Fires at position i >= ``burn_in`` (0-based) when the series moved the bad way on each of
    the last ``consecutive`` steps and the last step is larger than ``std_fraction`` × the
    standard deviation of the previous ≤ ``std_window`` values (0 with fewer than two).
    """

    burn_in: int = 5
    consecutive: int = 2
    std_fraction: float = 0.2
    std_window: int = 10

    def check(self, values: Sequence[float], higher_is_bad: bool) -> Firing | None:
        i = len(values) - 1
        if i < max(self.burn_in, self.consecutive):
            return None
        recent = np.asarray(values[i - self.consecutive :], dtype=np.float64)
        steps = np.diff(recent) if higher_is_bad else -np.diff(recent)
        if not np.all(steps > 0):
            return None
        previous = np.asarray(values[max(0, i - self.std_window) : i], dtype=np.float64)
        margin = self.std_fraction * float(np.std(previous)) if previous.size >= 2 else 0.0
        last_step = float(steps[-1])
        if last_step <= margin:
            return None
        return Firing(
            last_step,
            margin,
            f"moved the bad way on {self.consecutive} consecutive checkpoints; last step "
            f"{last_step:.4g} > {self.std_fraction:g} × std of the previous "
            f"{previous.size} values ({margin:.4g})",
        )

    def positions(self, values: Sequence[float], higher_is_bad: bool | None) -> list[int]:
        """Every position where the rule fires (offline use and tests)."""
        return _positions(self, values, higher_is_bad)


@dataclass(frozen=True)
class RobustRule:
    """Robust z-score of the last value against a rolling median, in the bad direction.

    z = (x - median of the previous ``window`` values) / scale, where scale = 1.2533 × the mean
    absolute deviation from the median of the previous ``scale_window`` values (consistent with
    σ for Gaussian noise), floored at ``rel_floor`` × |median| and at the signal's absolute floor
    so that a smooth, nearly constant signal cannot alarm on a negligible change. Fires when z
    exceeds ``z_threshold`` in the bad direction, from position ``min_history`` on.
    Why the mean rather than the median absolute deviation: from 8–20 values the median one is
    too noisy; on 1,500 simulated 50-checkpoint series of i.i.d. Gaussian noise, |z| > 6 fired
    (two-sided) on 4.3% of series with it and on 0.3% with the mean absolute deviation.
    """

    z_threshold: float = 6.0
    window: int = 8
    scale_window: int = 20
    min_history: int = 8
    rel_floor: float = 0.01

    def check(
        self, values: Sequence[float], higher_is_bad: bool, abs_floor: float = 1e-12
    ) -> Firing | None:
        i = len(values) - 1
        if i < self.min_history:
            return None
        location = float(np.median(values[max(0, i - self.window) : i]))
        scale_values = np.asarray(values[max(0, i - self.scale_window) : i], dtype=np.float64)
        spread = 1.2533 * float(np.mean(np.abs(scale_values - np.median(scale_values))))
        scale = max(spread, self.rel_floor * abs(location), abs_floor)
        z = (float(values[i]) - location) / scale
        bad_z = z if higher_is_bad else -z
        if bad_z <= self.z_threshold:
            return None
        direction = "rose" if higher_is_bad else "fell"
        return Firing(
            bad_z,
            self.z_threshold,
            f"{direction} to {float(values[i]):.4g}, robust z = {bad_z:.1f} against the median "
            f"{location:.4g} of the last {min(i, self.window)} checkpoints (scale {scale:.3g})",
        )

    def positions(
        self, values: Sequence[float], higher_is_bad: bool, abs_floor: float = 1e-12
    ) -> list[int]:
        """Every position where the rule fires (offline use and tests)."""
        return _positions(self, values, higher_is_bad, abs_floor)


def _positions(
    rule: ReferenceRule | RobustRule | TrendRule, values: Sequence[float], *args: Any
) -> list[int]:
    series = [float(v) for v in values]
    return [i for i in range(len(series)) if rule.check(series[: i + 1], *args) is not None]


@dataclass(frozen=True)
class TrendRule:
    """A sustained move away from the best level seen: catches gradual failures early.

    The series is smoothed with an EWMA (weight ``alpha``, on log values when ``log``); from
    position ``min_history`` on (the warm-up: 20 looks, about 5 epochs at a look every 5 of 21
    steps), the rule compares the smoothed value with the best smoothed value of the last
    ``window`` positions since the warm-up (all of them when ``window`` is None; the lowest for
    a rising-is-bad signal; with ``higher_is_bad=None`` both the lowest and the highest, so a
    move either way counts). The window keeps slow, healthy growth (a feature norm creeping up
    over 20 epochs) from adding up to an alarm. It fires when the gap
    exceeds both ``min_gap`` (a relative change of ``exp(min_gap)`` on log values, an absolute
    one otherwise) and ``z_threshold`` × the smoothed series' noise, and has done so for
    ``persist`` consecutive values. The noise is 1.2533 × the mean absolute one-step prediction
    error of the EWMA over the last ``noise_window`` positions (all when None, the default),
    scaled to the EWMA's own standard deviation. A window (e.g. 48 looks) forgets the first
    epochs' fast moves, so the margin narrows and gradual failures fire earlier, but on the
    suite's 50 held-out healthy runs (:data:`~sentrycam_widget.benchmarking.early_alerts.HELD_OUT`)
    windows of 48 and 64 looks gave ``early_combined`` a false alarm and 96, 128 or the whole run
    none. Healthy training, whose signals settle or improve, keeps moving the best level with it
    and does not fire.
    """

    alpha: float = 0.3
    min_history: int = 20
    min_gap: float = 0.7
    z_threshold: float = 4.0
    persist: int = 2
    log: bool = True
    window: int | None = 24
    noise_window: int | None = None

    def check(self, values: Sequence[float], higher_is_bad: bool | None) -> Firing | None:
        """The firing at the last value, or None; ``higher_is_bad=None`` watches both ways."""
        series = np.asarray(values, dtype=np.float64)
        if series.size <= self.min_history + self.persist - 1:
            return None
        if self.log:
            series = np.log(np.maximum(series, 1e-12))
        smooth = np.empty_like(series)
        smooth[0] = series[0]
        for i in range(1, series.size):
            smooth[i] = self.alpha * series[i] + (1 - self.alpha) * smooth[i - 1]
        errors = np.abs(series[1:] - smooth[:-1])
        if self.noise_window is not None:
            errors = errors[-self.noise_window :]
        noise = 1.2533 * float(np.mean(errors))
        noise *= float(np.sqrt(self.alpha / (2 - self.alpha)))
        margin = max(self.min_gap, self.z_threshold * noise)
        signs = (1.0, -1.0) if higher_is_bad is None else ((1.0,) if higher_is_bad else (-1.0,))
        for sign in signs:
            bad = sign * smooth
            gaps = [
                float(bad[i] - bad[self._start(i) : i].min())
                for i in range(series.size - self.persist, series.size)
            ]
            if min(gaps) > margin:
                unit = "log-units" if self.log else "units"
                direction = "risen" if sign > 0 else "fallen"
                return Firing(
                    gaps[-1],
                    margin,
                    f"has {direction} {gaps[-1]:.3g} {unit} from its best smoothed level for "
                    f"{self.persist} values (margin {margin:.3g})",
                )
        return None

    def _start(self, i: int) -> int:
        """First position of the baseline for position ``i``: since the warm-up, or the last
        ``window`` positions."""
        start = self.min_history - 1
        return start if self.window is None else max(start, i - self.window)

    def positions(self, values: Sequence[float], higher_is_bad: bool | None) -> list[int]:
        """Every position where the rule fires (offline use and tests)."""
        return _positions(self, values, higher_is_bad)
