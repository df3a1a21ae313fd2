"""CTF estimation on tilt series that are not the project's (tests/methods/ctf/foreign.py: teamtomo's
torch-ctf on a blob specimen, amorphous-ice texture, gold, Poisson noise), over representative cells of
the issue's matrix; the full matrix runs in benchmarks/ctf.py."""

from __future__ import annotations

import pytest
import torch

from tomoforge.methods.ctf.transfer import ctf_2d

torch_ctf = pytest.importorskip("torch_ctf", reason="torch-ctf (the `test` extra) is not installed")

from tests.methods.ctf.foreign import Condition, fit_series, make_series, scores  # noqa: E402


@pytest.mark.parametrize("angle", [0.0, 30.0, 70.0, -45.0])
def test_torch_ctf_shares_our_astigmatism_convention(angle):
    """torch-ctf's CTF equals −1 × tomoforge's ctf_2d for U, V, angle of U from X: the generator's truth
    is in the project's conventions (a power spectrum does not see the sign)."""
    ours = ctf_2d((96, 96), 2.0, 31000.0, 29000.0, angle, voltage_kV=200.0, cs_mm=2.7, amplitude_contrast=0.1)
    theirs = torch_ctf.calculate_ctf_2d(3.0, 0.1, angle, 200.0, 2.7, 0.1, 0.0, 2.0, (96, 96), True, False)
    assert torch.allclose(theirs.reshape(ours.shape), -ours, atol=2e-3)


CELLS = {  # representative cells of the matrix (all of it: benchmarks/ctf.py)
    "2A 3um 3e ast600 300kV ice gold": Condition(gold=True, seed=3),
    "1A 0.5um 3e ast1000 200kV ac0.15 ice": Condition(
        pixel_size_A=1.0, defocus_um=0.5, astigmatism_A=1000, voltage_kV=200, amplitude_contrast=0.15, seed=1
    ),
    "5A 6um 1e ast1500 ac0.04 ice": Condition(
        pixel_size_A=5.0, defocus_um=6.0, dose=1.0, astigmatism_A=1500, amplitude_contrast=0.04, seed=2
    ),
}


@pytest.mark.parametrize("name", list(CELLS))
def test_foreign_series_meets_the_floors(name):
    """The issue's floors with ice texture: median |error| ≤ 150 Å (|tilt| ≤ 40°), ≤ 250 Å (all), no tilt
    > 2000 Å off, astigmatism within 150 Å and its angle within 10° (≥ 500 Å). Measured (box 256, 384²):
    2 Å: 9 / 15 / 38 Å; 1 Å 0.5 µm: 29 / 29 / 121 Å; 5 Å 6 µm: 21 / 20 / 40 Å (before the background's
    median was averaged over a ring period: 12 / 12 / 31, 79 / 79 / 159, 23 / 31 / 65 Å)."""
    s = make_series(CELLS[name])
    result = fit_series(s)
    fits = result.fits
    m = scores(
        s,
        [f.defocus_A for f in fits],
        [f.defocus_u_A - f.defocus_v_A for f in fits],
        [f.astigmatism_angle_deg for f in fits],
    )
    assert m["median_40_A"] <= 150 and m["median_all_A"] <= 250 and m["worst_A"] <= 2000, m
    assert m["astigmatism_error_A"] <= 150 and m["angle_error_deg"] <= 10, m
    assert not result.warnings or "no clear Thon rings" not in result.warnings[0]
    assert result.score_gap > 1.0 and sum(f.ambiguous for f in fits) <= 3  # measured gaps 2.2–6.1 SD; ≤ 3 high tilts


def test_without_ice_the_prior_is_kept_with_a_warning():
    """No ice texture: the blob specimen rings to its first zero only and the gold beads' form factor makes
    the other minima (before: a confident 1–2.5 µm error). The nominal (mdoc) defoci must come back,
    flagged ambiguous, with a warning; without them, every fit is flagged."""
    s = make_series(Condition(ice=False, gold=True, seed=4))
    result = fit_series(s)
    assert any("no clear Thon rings" in w and "nominal (mdoc) defoci are kept" in w for w in result.warnings)
    assert all(f.ambiguous for f in result.fits)
    assert [f.defocus_A for f in result.fits] == pytest.approx(s.nominal_A, abs=1.0)
    blind = fit_series(s, nominal=False)
    assert any("the fit is unreliable" in w for w in blind.warnings) and all(f.ambiguous for f in blind.fits)


