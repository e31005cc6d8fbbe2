"""Localization against the Cramér–Rao/Mortensen limits (tolerances from sampling theory:
the standard deviation of n errors has relative standard error 1/√(2n))."""

import numpy as np
import pandas as pd
import pytest

from smlmnet.data.contracts import Movie
from smlmnet.io.tables import read_thunderstorm_csv, to_thunderstorm, write_csv
from smlmnet.localize import SpotFitLocalizer, detect_spots, extract_rois, fit_centroid
from smlmnet.localize.fit import fit_gaussian_mle
from smlmnet.metrics import mortensen_precision_nm
from smlmnet.simulate.psf import pixel_integrals


def spots(rng, n, N=1000.0, b=10.0, sigma_px=1.3, s=11):
    x = s / 2 + rng.uniform(-0.5, 0.5, n)
    y = s / 2 + rng.uniform(-0.5, 0.5, n)
    mu = b + N * pixel_integrals(y, sigma_px, s)[:, :, None] * pixel_integrals(x, sigma_px, s)[
        :, None, :]
    return rng.poisson(mu).astype(float), x, y


def test_mortensen_reference_values():
    # N = 1000 photons, b = 10 photons/px, σ = 130 nm, a = 100 nm (Mortensen et al. 2010)
    assert mortensen_precision_nm(1000, 10, 130, 100) == pytest.approx(5.625, abs=5e-4)
    assert mortensen_precision_nm(1000, 10, 130, 100, estimator="mle_closed_form") == \
        pytest.approx(5.71, abs=5e-3)
    assert mortensen_precision_nm(1000, 10, 130, 100, estimator="least_squares") == \
        pytest.approx(6.28, abs=5e-3)


def test_mle_reaches_the_mortensen_bound(rng):
    n = 4000
    data, x, y = spots(rng, n)
    fit = fit_gaussian_mle(data, 1.3)
    assert fit["converged"].mean() > 0.99
    err_nm = np.concatenate([fit["x"] - x, fit["y"] - y]) * 100
    bound = mortensen_precision_nm(1000, 10, 130, 100)  # exact MLE bound, 5.625 nm
    tol = 5 / np.sqrt(2 * 2 * n)
    # an efficient fit sits at the exact bound: not below it, and (σ free) at most a few % above
    assert 1 - tol < err_nm.std() / bound < 1.03 + tol
    assert abs(err_nm.mean()) < 5 * bound / np.sqrt(2 * n)  # unbiased
    # the reported per-fit CRLB is calibrated: errors / CRLB ~ N(0, 1)
    z = np.concatenate([(fit["x"] - x) / fit["crlb_x"], (fit["y"] - y) / fit["crlb_y"]])
    assert abs(z.std() - 1) < 0.05 + tol
    assert abs(np.median(fit["photons"]) / 1000 - 1) < 0.02
    assert abs(np.median(fit["bg"]) / 10 - 1) < 0.02
    assert abs(np.median(fit["sigma"]) / 1.3 - 1) < 0.02


def test_centroid_is_worse_than_mle(rng):
    data, x, _ = spots(rng, 2000)
    c = fit_centroid(data)
    m = fit_gaussian_mle(data, 1.3)
    assert (c["x"] - x).std() > 1.2 * (m["x"] - x).std()


def test_detection_and_rois_at_borders(rng):
    frames = rng.poisson(5.0, (2, 32, 32)).astype(float)
    for f, (r, c) in enumerate([(16, 16), (1, 30)]):
        frames[f] += 2000 * pixel_integrals(np.array([r + 0.5]), 1.2, 32)[0][:, None] * \
            pixel_integrals(np.array([c + 0.5]), 1.2, 32)[0][None, :]
    found = detect_spots(frames, 1.2, threshold=5)
    assert {(int(f), int(r), int(c)) for f, r, c in found} == {(0, 16, 16), (1, 1, 30)}
    rois, corners = extract_rois(frames, found, 3)
    assert rois.shape == (2, 7, 7)
    assert (corners >= 0).all() and (corners + 7 <= 32).all()


def test_localizer_on_a_movie_converts_camera_units(rng):
    # sCMOS movie of one bright emitter: photons come back through the camera conversion
    N, b, qe, e_per_adu, base = 3000.0, 8.0, 0.8, 0.5, 100.0
    mu = b + N * pixel_integrals(np.array([12.3]), 1.3, 24)[0][:, None] * pixel_integrals(
        np.array([10.8]), 1.3, 24)[0][None, :]
    electrons = rng.poisson(qe * np.broadcast_to(mu, (50, 24, 24)))
    adu = np.rint(electrons / e_per_adu) + base
    movie = Movie(adu.astype(np.uint16), 100.0, 0.01, camera={
        "model": "scmos", "qe": qe, "e_per_adu": e_per_adu, "baseline_adu": base,
        "read_noise_e": 0.0})
    locs = SpotFitLocalizer("mle", psf_sigma_nm=130).localize(movie)
    assert len(locs) == 50
    assert abs(locs["x [nm]"].mean() - 1080) < 5 and abs(locs["y [nm]"].mean() - 1230) < 5
    assert abs(locs["photons [photon]"].mean() / N - 1) < 0.03
    assert abs(locs["bg [photon/px]"].mean() / b - 1) < 0.05


def test_thunderstorm_roundtrip(tmp_path):
    locs = pd.DataFrame({"frame": [0, 0, 3], "x [nm]": [10.5, 200.0, 3.25],
                         "y [nm]": [1.0, 2.0, 3.0], "photons [photon]": [100.0, 200.0, 300.0],
                         "uncertainty_xy [nm]": [5.0, 6.0, 7.0]})
    path = write_csv(to_thunderstorm(locs), tmp_path / "ts.csv")
    header = path.read_text().splitlines()[0]
    assert header.startswith("id,frame,x [nm],y [nm],sigma [nm],intensity [photon]")
    back = read_thunderstorm_csv(path)
    assert back["frame"].tolist() == [0, 0, 3]
    assert np.allclose(back["x [nm]"], locs["x [nm]"])
    assert np.allclose(back["photons [photon]"], locs["photons [photon]"])
