"""Alert signals and triggers (SPEC §5) on synthetic sequences with known answers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from sentrycam_widget.alerts import (
    SIGNALS,
    AlertEngine,
    ReferenceRule,
    RobustRule,
    dead_unit_fraction,
    effective_rank,
    first_firing,
    fisher_ratio,
    inter_class_distance,
    intra_class_variance,
    linear_cka,
    nc1,
)
from sentrycam_widget.errors import InputError, RunFormatError
from sentrycam_widget.records import Alert, Checkpoint, Frame

SEEDS = [0, 1, 2, 3, 4]


def _clustered(n_per_class: int, n_classes: int, dim: int, separation: float, seed: int):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, dim)) * separation
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return means[labels] + rng.normal(size=(labels.size, dim)), labels


# --- signals ---------------------------------------------------------------------------------


def test_class_geometry_on_known_layout():
    points = np.array([[0.0, 1.0], [0.0, -1.0], [4.0, 2.0], [4.0, -2.0]])
    labels = np.array([0, 0, 1, 1])
    assert intra_class_variance(points, labels) == pytest.approx((1.0 + 4.0) / 2)
    assert inter_class_distance(points, labels) == pytest.approx(4.0)
    # S_B: each centroid is 2 away from the centre; S_W: 1 + 1 + 4 + 4.
    assert fisher_ratio(points, labels) == pytest.approx(4 * 4.0 / 10.0)


def test_collapsing_class_means_lower_fisher_ratio_and_raise_nc1():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(5, 20)) * 4.0
    labels = np.repeat(np.arange(5), 60)
    noise = rng.normal(size=(300, 20))
    fishers, nc1s = [], []
    for shrink in (1.0, 0.5, 0.25, 0.1):
        features = means[labels] * shrink + noise
        fishers.append(fisher_ratio(features, labels))
        nc1s.append(nc1(features, labels))
    assert all(a > b for a, b in itertools.pairwise(fishers))
    assert all(a < b for a, b in itertools.pairwise(nc1s))
    assert fisher_ratio(10.0 * features, labels) == pytest.approx(fishers[-1])


def test_nc1_matches_the_textbook_formula():
    features, labels = _clustered(40, 4, 12, separation=2.0, seed=1)
    means = np.stack([features[labels == c].mean(axis=0) for c in range(4)])
    residuals = features - means[labels]
    sigma_w = residuals.T @ residuals / features.shape[0]
    centred = means - means.mean(axis=0)
    sigma_b = centred.T @ centred / 4
    expected = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / 4
    assert nc1(features, labels) == pytest.approx(expected, rel=1e-8)


def test_rank_deficient_features_have_lower_effective_rank():
    rng = np.random.default_rng(2)
    full = rng.normal(size=(400, 16))
    low = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 16))
    assert effective_rank(full) > 14.0
    assert effective_rank(low) <= 3.0 + 1e-9
    assert effective_rank(np.ones((50, 8))) == 0.0


def test_effective_rank_of_equal_singular_values_is_the_rank():
    # Centred columns that are orthogonal with equal norms: r equal singular values.
    basis = np.kron(np.eye(4), np.array([[1.0], [-1.0]]))  # [8, 4]
    assert effective_rank(basis) == pytest.approx(4.0)


def test_linear_cka_identity_invariance_and_independence():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 10))
    rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ rotation + 1.0) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(500, 10))) < 0.05
    wide = rng.normal(size=(50, 80))  # more features than points: the Gram path
    assert linear_cka(wide, wide) == pytest.approx(1.0)
    assert linear_cka(wide, rng.normal(size=(50, 80))) < 0.7
    assert np.isnan(linear_cka(x, np.ones((500, 3))))


def test_dead_unit_fraction_is_exact():
    rng = np.random.default_rng(4)
    features = np.abs(rng.normal(size=(100, 8))) + 0.1
    features[:, [1, 4]] = 0.0
    features[:, 6] = -np.abs(rng.normal(size=100))
    features[0, 7] = 0.0  # zero on one point only: alive
    assert dead_unit_fraction(features) == pytest.approx(3 / 8)


def test_signals_reject_bad_input():
    with pytest.raises(InputError, match="two classes"):
        fisher_ratio(np.ones((5, 2)), np.zeros(5, dtype=int))
    with pytest.raises(InputError, match="NaN"):
        effective_rank(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(InputError, match="same points"):
        linear_cka(np.ones((5, 2)), np.ones((6, 2)))


# --- triggers --------------------------------------------------------------------------------


def test_reference_rule_respects_burn_in_and_two_consecutive_steps():
    rule = ReferenceRule()
    flat = [10.0] * 12
    early = list(flat)
    early[2:4] = [9.0, 8.0]  # two drops inside the burn-in
    assert rule.positions(early, higher_is_bad=False) == []
    single = list(flat)
    single[7] = 5.0  # one drop, then a recovery: not sustained
    assert rule.positions(single, higher_is_bad=False) == []
    twice = [10.0] * 6 + [9.0, 8.0, 8.0, 8.0]
    assert rule.positions(twice, higher_is_bad=False) == [7]
    assert rule.positions(twice, higher_is_bad=True) == []
    assert rule.positions([-v for v in twice], higher_is_bad=True) == [7]


def test_reference_rule_needs_last_step_above_fraction_of_recent_std():
    rng = np.random.default_rng(5)
    wiggle = list(10.0 + rng.normal(size=10))
    big_steps = [*wiggle, wiggle[-1] - 1.0, wiggle[-1] - 2.0]
    margin = 0.2 * np.std(big_steps[1:11])
    tiny_steps = [*wiggle, wiggle[-1] - margin / 4, wiggle[-1] - margin / 2]
    assert 11 in ReferenceRule().positions(big_steps, higher_is_bad=False)
    assert 11 not in ReferenceRule().positions(tiny_steps, higher_is_bad=False)


def test_reference_rule_fires_on_a_decline_after_steady_improvement():
    series = [1.0 + 0.1 * t for t in range(15)] + [2.3, 2.0, 1.6, 1.2]
    assert ReferenceRule().positions(series, higher_is_bad=False)[0] == 16


@pytest.mark.parametrize("seed", SEEDS)
def test_robust_rule_fires_at_a_step_and_only_in_the_bad_direction(seed):
    rng = np.random.default_rng(seed)
    series = 50.0 + rng.normal(size=40)
    series[20:] -= 10.0
    assert RobustRule().positions(series, higher_is_bad=False)[0] == 20
    assert RobustRule().positions(series, higher_is_bad=True) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_robust_rule_quiet_on_stationary_noise_of_the_same_variance(seed):
    rng = np.random.default_rng(100 + seed)
    step = np.r_[np.zeros(20), -10.0 * np.ones(20)] + rng.normal(size=40)
    noise = 50.0 + rng.normal(size=40) * step.std()
    assert RobustRule().positions(noise, higher_is_bad=False) == []
    assert RobustRule().positions(noise, higher_is_bad=True) == []


def test_reference_rule_is_twitchy_on_noise_where_robust_rule_is_not():
    """The paper's rule alarms on most pure-noise series: the weakness the robust rule fixes."""
    reference_alarms = robust_alarms = 0
    for seed in range(10):
        noise = 50.0 + np.random.default_rng(200 + seed).normal(size=40)
        reference_alarms += bool(ReferenceRule().positions(noise, higher_is_bad=False))
        robust_alarms += bool(RobustRule().positions(noise, higher_is_bad=False))
    assert reference_alarms >= 8
    assert robust_alarms == 0


