"""evaluate.py: every benchmark config composes and runs on a tiny problem."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from smlmnet.evaluation import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "localization_crlb": ["benchmark.n_spots=200"],
    "localization": ["benchmark.densities=[0.5]",
                     "benchmark.simulation.overrides=['n_frames=3']"],
    "decode": ["benchmark.regimes.0.overrides=['n_frames=3','fov.shape_px=[32,32]',"
               "'particles.motions=[{model: immobile}]']",
               "benchmark.regimes.1.overrides=['n_frames=3','fov.shape_px=[32,32]']"],
    "linking": ["benchmark.densities=[1.5]",
                "benchmark.simulation.overrides=['n_frames=20','fov.shape_px=[32,32]']",
                "benchmark.scaling.n_locs=500", "benchmark.scaling.n_frames=20",
                "benchmark.scaling.skip=[laptrack]",
                "benchmark.grid.densities=[0.5]", "benchmark.grid.D_um2_s=[0.5]",
                "benchmark.grid.seeds=2", "benchmark.grid.n_frames=12",
                "benchmark.grid.side_um=4", "benchmark.grid.search_radius_nm=[500]",
                "benchmark.grid.max_gap=[2]", "benchmark.grid.d_error=false",
                "benchmark.grid.extra_cells={switching: [0.5]}"],
    "diffusion": ["benchmark.n_tracks=20", "benchmark.n_points=20", "benchmark.epsilons=[0,2]"],
    "andi_alpha": ["benchmark.n_trajectories=20", "benchmark.lengths=[10,50]"],
    "andi1": ["benchmark.seeds=[1,2]", "benchmark.n_trajectories=10", "benchmark.n_short=5",
              "benchmark.max_length=60", "benchmark.cp_n=10", "benchmark.cp_length=40"],
    "andi2_trajectory": ["benchmark.seeds=[1,2]", "benchmark.experiments=1", "benchmark.T=30",
                         "benchmark.particles=5",
                         "benchmark.classical={cp_threshold: 20, k_immobile: 0.01, "
                         "alpha_confined: 0.0}"],
    # the full chain on 2 seeds × 2 models of 6 particles, 32×32 px × 40 frames
    "andi2_video": ["benchmark.seeds=[1,2]", "benchmark.models=[single_state,multi_state]",
                    "benchmark.particles=6", "benchmark.min_track_points=10",
                    "benchmark.simulation.overrides=['n_frames=40','fov.shape_px=[32,32]']",
                    "benchmark.tune_learned_threshold=false",
                    "benchmark.classical={cp_threshold: 20, k_immobile: 0.01, "
                    "alpha_confined: 0.0}"],
    "generalist": ["benchmark.seeds=[1,2]",
                   "benchmark.regimes=[{name: tiny, preset: decode_sptpalm, methods: "
                   "[specialist, mle], psf_sigma_px: [1.1], cameras: [emccd, poisson], "
                   "overrides: ['n_frames=3','fov.shape_px=[32,32]']}]"],
    # the shipped pixel-diffusion models on 2 seeds × 2 cells × 4 molecules
    "pixel_diffusion": ["benchmark.seeds=[1,2]", "benchmark.n_per_cell=4",
                        "benchmark.speed_tubelets=16", "benchmark.speed_repeats=1",
                        "benchmark.mle_per_cell=2", "benchmark.D_um2_s=[0.1]",
                        "benchmark.exposure_fraction=[0.0,1.0]", "benchmark.lengths=[4]"],
    "pixel_anomalous": ["benchmark.seeds=[1,2]", "benchmark.n_per_cell=4",
                        "benchmark.speed_tubelets=16", "benchmark.speed_repeats=1",
                        "benchmark.alpha=[0.5,1.5]", "benchmark.exposure_fraction=[1.0]",
                        "benchmark.lengths=[8]"],
}


def compose_benchmark(name, overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        return compose("evaluate", overrides=[f"benchmark={name}", *overrides])


@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs_and_writes_reports(name, tmp_path):
    cfg = compose_benchmark(name, TINY[name])
    table = run_benchmark(cfg, tmp_path)
    assert len(table) > 0
    mds = list(tmp_path.glob("*.md"))
    csvs = list(tmp_path.glob("*.csv"))
    assert mds and csvs
    text = mds[0].read_text()
    assert "Command: `python" in text and "|---|" in text
    # every result records where it comes from, and the resolved config
    assert "Commit: `" in text and "numpy" in text and "torch threads" in text
    record = json.loads(mds[0].with_suffix(".json").read_text())
    prov = record["provenance"]
    assert {"command", "commit", "versions", "cpu", "cpu_cores", "torch_threads"} <= set(prov)
    assert {"smlmnet", "numpy", "scipy", "torch", "lightning"} <= set(prov["versions"])
    assert record["config"]["kind"] == cfg.benchmark.kind
    assert len(record["table"]) == len(table)


def test_localization_bounds_are_labelled_and_normalized(tmp_path):
    cfg = compose_benchmark("localization_crlb", TINY["localization_crlb"])
    table = run_benchmark(cfg, tmp_path)
    text = (tmp_path / "localization_crlb.md").read_text()
    assert "exact integral" in text and "closed-form approximation" in text
    assert "5.625 nm" in text and "5.710 nm" in text  # N = 1000, b = 10, σ = 130, a = 100 nm
    for col in ("precision / exact bound", "mean z² (exact bound)", "|z| < 1 [%]",
                "|z| < 2 [%]", "mean z² (own CRLB)"):
        assert col in table
    mle = table.set_index("method").loc["smlmnet MLE (σ free)"]
    assert 0.8 < mle["precision / exact bound"] < 1.3  # 200 spots: ±5 % standard error
    # the notes are generated from the config, not written by hand
    cfg = compose_benchmark("localization_crlb", TINY["localization_crlb"] +
                            ["benchmark.photons=2000", "benchmark.pixel_size_nm=110"])
    run_benchmark(cfg, tmp_path / "b")
    text = (tmp_path / "b" / "localization_crlb.md").read_text()
    assert "N = 2000 photons" in text and "pixel 110 nm" in text


def test_every_benchmark_config_is_covered():
    names = {p.stem for p in (ROOT / "configs" / "benchmark").glob("*.yaml")}
    # transfer and odd_input need a folder of movies: tests/test_transfer.py makes them;
    # linking_external a folder of fields: test_linking_external_runs_on_a_fields_folder;
    # pixel_diffusion_external and pixel_anomalous_external a folder of movies:
    # test_pixel_diffusion_external_runs_..., test_pixel_anomalous_external_runs_...
    assert names == set(TINY) | {"transfer", "odd_input", "linking_external",
                                 "pixel_diffusion_external", "pixel_anomalous_external"}


def test_linking_external_runs_on_a_fields_folder(tmp_path):
    """The external linking benchmark on a folder laid out as
    benchmarks/external/make_andi2_linking_fields.py writes it (here two Brownian fields made
    with numpy, so the test needs no andi-datasets): LAP tuned on the tuning field, the
    transformer beside it, paired Δα per cell."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fields"
    root.mkdir()
    files = []
    for seed, tuning in ((9, True), (1, False), (2, False)):
        T, N = 12, 30
        pos = rng.uniform(0, 40, (1, N, 2)) + np.cumsum(rng.normal(0, 1.4, (T, N, 2)), 0)
        rows = np.column_stack([np.repeat(np.arange(T), N), np.tile(np.arange(N), T),
                                pos.reshape(-1, 2), np.ones(T * N), np.full(T * N, 2.0),
                                np.full(T * N, 2)])
        name = f"single_state_n{N}_s{seed}.csv"
        np.savetxt(root / name, rows, delimiter=",", comments="", fmt="%.4f",
                   header="frame,track_id,x [px],y [px],alpha,D [px^2/frame],state")
        files.append({"file": name, "model": "single_state", "n": N, "seed": seed,
                      "tuning": tuning})
    (root / "fields.json").write_text(json.dumps({"files": files}))
    cfg = compose_benchmark("linking_external", [
        f"benchmark.fields_root={root}", "benchmark.movies.enabled=false",
        "benchmark.lap_search_radius_nm=[500]", "benchmark.lap_max_gap=[1,2]"])
    table = run_benchmark(cfg, tmp_path / "out")
    assert set(table["linker"]) == {"LAP", "transformer"}
    assert (table["seeds"] == 2).all() and table["alpha"].between(0.3, 1).all()
    text = (tmp_path / "out" / "linking_external.md").read_text()
    assert "Δα vs tuned LAP" in text and "localizations/s" in text


