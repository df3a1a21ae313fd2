"""End to end on the simulator's ``virions`` preset with the TRUE coordinates and orientations (issue 19):
simulate → the tilt series imported with its TRUE projection model and CTF → extract-pseudo-subtomograms at
bin 2 → reconstruct-particle with C6 → the half-map FSC and the FSC against the simulator's reference map.

The images are the simulator's noise-free tilt series (expected counts of ideally motion-corrected frames: CTF,
dose, MTF, ice) with Poisson shot noise drawn from them; the first half of the pipeline (motion, alignment,
CTF estimation) is replaced by the truth. The CI variant is small (one tilt series, one virion of 54 hexamers, 13 tilts,
box 24 at 10.8 Å; the FSC against the reference inside a soft mask around it, as the lattice's neighbours and
the membrane share the box); ``benchmarks/sta_virions.py`` runs the full preset through the same ``run_chain``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.protocols.sta.conftest import finished_run, noisy_stacks, run  # noqa: F401 (benchmarks/sta_virions.py)
from tests.protocols.sta.test_pseudo import true_ctf, true_series
from tomoforge.engine import Project
from tomoforge.io.mrc import read_mrc
from tomoforge.methods.fourier import bin_fourier, pad_to
from tomoforge.methods.sta.fsc import half_map_fsc
from tomoforge.methods.sta.postprocess import automatic_mask
from tomoforge.model import Coordinate3D, CTFSeries, TiltSeries, Tomogram
from tomoforge.simulate.accuracy import truth_particles


@dataclass
class ChainResult:
    """What one pass of the chain gives: FSC curves (shells 0 … box // 2) and seconds per step."""

    pixel_size_A: float
    particles: int
    views: int
    half_fsc: np.ndarray
    reference_fsc: np.ndarray
    frequency: np.ndarray
    map: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)

    def fraction_of_nyquist(self, curve: np.ndarray, threshold: float) -> float:
        """Frequency of the first crossing below ``threshold`` (linear between shells) / Nyquist; 1 if none."""
        below = np.flatnonzero(curve[1:] < threshold)
        if len(below) == 0:
            return 1.0
        i = int(below[0]) + 1
        f0, f1, c0, c1 = self.frequency[i - 1], self.frequency[i], curve[i - 1], curve[i]
        f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0)
        return float(f * 2 * self.pixel_size_A)

    def summary(self) -> dict[str, float]:
        return {
            "pixel_size_A": self.pixel_size_A,
            "particles": self.particles,
            "views": self.views,
            "half_fsc_0143_fraction_nyquist": self.fraction_of_nyquist(self.half_fsc, 0.143),
            "reference_fsc_05_fraction_nyquist": self.fraction_of_nyquist(self.reference_fsc, 0.5),
            "half_fsc_0143_A": 2 * self.pixel_size_A / self.fraction_of_nyquist(self.half_fsc, 0.143),
            "reference_fsc_05_A": 2 * self.pixel_size_A / self.fraction_of_nyquist(self.reference_fsc, 0.5),
        }


