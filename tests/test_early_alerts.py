"""Step-cadence early warnings: the trend trigger and EarlyWatch on synthetic looks."""

from __future__ import annotations

import numpy as np
import pytest

from sentrycam_widget.alerts import EarlyWatch, TrendRule, prediction_margin
from sentrycam_widget.errors import InputError
from sentrycam_widget.records import Alert


def test_trend_rule_quiet_on_noise_and_improvement_fires_on_a_sustained_rise():
    rng = np.random.default_rng(0)
    rule = TrendRule()
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(scale=0.2, size=60)
        improving = np.exp(-0.03 * np.arange(60) + noise)  # e.g. drift settling as it trains
        assert rule.positions(improving, True) == []
    rising = np.exp(np.r_[np.zeros(20), 0.25 * np.arange(1, 21)] + rng.normal(scale=0.1, size=40))
    fired = rule.positions(rising, True)
    assert fired and 20 < fired[0] < 32
    assert rule.positions(rising, False) == []  # the good direction never fires
    assert rule.positions(rising, None)[0] == fired[0]  # two-sided sees the rise too
    assert rule.positions(1 / rising, None)[0] == fired[0]  # and the mirrored fall


def test_trend_rule_noise_window_forgets_the_volatile_first_epochs():
    rng = np.random.default_rng(1)
    volatile = rng.normal(scale=1.0, size=40)  # the first epochs' fast moves
    quiet = rng.normal(scale=0.05, size=40)
    rise = 0.1 * np.arange(1, 11) + rng.normal(scale=0.05, size=10)
    series = np.exp(np.r_[volatile, quiet, rise])
    recent = TrendRule(min_gap=0.3, noise_window=24).positions(series, True)
    whole = TrendRule(min_gap=0.3, noise_window=None).positions(series, True)
    assert recent and recent[0] >= 80  # fires on the rise, not before it
    assert whole == []  # the whole-run noise, set by the first epochs, hides it


def test_prediction_margin_is_the_true_class_lead_and_falls_when_the_head_hedges():
    labels = np.array([0, 1, 2])
    sure = np.eye(3) * 20.0
    assert prediction_margin(sure, labels) == pytest.approx(1.0)
    assert prediction_margin(sure[[1, 2, 0]], labels) == pytest.approx(-1.0)  # all wrong
    hedging = np.array([[2.0, 2.0, -9.0], [-9.0, 2.0, 2.0], [2.0, -9.0, 2.0]])
    assert prediction_margin(hedging, labels) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError, match="labels must be"):
        prediction_margin(sure, labels[:2])


def _looks(n_looks: int, *, change_at: int | None = None, forget: int | None = None, seed=0):
    """Features of 10 well-separated classes; from ``change_at`` the features are increasingly
    scrambled (growing drift); from ``forget`` class ``3``'s logits point at class 4."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 30)
    means = rng.normal(size=(10, 32)) * 4
    base = means[labels] + rng.normal(size=(300, 32))
    looks = []
    for t in range(n_looks):
        features = base + 0.05 * rng.normal(size=base.shape)
        if change_at is not None and t >= change_at:
            features = features + 0.5 * 1.6 ** (t - change_at) * rng.normal(size=base.shape)
        logits = np.eye(10)[labels] * 5 + rng.normal(size=(300, 10))
        if forget is not None and t >= forget:
            logits[labels == 3] = np.eye(10)[4] * 5
        looks.append((np.maximum(features, 0), labels, logits))
    return looks


def _watch(looks, **kwargs):
    watch = EarlyWatch(**kwargs)
    for t, (features, labels, logits) in enumerate(looks):
        watch.update(features, step=5 * (t + 1), epoch=t // 4 + 1, labels=labels, logits=logits)
    return watch


def test_early_watch_quiet_on_a_steady_run():
    watch = _watch(_looks(40))
    assert watch.alerts == []
    assert len(watch.records) == 40 and "drift" in watch.records[1]


def test_early_watch_catches_growing_drift_and_agreement_with_steps():
    watch = _watch(_looks(40, change_at=20))
    first = {}
    for alert in watch.alerts:
        assert isinstance(alert, Alert) and alert.step is not None
        first.setdefault(alert.signal, alert.step)
    assert 100 < first["drift"] <= 150  # look 20 is step 105
    assert "early_combined" in first and first["early_combined"] >= first["drift"]
    combined = next(a for a in watch.alerts if a.signal == "early_combined")
    assert "independent signals" in combined.explanation and combined.value >= 2


def test_early_watch_names_the_forgotten_class():
    watch = _watch(_looks(30, forget=18))
    per_class = [a for a in watch.alerts if a.signal == "class_accuracy"]
    assert [a.class_index for a in per_class] == [3]
    assert per_class[0].step > 18 * 5 and "class 3 is being forgotten" in per_class[0].explanation


def test_early_watch_label_free_and_replay():
    looks = _looks(40, change_at=20)
    watch = EarlyWatch()
    for t, (features, _, _) in enumerate(looks):
        watch.update(features, step=t + 1, epoch=1)
    assert {"probe_accuracy", "fisher_ratio"}.isdisjoint(watch.records[-1])
    assert any(a.signal == "drift" for a in watch.alerts)
    replay = EarlyWatch()
    for record in watch.records:
        values = {k: v for k, v in record.items() if k not in ("step", "epoch", "classes")}
        replay.observe(values, step=record["step"], epoch=record["epoch"])
    assert replay.alerts == watch.alerts


def test_early_watch_rejects_bad_input():
    features, labels, _ = _looks(2)[0]
    watch = EarlyWatch()
    watch.update(features, step=10, epoch=1)
    with pytest.raises(InputError, match="steps must increase"):
        watch.update(features, step=10, epoch=1)
    with pytest.raises(InputError, match="together"):
        watch.update(features, step=11, epoch=1, labels=labels)
    with pytest.raises(InputError, match="changed shape"):
        watch.update(features[:, :5], step=12, epoch=1)
    with pytest.raises(InputError, match="unknown early signals"):
        EarlyWatch(signals=("loss",))