def test_evaluate_cli_unknown_benchmark_fails_clearly(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "benchmark=nope",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode != 0
    assert "nope" in proc.stderr


def test_provenance_and_the_one_reproduce_command():
    from smlmnet.io.provenance import git_commit, provenance, reproduce_command

    assert reproduce_command([str(ROOT / "evaluate.py"), "benchmark=decode", "a.b=[1, 2]"]) == \
        "python evaluate.py benchmark=decode 'a.b=[1, 2]'"
    assert reproduce_command([str(ROOT / "benchmarks" / "bench_render_vs_andi.py")]) == \
        "python benchmarks/bench_render_vs_andi.py"
    commit = git_commit()
    assert commit == "unknown" or len(commit.split("+")[0]) == 40
    prov = provenance(["evaluate.py"])
    assert prov["cpu_cores"] >= 1 and prov["cpu"] and prov["torch_threads"] >= 1


def test_git_commit_ignores_stored_results_but_not_code(tmp_path, monkeypatch):
    """A benchmark writing into its tracked results folder is not 'dirty'; a code change is."""
    import smlmnet.io.provenance as prov

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results" / "x").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "x" / "table.md").write_text("a\n")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(prov, "_REPO", tmp_path)
    assert "+" not in prov.git_commit() and len(prov.git_commit()) == 40
    (tmp_path / "benchmarks" / "results" / "x" / "table.md").write_text("b\n")
    assert not prov.git_commit().endswith("+dirty")
    (tmp_path / "code.py").write_text("a = 2\n")
    assert prov.git_commit().endswith("+dirty")


def _write_external_pixel_movie(folder, D, f, seed, n_side=3, pitch=16, frames=6,
                                alpha=None):
    """A tiny movie laid out as benchmarks/external/make_andi_pixel_movies.py writes it
    (isolated Brownian molecules, Gaussian PSF, Poisson counts; numpy only, no andi). With
    ``alpha``, render.json says so, as the script's --alpha grid does (the motion stays
    Brownian: the test checks the pipeline, not the estimates)."""
    import tifffile
    from scipy.special import erf

    rng = np.random.default_rng(seed)
    S, a, dt = 4, 100.0, 0.02
    d_px = D * dt / (a / 1000) ** 2
    n_exp = 1 if f <= 0 else round(f * S)
    N, size = n_side**2, n_side * pitch
    g = (np.arange(n_side) + 0.5) * pitch
    start = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + rng.uniform(-0.5, 0.5, (N, 2))
    steps = rng.normal(0, np.sqrt(2 * d_px / S), (frames * S, N, 2))
    pos = (start + np.cumsum(steps, 0)).reshape(frames, S, N, 2)[:, :n_exp]  # (T, e, N, 2)
    edges = np.arange(size + 1)
    cdf = 0.5 * (1 + erf((edges[None, None, None, :, None] - pos[..., None, :]) /
                         (np.sqrt(2) * 0.8)))  # (T, e, N, size+1, 2)
    p = np.diff(cdf, axis=3)
    img = 1000.0 / n_exp * np.einsum("tenyk,tenxk->tyx", p[..., 1:], p[..., :1]) + 20.0
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "movie.tif", rng.poisson(img).astype(np.uint16))
    true = pos.mean(1)  # (T, N, 2) x, y in px (pixel j covers [j, j+1))
    fr, em = np.repeat(np.arange(frames), N), np.tile(np.arange(N), frames)
    (folder / "truth.csv").write_text("frame,emitter,x [nm],y [nm],D [um^2/s],isolated\n" +
                                      "".join(f"{t},{e},{x * a:.3f},{y * a:.3f},{D},1\n"
                                              for t, e, (x, y) in
                                              zip(fr, em, true.reshape(-1, 2))))
    (folder / "render.json").write_text(json.dumps({
        "D_um2_s": D, "exposure_fraction": f, "seed": seed, "pixel_size_nm": a,
        "frame_time_s": dt, "renderer": "numpy (test)",
        **({"alpha": alpha, "msd1_ratio": 1.0, "alpha_fit": 1.0} if alpha else {})}))