def true_inputs(project: Project, sim, stacks: dict[str, str], *, rotation_error: bool = False) -> dict[str, str]:
    """Finished runs holding every tilt series (TRUE projection model), its TRUE CTF and the TRUE particles
    (Å from the tilt series' centre; rotations transposed when ``rotation_error``): the inputs of
    extract-pseudo-subtomograms."""
    truths = [ts.truth for ts in sim.tilt_series]
    series_run, series = finished_run(project, "import-tilt-series", {"files_path": "."}, {}, "tilt_series", TiltSeries)
    for t in truths:
        series.append(true_series(t, stacks[t["tilt_series"]]))
    series.close()
    ctf_run, ctf = finished_run(
        project, "import-ctf", {"files_path": "."}, {"tilt_series": f"{series_run}.tilt_series"}, "ctf", CTFSeries
    )
    for t in truths:
        ctf.append(true_ctf(t))
    ctf.close()
    tomos_run, tomos = finished_run(project, "import-tomograms", {"files_path": "."}, {}, "tomograms", Tomogram)
    for ts in sim.tilt_series:  # the truth tomograms: centred on their tilt series (origin 0)
        size = read_mrc(ts.tomogram).shape[::-1]
        pixel = ts.truth["pixel_size_A"] * sim.config.output.tomogram_binning
        tomos.append(
            Tomogram(name=ts.name, file=str(ts.tomogram), pixel_size_A=pixel, size_xyz=size, tilt_series=ts.name)
        )
    tomos.close()
    coords_run, coords = finished_run(
        project,
        "import-coordinates",
        {"files_path": "."},
        {"tomograms": f"{tomos_run}.tomograms"},
        "coordinates",
        Coordinate3D,
    )
    number = 0
    for t in truths:
        positions, rotations = truth_particles(t)
        n = len(positions)
        coords.append_columns(
            {
                "number": number + np.arange(n),
                "tomogram": np.array([t["tilt_series"]] * n),
                "x_A": positions[:, 0],
                "y_A": positions[:, 1],
                "z_A": positions[:, 2],
                "rotation": rotations.transpose(0, 2, 1) if rotation_error else rotations,
                "has_orientation": np.ones(n, bool),
            }
        )
        number += n
    coords.close()
    return {
        "tilt_series": f"{series_run}.tilt_series",
        "coordinates": f"{coords_run}.coordinates",
        "ctf": f"{ctf_run}.ctf",
        "tomograms": f"{tomos_run}.tomograms",
    }


def reference_at(sim, pixel_size_A: float, box: int) -> np.ndarray:
    """The simulator's reference map of the (only) species in a ``box``³ at ``pixel_size_A`` (a multiple of the
    simulation's): centred (voxel n // 2) in a box of the same size in Å at its own pixel, then Fourier-binned,
    so that its centre stays at voxel box // 2."""
    truth = sim.tilt_series[0].truth
    factor = int(round(pixel_size_A / truth["pixel_size_A"]))
    ref = torch.as_tensor(read_mrc(Path(sim.outdir) / truth["species"][0]["reference_map"]), dtype=torch.float64)
    big = box * factor
    n = ref.shape[0]
    if n > big:
        lo = n // 2 - big // 2
        ref = ref[lo : lo + big, lo : lo + big, lo : lo + big]
    return bin_fourier(pad_to(ref, (big, big, big)), factor, ndim=3).numpy()


def run_chain(
    project: Project,
    sim,
    stacks: dict[str, str],
    *,
    box: int,
    binning: float = 2.0,
    ctf: bool = True,
    rotation_error: bool = False,
) -> ChainResult:
    """Extraction (CTF-premultiplied at the particle's height and dose-weighted when ``ctf``; else neither,
    contrast inverted, and the reconstruction blind to the CTF) and C6 reconstruction; FSCs of the result."""
    seconds = {}
    t0 = time.perf_counter()
    inputs = true_inputs(project, sim, stacks, rotation_error=rotation_error)
    if not ctf:
        inputs.pop("ctf")
    params = {"box": box, "binning": binning, "premultiply_ctf": ctf, "dose_weight": ctf, "invert": not ctf}
    ext = run(project, "extract-pseudo-subtomograms", params, inputs)
    t1 = time.perf_counter()
    seconds["extract"] = t1 - t0
    recon = run(
        project,
        "reconstruct-particle",
        {"symmetry": "C6", "use_ctf": ctf},
        {"particles": f"{ext}.particles"},
    )
    seconds["reconstruct"] = time.perf_counter() - t1
    volume = project.output_set(recon, "volumes").get("map")
    pixel = volume.pixel_size_A
    maps = {k: read_mrc(project.absolute(getattr(volume, k))) for k in ("file", "half1_file", "half2_file")}
    half = half_map_fsc(maps["half1_file"], maps["half2_file"], pixel)
    reference = reference_at(sim, pixel, box)
    # the lattice's neighbours and the membrane are in the box too: compare inside a mask around the reference
    mask = automatic_mask(reference, pixel, threshold=0.1, extend_px=1.0, soft_edge_px=3.0)
    against = half_map_fsc(maps["file"], reference, pixel, mask=mask)
    cols = project.output_set(ext, "particles").arrays("tilt_series")
    tilts = {ts.name: len(ts.truth["tilts"]) for ts in sim.tilt_series}
    return ChainResult(
        pixel_size_A=pixel,
        particles=len(cols["tilt_series"]),
        views=int(sum(tilts[str(name)] for name in cols["tilt_series"])),
        half_fsc=half.correlation,
        reference_fsc=against.correlation,
        frequency=half.frequency,
        map=maps["file"],
        reference=reference,
        seconds=seconds,
    )