def test_robust_rule_ignores_negligible_changes_of_a_smooth_signal():
    series = [0.999 + 1e-6 * (t % 2) for t in range(15)] + [0.995]
    assert RobustRule().positions(series, higher_is_bad=False) == []
    assert RobustRule().positions([*series[:-1], 0.9], higher_is_bad=False) == [15]


# --- engine ----------------------------------------------------------------------------------


def _run(n_ckpt, collapse_at=None, kill_quiet_units_at=None, seed=0, val_loss=None, frames=True):
    """Checkpoints of 10 classes in 16 informative dims plus 4 quiet positive dims (ReLU-like).

    Fresh feature noise every checkpoint, a fixed 2-D layout; ``collapse_at`` shrinks the class means 5x from then on,
    ``kill_quiet_units_at`` zeroes the quiet dims (dead units that carry no information).
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 30)
    means = rng.normal(size=(10, 16)) * 3.0
    layout_means = rng.normal(size=(10, 2)) * 5.0
    layout_noise = rng.normal(size=(300, 2))
    checkpoints, frame_list = [], []
    for t in range(n_ckpt):
        shrink = 0.2 if collapse_at is not None and t >= collapse_at else 1.0
        informative = 20.0 + means[labels] * shrink + rng.normal(size=(300, 16))
        quiet = 0.01 + 1e-4 * rng.random(size=(300, 4))
        if kill_quiet_units_at is not None and t >= kill_quiet_units_at:
            quiet[:] = 0.0
        scalars = {} if val_loss is None else {"val_loss": float(val_loss[t])}
        checkpoints.append(
            Checkpoint(t, t + 1, np.hstack([informative, quiet]), labels, scalars=scalars)
        )
        embedding = layout_means[labels] * shrink + layout_noise
        frame_list.append(Frame("test", t, t + 1, embedding) if frames else None)
    return checkpoints, frame_list


def _robust_or_combined(alerts):
    return [a for a in alerts if a.trigger != "reference"]


def test_engine_quiet_on_a_stationary_run():
    checkpoints, frames = _run(25)
    engine = AlertEngine()
    alerts = engine.run(checkpoints, frames)
    assert _robust_or_combined(alerts) == []
    assert len(engine.records) == 25
    assert {"fisher_ratio", "nc1", "effective_rank", "dead_fraction", "between_within_2d"} <= set(
        engine.records[0]
    )
    assert "cka_prev" in engine.records[1] and "cka_prev" not in engine.records[0]


def test_engine_combined_alert_fires_when_independent_signals_agree():
    checkpoints, frames = _run(20, collapse_at=12)
    alerts = AlertEngine().run(checkpoints, frames)
    first = first_firing(alerts)
    assert first["fisher_ratio"] == 12
    assert first["nc1"] == 12
    assert first["cka_prev"] == 12
    assert first["between_within_2d"] == 12
    assert first["combined"] == 12
    assert all(a.checkpoint >= 12 for a in _robust_or_combined(alerts))
    combined = next(a for a in alerts if a.signal == "combined")
    assert combined.value >= 2 and combined.threshold == 2


def test_engine_combined_alert_needs_two_signal_families():
    checkpoints, _ = _run(20, kill_quiet_units_at=12)
    alerts = AlertEngine().run(checkpoints)
    first = first_firing(alerts)
    assert first["dead_fraction"] == 12
    assert first["combined"] is None


def test_combined_alert_ignores_agreement_within_one_family():
    """Fisher ratio and NC1 both fire (one family, class separation), nothing else: no alert."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(5), 40)
    means = rng.normal(size=(5, 4))
    fixed = rng.normal(size=(200, 16)) * 10.0  # dominant per-point structure, never changes,
    for c in range(5):  # and carries no class information (equal class means)
        fixed[labels == c] -= fixed[labels == c].mean(axis=0)
    checkpoints = []
    for t in range(20):
        shrink = 0.1 if t >= 12 else 1.0
        informative = means[labels] * shrink + 0.3 * rng.normal(size=(200, 4))
        checkpoints.append(Checkpoint(t, t, 100.0 + np.hstack([fixed, informative]), labels))
    first = first_firing(AlertEngine().run(checkpoints))
    assert first["fisher_ratio"] == 12 and first["nc1"] == 12
    assert first["cka_prev"] is None and first["effective_rank"] is None
    assert first["combined"] is None