def test_pixel_diffusion_external_runs_on_a_movie_folder(tmp_path):
    """The external pixel-diffusion table on a folder of tiny movies written here (2 seeds ×
    2 exposures): calibration from the movies, MLE localization, truth pairing and every row
    of the in-house table; and a note instead of a crash without the folder."""
    root = tmp_path / "movies"
    for seed in (1, 2):
        for f in (0.0, 1.0):
            _write_external_pixel_movie(root / f"D0.5_f{f:g}_s{seed}", 0.5, f, seed)
    cfg = compose_benchmark("pixel_diffusion_external", [
        f"benchmark.data_root={root}", "benchmark.lengths=[4]", "benchmark.n_per_cell=6",
        "benchmark.mle_per_cell=2", "benchmark.figure=false"])
    table = run_benchmark(cfg, tmp_path / "out")
    assert len(table) == 2 and (table["seeds"] == 2).all()
    assert (table["min molecules"] == 6).all()
    for col in ("mivit", "single_frame", "pix2d", "msd", "cve", "mle", "trajnet", "CRLB",
                "mivit / best track"):
        assert col in table
    text = (tmp_path / "out" / "pixel_diffusion_external.md").read_text()
    assert "never from the renderer's truth" in text and "Movies and calibration" in text
    cfg = compose_benchmark("pixel_diffusion_external",
                            [f"benchmark.data_root={tmp_path / 'absent'}"])
    skipped = run_benchmark(cfg, tmp_path / "skip")
    assert skipped["status"].tolist() == ["skipped"]


