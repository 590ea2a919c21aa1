"""Latent per-runner traits of the simulated fleet (what the pipeline should recover).

Every trait is drawn from its own deterministic random stream ``(seed, runner_index)``, so runner ``k``
has the same traits whatever the fleet size. Units are in the names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COHORTS",
    "KITS",
    "TIME_ZONES",
    "RunnerTraits",
    "draw_traits",
    "runner_rng",
]

#: clubs / clinics the simulated runners belong to
COHORTS: tuple[str, ...] = ("harbour-harriers", "uni-track-club", "physio-clinic-north", "trail-collective")
#: a few IANA zones (sessions are planned in local time)
TIME_ZONES: tuple[str, ...] = ("Europe/Berlin", "Europe/London", "America/New_York", "Australia/Sydney")
#: sensor kits: which devices a runner wears (watch always)
KITS: dict[str, tuple[str, ...]] = {
    "full": ("foot_imu", "pelvis_imu", "emg"),
    "feet": ("foot_imu",),
    "watch": (),
}
_KIT_P = (0.6, 0.25, 0.15)


def runner_rng(seed: int, runner_index: int, stream: int = 0) -> np.random.Generator:
    """Independent, reproducible random stream for one runner (``stream`` separates uses)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(runner_index), int(stream)]))


@dataclass(frozen=True)
class RunnerTraits:
    """Latent traits of one simulated runner.

    Attributes
    ----------
    runner_id : pseudonymous id ``r0000``.
    runner_index : position in the fleet (drives the random streams).
    cohort, time_zone, sex, birth_year_band : profile fields (``sex`` female|male).
    resting_hr_bpm, max_hr_bpm : true heart-rate anchors (always set here; ``profile_has_hr`` says whether
        the published RunnerProfile carries them).
    profile_has_hr : False for runners whose profile omits HR anchors (the daily job must estimate).
    kit : ``full`` (foot IMUs L+R 200 Hz, pelvis IMU 100 Hz, EMG shorts 100 Hz, watch 1 Hz), ``feet``
        (foot IMUs + watch) or ``watch``.
    glute_underactivation_left, glute_underactivation_right : 0..1, fraction by which gluteus maximus and
        medius amplitude is reduced on that side (0 = normal).
    glute_onset_lag_ms : gluteus maximus onset minus hamstring onset (ms); positive = glute fires after the
        hamstrings (recruitment inversion).
    calf_dominance, hamstring_dominance : >= 0, relative increase of gastrocnemius / hamstring amplitude.
    pelvic_drop_deg : contralateral pelvic drop during stance at rest (deg), before side and fatigue effects.
    knee_valgus : 0..1 tendency (scales foot pronation rate and stance-side pelvic drop).
    cadence_spm : steps/min at the runner's easy pace.
    easy_speed_m_s : easy pace (m/s).
    foot_strike_angle_deg : sagittal foot angle at initial contact (deg, + = heel strike; overstride proxy).
    fatigue_sensitivity : 0..1, how much form degrades late in long runs.
    gct_balance_left_pct : share of ground-contact time on the left foot (%), 50 = symmetric.
    vertical_oscillation_cm : pelvis vertical oscillation per step (peak-to-peak, cm).
    body_mass_kg : for power.
    """

    runner_id: str
    runner_index: int
    cohort: str
    time_zone: str
    sex: str
    birth_year_band: str
    resting_hr_bpm: int
    max_hr_bpm: int
    profile_has_hr: bool
    kit: str
    glute_underactivation_left: float
    glute_underactivation_right: float
    glute_onset_lag_ms: float
    calf_dominance: float
    hamstring_dominance: float
    pelvic_drop_deg: float
    knee_valgus: float
    cadence_spm: float
    easy_speed_m_s: float
    foot_strike_angle_deg: float
    fatigue_sensitivity: float
    gct_balance_left_pct: float
    vertical_oscillation_cm: float
    body_mass_kg: float

    @property
    def sensors(self) -> tuple[str, ...]:
        """Sensor kinds worn besides the watch."""
        return KITS[self.kit]

    def glute_underactivation(self, side: str) -> float:
        return self.glute_underactivation_left if side == "left" else self.glute_underactivation_right

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row["sensors"] = ",".join(self.sensors)
        return row