@pytest.fixture(scope="module")
def chains(virions_sim, tmp_path_factory):
    sim, stacks = virions_sim
    project = Project.create(tmp_path_factory.mktemp("virions_project") / "project")
    results = {
        "ctf": run_chain(project, sim, stacks, box=24),
        "no_ctf": run_chain(project, sim, stacks, box=24, ctf=False),
        "rotation_error": run_chain(project, sim, stacks, box=24, rotation_error=True),
    }
    yield results
    project.close()


def test_true_particles_reach_nyquist_at_bin_2(chains):
    result = chains["ctf"].summary()
    # measured (seed 2, 54 hexamers × 13 tilts, box 24 at 10.8 Å): both 1.0 (no crossing up to Nyquist, 21.6 Å)
    assert result["half_fsc_0143_fraction_nyquist"] >= 0.8
    assert result["reference_fsc_05_fraction_nyquist"] >= 0.6
    assert chains["ctf"].particles == 54 and chains["ctf"].views == 54 * 13


def test_the_reference_fsc_sees_the_hand(chains):
    """The map mirrored (z → −z about its centre) no longer matches the chiral reference: the FSC against the
    reference tells a mirrored hand."""
    c = chains["ctf"]
    mirrored = np.roll(c.map[::-1], 1, axis=0)  # voxel n // 2 stays the centre
    mask = automatic_mask(c.reference, c.pixel_size_A, threshold=0.1, extend_px=1.0, soft_edge_px=3.0)
    fsc = half_map_fsc(mirrored, c.reference, c.pixel_size_A, mask=mask).correlation
    mirror = ChainResult(**{**c.__dict__, "reference_fsc": fsc})
    # measured: 0.37 of Nyquist (the map itself 1.0)
    assert mirror.fraction_of_nyquist(fsc, 0.5) < 0.6


def test_without_ctf_premultiplication_the_map_is_worse_near_nyquist(chains):
    """At bin 2 (Nyquist 21.6 Å) the views stay mostly inside the CTF's first lobe (first zero ~20-28 Å at
    2-4 µm underfocus, 300 kV), so the gain of premultiplication is confined to the last shells."""
    with_ctf, without = chains["ctf"], chains["no_ctf"]
    top = with_ctf.frequency * 2 * with_ctf.pixel_size_A > 0.8
    gain = float(np.mean(with_ctf.reference_fsc[top] - without.reference_fsc[top]))
    # measured (the fixture at 3.5-4 µm, past the first zero below Nyquist): FSC against the reference in the
    # shells above 0.8 Nyquist 0.864 / 0.886 / 0.856 with, −0.486 / −0.801 / −0.784 without (the CTF-blind map
    # has those shells' contrast inverted); at 2.5 µm, where the first zero sits at Nyquist, there was no gain
    # (−0.03). The half-map FSC, consistency not accuracy, is alike (0.69 / 0.69 / 0.58 against 0.70 / 0.66 / 0.48)
    assert gain > 0.02


def test_transposed_rotations_fail(chains):
    """One deliberate convention error: each particle's rotation transposed (R⁻¹ for R, the wrong
    direction between particle and reference frames) breaks both criteria."""
    wrong = chains["rotation_error"].summary()
    # the issue's criteria: half maps' 0.143 at >= 0.8 of Nyquist and the reference's 0.5 at >= 0.6. Measured with
    # unpadded views in the inscribed sphere (reconstruct-particle's default, RELION's): half maps 0.72 of Nyquist,
    # against the reference ~0.45 (the half maps share high-frequency junk, FSC 0.1-0.3 in shells 8-12: the
    # same sparse sampling in both halves; padded views in the sphere cross 0.143 at shell 8 of 12); with padded
    # views in the whole box (the default before): 0.56 and 0.43 (0.38 / 0.42 at 2.5 µm)
    assert wrong["half_fsc_0143_fraction_nyquist"] < 0.8 and wrong["reference_fsc_05_fraction_nyquist"] < 0.6
