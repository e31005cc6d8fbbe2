"""`smlmnet analyze` end to end and its bad-input errors."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from smlmnet.cli import main
from smlmnet.simulate import load_config, save_dataset, simulate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "ds"
    res = simulate(load_config("sptpalm_membrane", ["n_frames=40", "fov.shape_px=[48,48]",
                                                    "particles.density_per_um2=6"]))
    save_dataset(res, folder)
    return folder, res


def test_analyze_writes_all_outputs_and_never_touches_input(dataset, tmp_path, capsys):
    folder, res = dataset
    movie = folder / "movie.tif"
    before = movie.read_bytes()
    out = tmp_path / "analysis"
    assert main(["analyze", str(movie), "-o", str(out), "-q", "--psf-sigma-nm", "110"]) == 0
    assert movie.read_bytes() == before
    locs = pd.read_csv(out / "localizations.csv")
    assert list(locs.columns)[:4] == ["id", "frame", "x [nm]", "y [nm]"]
    assert locs["frame"].min() >= 1  # ThunderSTORM frames are 1-based
    tracks = pd.read_csv(out / "tracks.csv")
    assert {"track_id", "frame", "t [s]", "x [nm]", "y [nm]"} <= set(tracks.columns)
    tp = pd.read_csv(out / "tracks_trackpy.csv")
    assert {"frame", "particle", "x", "y"} <= set(tp.columns)
    assert np.allclose(tp["x"], tracks["x [nm]"] / 100 - 0.5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_localizations"] == len(locs) > 20
    assert (out / "report.png").stat().st_size > 0
    # the camera and calibration came from the TIFF metadata
    assert summary["blur_coefficient_R"] == pytest.approx(1 / 6)
    # refuse to overwrite
    assert main(["analyze", str(movie), "-o", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_analyze_bad_inputs(tmp_path, capsys):
    text = tmp_path / "notes.tif"
    text.write_text("hello")
    assert main(["analyze", str(text), "-o", str(tmp_path / "a")]) == 2
    assert "not a readable TIFF" in capsys.readouterr().err

    four_d = tmp_path / "4d.tif"
    tifffile.imwrite(four_d, np.zeros((2, 2, 8, 8), np.uint16))
    assert main(["analyze", str(four_d), "--pixel-size-nm", "100", "--frame-time-s", "0.01",
                 "-o", str(tmp_path / "b")]) == 2
    assert "single-channel movie" in capsys.readouterr().err

    zeros = tmp_path / "zeros.tif"
    tifffile.imwrite(zeros, np.zeros((5, 16, 16), np.uint16))
    assert main(["analyze", str(zeros), "--pixel-size-nm", "100", "--frame-time-s", "0.01",
                 "--camera", "scmos", "-o", str(tmp_path / "c")]) == 2
    assert "blank" in capsys.readouterr().err

    assert main(["analyze", str(zeros), "-o", str(tmp_path / "d")]) == 2
    assert "pixel size" in capsys.readouterr().err

    assert main(["analyze", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "e")]) == 2
    assert "no such movie" in capsys.readouterr().err
    for name in "abcde":
        assert not (tmp_path / name).exists()