def draw_traits(seed: int, runner_index: int) -> RunnerTraits:
    """Draw the latent traits of runner ``runner_index`` of the fleet simulated with ``seed``.

    About a third of the fleet is "compensating": glute under-activation on one or both sides with
    correspondingly more calf and hamstring work, later glute onset and more pelvic drop.
    """
    rng = runner_rng(seed, runner_index, 0)
    sex = "female" if rng.random() < 0.45 else "male"
    birth_year = int(rng.integers(1962, 2004))
    band_start = birth_year - birth_year % 10
    age = 2025 - birth_year
    max_hr = int(round(np.clip(208 - 0.7 * age + rng.normal(0, 6), 160, 205)))
    rest_hr = int(round(np.clip(rng.normal(54 if sex == "male" else 57, 6), 38, 75)))
    kit = str(rng.choice(list(KITS), p=_KIT_P))

    compensating = rng.random() < 0.4
    base = rng.uniform(0.35, 0.6) if compensating else rng.uniform(0.0, 0.15)
    lazy_side = rng.integers(2)  # which glute is lazier
    side_gap = rng.uniform(0.0, 0.25) if compensating else rng.uniform(0.0, 0.05)
    ua = [base, base]
    ua[lazy_side] = min(0.85, base + side_gap)
    deficit = float(np.mean(ua))
    calf = float(np.clip(deficit * rng.uniform(0.6, 1.4) + rng.normal(0, 0.05), 0, 1.2))
    ham = float(np.clip(deficit * rng.uniform(0.4, 1.2) + rng.normal(0, 0.05), 0, 1.2))
    lag = float(np.clip(rng.normal(-25 + 110 * deficit, 12), -60, 80))
    valgus = float(np.clip(deficit * rng.uniform(0.5, 1.3) + rng.normal(0.1, 0.08), 0, 1))
    drop = float(np.clip(3.0 + 8.0 * deficit + 3.0 * valgus + rng.normal(0, 0.8), 1.5, 12.0))
    easy = float(rng.uniform(2.6, 3.6) * (0.93 if sex == "female" else 1.0))
    overstride = rng.random() < 0.3 + 0.3 * compensating
    strike = float(rng.uniform(12, 22) if overstride else rng.uniform(3, 10))
    cadence = float(np.clip(rng.normal(168 if not overstride else 158, 6) + 6 * (easy - 3.0), 148, 188))
    gct_bal = float(np.clip(50 + (ua[1] - ua[0]) * -6 + rng.normal(0, 0.6), 46, 54))
    return RunnerTraits(
        runner_id=f"r{runner_index:04d}",
        runner_index=runner_index,
        cohort=COHORTS[int(rng.integers(len(COHORTS)))],
        time_zone=TIME_ZONES[int(rng.integers(len(TIME_ZONES)))],
        sex=sex,
        birth_year_band=f"{band_start}-{band_start + 9}",
        resting_hr_bpm=rest_hr,
        max_hr_bpm=max_hr,
        profile_has_hr=bool(rng.random() < 0.7),
        kit=kit,
        glute_underactivation_left=float(ua[0]),
        glute_underactivation_right=float(ua[1]),
        glute_onset_lag_ms=lag,
        calf_dominance=calf,
        hamstring_dominance=ham,
        pelvic_drop_deg=drop,
        knee_valgus=valgus,
        cadence_spm=cadence,
        easy_speed_m_s=easy,
        foot_strike_angle_deg=strike,
        fatigue_sensitivity=float(np.clip(rng.beta(2, 3) + 0.3 * deficit, 0, 1)),
        gct_balance_left_pct=gct_bal,
        vertical_oscillation_cm=float(np.clip(rng.normal(8.0, 1.0) + (3.0 - easy), 5.5, 11.0)),
        body_mass_kg=float(np.clip(rng.normal(62 if sex == "female" else 74, 7), 45, 100)),
    )
