"""The white balance from catalogue colours: a known camera response is recovered."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsky.astrometry.colour_balance import MIN_STARS, SOLAR_B_V, balance

RED_RESPONSE = (0.40, -0.55)  # m_R - m_G = offset + slope (B-V)
BLUE_RESPONSE = (-0.20, 0.90)


def field(n: int, b_v: np.ndarray, rng: np.random.Generator, noise: float = 0.01):
    """n stars on a line of the sky, their catalogue twins 1" away, fluxes from B-V."""
    ra = 150.0 + np.arange(n) * 0.01
    dec = np.full(n, 30.0)
    green = 10.0 ** rng.uniform(3, 5, n)
    flux = {"GREEN": green}
    for name, (offset, slope) in (("RED", RED_RESPONSE), ("BLUE", BLUE_RESPONSE)):
        colour = offset + slope * b_v + rng.normal(0, noise, n)
        flux[name] = green * 10.0 ** (-0.4 * colour)
    usable = {k: np.ones(n, dtype=bool) for k in flux}
    return ra, dec, flux, usable, ra + 1.0 / 3600.0 / np.cos(np.radians(30.0)), dec


def test_a_known_response_gives_the_solar_white_balance() -> None:
    rng = np.random.default_rng(1)
    b_v = rng.uniform(0.2, 1.5, 30)
    ra, dec, flux, usable, cat_ra, cat_dec = field(30, b_v, rng)
    found = balance(ra, dec, flux, usable, cat_ra, cat_dec, b_v)
    assert found.calibrated, found.reason
    for name, (offset, slope) in (("RED", RED_RESPONSE), ("BLUE", BLUE_RESPONSE)):
        assert found.factors[name] == pytest.approx(
            10 ** (0.4 * (offset + slope * SOLAR_B_V)), rel=0.02
        )
        assert found.slopes[name] == pytest.approx(slope, abs=0.03)
    assert found.factors["GREEN"] == 1.0
    assert found.n_stars == 30 and found.scatter < 0.03
    assert np.allclose(found.b_v, b_v)
    # a solar-colour star times the factors is neutral
    sun = {
        n: 10 ** (-0.4 * (o + s * SOLAR_B_V))
        for n, (o, s) in (("RED", RED_RESPONSE), ("BLUE", BLUE_RESPONSE))
    }
    assert sun["RED"] * found.factors["RED"] == pytest.approx(1.0, rel=0.02)
    assert sun["BLUE"] * found.factors["BLUE"] == pytest.approx(1.0, rel=0.02)


def test_an_outlier_is_clipped() -> None:
    rng = np.random.default_rng(2)
    b_v = rng.uniform(0.2, 1.5, 20)
    ra, dec, flux, usable, cat_ra, cat_dec = field(20, b_v, rng)
    flux["RED"][3] *= 5.0  # a blend
    found = balance(ra, dec, flux, usable, cat_ra, cat_dec, b_v)
    offset, slope = RED_RESPONSE
    assert found.factors["RED"] == pytest.approx(
        10 ** (0.4 * (offset + slope * SOLAR_B_V)), rel=0.02
    )
    assert found.n_stars == 19


def test_too_few_or_saturated_stars_give_no_balance() -> None:
    rng = np.random.default_rng(3)
    b_v = rng.uniform(0.2, 1.5, 8)
    ra, dec, flux, usable, cat_ra, cat_dec = field(8, b_v, rng)
    usable["BLUE"][: 8 - MIN_STARS + 1] = False
    found = balance(ra, dec, flux, usable, cat_ra, cat_dec, b_v)
    assert not found.calibrated and found.factors == {}
    assert f"need {MIN_STARS}" in found.reason
    assert found.n_candidates == 8


def test_stars_of_one_colour_cannot_fix_a_slope() -> None:
    rng = np.random.default_rng(4)
    b_v = np.full(10, 0.6) + rng.uniform(0, 0.1, 10)
    ra, dec, flux, usable, cat_ra, cat_dec = field(10, b_v, rng)
    found = balance(ra, dec, flux, usable, cat_ra, cat_dec, b_v)
    assert not found.calibrated and "spans" in found.reason


def test_far_catalogue_stars_are_not_paired() -> None:
    rng = np.random.default_rng(5)
    b_v = rng.uniform(0.2, 1.5, 10)
    ra, dec, flux, usable, cat_ra, cat_dec = field(10, b_v, rng)
    found = balance(ra, dec, flux, usable, cat_ra + 10 / 3600, cat_dec, b_v)
    assert found.n_candidates == 0 and not found.calibrated
    assert np.isnan(found.b_v).all()


def test_a_mono_stack_is_not_colour_calibrated() -> None:
    found = balance(
        np.zeros(3), np.zeros(3), {"LUM": np.ones(3)}, {"LUM": np.ones(3, bool)},
        np.zeros(3), np.zeros(3), np.zeros(3),
    )  # fmt: skip
    assert not found.calibrated and found.reason == "not an RGB stack"