def test_high_tilts_are_fitted_with_the_defocus_gradient():
    """3 Å/px, 512² (1536 Å across, the estimator's own box: one tile), tilts to ±60°: at 60° the specimen's
    height spans ± 1330 Å across the image, its Thon rings fade and flip beyond ~8 Å. Fitted with the gradient
    (the box's height range, ``tilt_gradient``) the tilts beyond 40° are measurably better than fitted as if
    untilted (CTFFIND's model): measured median 18 / worst 30 Å against 54 / 325 Å (seeds 0 and 2: 24 / 44
    against 62 / 275, 15 / 25 against 43 / 270)."""
    tilts = (-60.0, -54.0, -48.0, -12.0, 0.0, 12.0, 48.0, 54.0, 60.0)
    s = make_series(Condition(pixel_size_A=3.0, size=512, tilts_deg=tilts, seed=1))
    high = torch.tensor([abs(a) > 40 for a in s.tilts_deg])
    truth = torch.tensor(s.defocus_A)

    def high_tilt_errors(**settings: object) -> torch.Tensor:
        fits = fit_series(s, box=0, **settings).fits
        return (torch.tensor([f.defocus_A for f in fits]) - truth).abs()[high]

    with_gradient, untilted = high_tilt_errors(), high_tilt_errors(tilt_gradient=False)
    assert with_gradient.median() <= 0.6 * untilted.median(), (with_gradient, untilted)
    assert with_gradient.max() <= 0.3 * untilted.max() and with_gradient.max() <= 100, (with_gradient, untilted)


def test_at_5_angstrom_per_pixel_the_rings_are_not_shifted():
    """5 Å/px, 3 µm, 384² (the estimator's own 1536 Å box: 308 px), 11 tilts: within torch-ctf-estimation's
    35 Å (its median on the 41 × 1024² series, benchmarks/ctf.py --speed 5). Before the background's median
    was averaged over a ring period, every tilt was fitted 40–100 Å too deep (71 / 87 / 98 Å; the band ends
    at 10 Å there); measured now 11 / 11 / 25 Å."""
    s = make_series(Condition(pixel_size_A=5.0, seed=0))
    fits = fit_series(s, box=0).fits
    m = scores(
        s,
        [f.defocus_A for f in fits],
        [f.defocus_u_A - f.defocus_v_A for f in fits],
        [f.astigmatism_angle_deg for f in fits],
    )
    assert m["median_40_A"] <= 35 and m["median_all_A"] <= 35 and m["worst_A"] <= 60, m


def test_a_defocus_step_beyond_the_search_window_is_followed():
    """2 Å/px, 0.5 µm, astigmatism 1500 Å (the matrix cell 2A 0.5um 5e, seed 1011): the +12° tilt lies 2043 Å
    below the first, beyond the per-tilt window (± 2000 Å of the series' 5750 Å). Its own rings there stand
    2.3 SD above its best within the window, so it takes them, with a warning naming it: measured 64 Å off
    (before: 2847 Å, flagged ambiguous); the other tilts unchanged (≤ 45 Å)."""
    c = Condition(
        pixel_size_A=2.0, defocus_um=0.5, dose=5.0, astigmatism_A=1500.0, astigmatism_angle_deg=-40.0,
        amplitude_contrast=0.04, seed=1011,
    )  # fmt: skip
    s = make_series(c)
    result = fit_series(s, box=0)
    err = [abs(f.defocus_A - t) for f, t in zip(result.fits, s.defocus_A)]
    step = s.tilts_deg.index(12.0)
    assert abs(s.defocus_A[step] - s.defocus_A[0]) > 2000  # the condition is what it says
    assert err[step] <= 150 and not result.fits[step].ambiguous, err
    assert max(err) <= 150, err
    assert any(w.startswith("defocus step: images 1 (+12.0°)") for w in result.warnings), result.warnings