def test_engine_reference_signals_and_val_loss_baseline():
    n = 16
    val_loss = [1.0 - 0.05 * t for t in range(10)] + [0.6, 0.7, 0.8, 0.9, 1.0, 1.1]
    checkpoints, frames = _run(n, val_loss=val_loss)
    for t in range(10, n):  # classes diffuse in the layout from checkpoint 10 on
        frames[t].embedding *= 1.0 + 0.5 * (t - 9)
    alerts = AlertEngine().run(checkpoints, frames)
    first = first_firing(alerts)
    assert first["val_loss"] == 11
    assert first["intra_class_variance_2d"] == 11
    assert first["reference"] == min(
        v for v in (first["intra_class_variance_2d"], first["inter_class_distance_2d"]) if v
    )
    assert first["between_within_2d"] is None  # scaling the layout is not a geometry change


def test_alert_records_are_complete_json_and_one_line():
    checkpoints, frames = _run(20, collapse_at=12)
    alerts = AlertEngine().run(checkpoints, frames)
    assert alerts
    for alert in alerts:
        assert isinstance(alert, Alert)
        stored = alert.to_dict()
        assert set(stored) == {
            "checkpoint",
            "epoch",
            "signal",
            "trigger",
            "value",
            "threshold",
            "level",
            "explanation",
        }
        assert alert.epoch == alert.checkpoint + 1
        assert "\n" not in alert.explanation and alert.explanation
        assert Alert.from_dict(json.loads(json.dumps(stored))) == alert