def test_pixel_anomalous_external_runs_on_a_movie_folder(tmp_path):
    """The external α table on a folder of tiny movies (2 seeds × 2 α): the α head of the
    shipped MiViT, the MSD log-log fit and the trajectory network on the same truth-paired
    tracks; a note instead of a crash without the folder."""
    root = tmp_path / "movies"
    for seed in (1, 2):
        for alpha in (0.5, 1.0):
            _write_external_pixel_movie(root / f"a{alpha:g}_f0_s{seed}", 0.5, 0.0, seed,
                                        alpha=alpha)
    cfg = compose_benchmark("pixel_anomalous_external", [
        f"benchmark.data_root={root}", "benchmark.lengths=[6]", "benchmark.n_per_cell=6"])
    table = run_benchmark(cfg, tmp_path / "out")
    assert table["alpha"].tolist() == [0.5, 1.0, "all"]
    assert (table["seeds"] == 2).all() and (table["min molecules"] == 6).all()
    for col in ("mivit alpha MAE", "msd_loglog alpha MAE", "trajnet alpha MAE",
                "mivit lnK RMSE", "ratio"):
        assert col in table
    mae = pd.read_csv(tmp_path / "out" / "pixel_anomalous_external_per_seed.csv")
    assert mae["mivit alpha MAE"].between(0, 2).all()
    text = (tmp_path / "out" / "pixel_anomalous_external.md").read_text()
    assert "render α fit" in text and "never from the renderer's truth" in text
    cfg = compose_benchmark("pixel_anomalous_external",
                            [f"benchmark.data_root={tmp_path / 'absent'}"])
    assert run_benchmark(cfg, tmp_path / "skip")["status"].tolist() == ["skipped"]


def test_pixel_diffusion_speed_is_measured_beside_msd(tmp_path):
    """The speed table times every network and MSD/CVE on one pool, in the same run."""
    cfg = compose_benchmark("pixel_diffusion", TINY["pixel_diffusion"])
    run_benchmark(cfg, tmp_path)
    record = json.loads((tmp_path / "pixel_diffusion.json").read_text())
    speed = {r["method"]: r for r in record["extra_tables"]["Speed"]}
    assert {"mivit", "msd", "cve"} <= set(speed)
    assert speed["msd"]["speed / msd"] == 1.0
    for r in speed.values():
        assert r["items"] == 16 and r["items/s"] > 0 and r["items/CPU s"] > 0