def test_alerts_carry_the_checkpoint_step():
    checkpoints, frames = _run(20, collapse_at=12)
    for checkpoint in checkpoints:
        checkpoint.step = 50 * (checkpoint.index + 1)
    alerts = AlertEngine().run(checkpoints, frames)
    assert alerts and all(a.step == 50 * (a.checkpoint + 1) for a in alerts)
    assert all(a.to_dict()["step"] == a.step for a in alerts)


def test_alert_json_of_older_runs_and_new_fields_round_trip():
    old = {
        "checkpoint": 3,
        "epoch": 4,
        "signal": "combined",
        "trigger": "agreement",
        "value": 2.0,
        "threshold": 2.0,
        "level": None,
        "explanation": "epoch 4: 2 independent signals agree",
    }
    alert = Alert.from_dict(old)
    assert alert.step is None and alert.class_index is None and alert.method is None
    assert alert.to_dict() == old  # what older versions wrote is written back unchanged
    new = Alert(3, 4, "class_accuracy", "trend", 0.5, 0.3, 0.4, "class 3", 77, 3, "sentrycam")
    assert Alert.from_dict(json.loads(json.dumps(new.to_dict()))) == new
    with pytest.raises(RunFormatError, match="lacks explanation"):
        Alert.from_dict({k: v for k, v in old.items() if k != "explanation"})
    with pytest.raises(RunFormatError, match="wrong type"):
        Alert.from_dict({**old, "checkpoint": "three"})


def test_engine_streaming_equals_offline_run():
    checkpoints, frames = _run(18, collapse_at=12)
    live = AlertEngine()
    streamed = [a for c, f in zip(checkpoints, frames, strict=True) for a in live.update(c, f)]
    assert streamed == AlertEngine().run(checkpoints, frames)
    assert live.alerts == streamed


def test_engine_rejects_out_of_order_and_mismatched_input():
    checkpoints, frames = _run(3)
    engine = AlertEngine()
    engine.update(checkpoints[1], frames[1])
    with pytest.raises(InputError, match="increasing index order"):
        engine.update(checkpoints[0], frames[0])
    with pytest.raises(InputError, match="does not belong"):
        engine.update(checkpoints[2], frames[1])
    small = Checkpoint(5, 6, checkpoints[2].features[:100], checkpoints[2].labels[:100])
    with pytest.raises(InputError, match="probe set changed"):
        engine.update(small)
    with pytest.raises(InputError, match="one frame"):
        AlertEngine().run(checkpoints, frames[:2])


def test_first_firing_lists_every_signal():
    first = first_firing([])
    assert set(first) == {*SIGNALS, "reference", "combined"}
    assert all(v is None for v in first.values())
    with pytest.raises(InputError, match="unknown alert signal"):
        first_firing([Alert(1, 2, "nope", "robust_z", 7.0, 6.0, 1.0, "epoch 2: ?")])
