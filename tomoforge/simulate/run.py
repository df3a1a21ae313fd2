"""``simulate()``: build the specimen, acquire each tilt series, write movies, mdoc, gain and truth.

Output folder layout:
    <outdir>/<TS>.mrc.mdoc            SerialEM (or Tomography 5) tilt-series mdoc
    <outdir>/frames/<TS>_<i>_<tilt>.mrc|tif   per-tilt movies (counts, int16 / uint16)
    <outdir>/gain.mrc                 gain reference (multiply raw frames by it)
    <outdir>/references/<name>_reference.mrc, <name>_potential.mrc, <name>_reference_bin<b>.mrc (at the
                                      truth tomogram's pixel size: templates for picking)
    <outdir>/truth/<TS>/truth.json, tilts.star, noise_free_tilt_series.mrc, tomogram_bin<b>.mrc
    <outdir>/simulation.json          the configuration, seed and the list of tilt series
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tomoforge.io.mrc import write_mrc
from tomoforge.methods.projection import bin_fourier_volume, rotate_volume_fourier
from tomoforge.simulate.acquisition import simulate_acquisition
from tomoforge.simulate.config import SimulationConfig, build_config
from tomoforge.simulate.detector import DetectorDefects, gain_reference, hot_pixels, load_mtf, mtf_2d, record_frame
from tomoforge.simulate.ice import ice_power_spectrum
from tomoforge.simulate.imaging import expected_frame, exposure_weights, tilt_signal
from tomoforge.simulate.specimen import build_specimen, render_specimen_volume
from tomoforge.simulate.structures import (
    Reference,
    blob_reference,
    load_scattering_factors,
    reference_from_map,
    reference_from_model,
    resolve_data_file,
)
from tomoforge.simulate.truth import FORMAT, PROJECTION_MODEL, read_truth, specimen_records, tilt_records, write_truth
from tomoforge.simulate.writer import build_mdoc, movie_name, write_movie, write_tilt_series_mdoc

log = logging.getLogger(__name__)


@dataclass
class SimulatedTiltSeries:
    name: str
    mdoc: Path
    movies: list[Path]
    truth_json: Path
    truth_star: Path
    noise_free_stack: Path | None
    tomogram: Path
    truth: dict[str, Any]


@dataclass
class SimulationResult:
    outdir: Path
    config: SimulationConfig
    seed: int
    gain: Path
    references: dict[str, Path]
    tilt_series: list[SimulatedTiltSeries] = field(default_factory=list)
    seconds: float = 0.0


def load_references(cfg: SimulationConfig, pixel_size_A: float) -> list[Reference]:
    """One Reference per particle species (atomic model or map), at the simulation pixel size."""
    params = load_scattering_factors(cfg.data_root)
    refs = []
    for i, sp in enumerate(cfg.specimen.particles):
        path = resolve_data_file(sp.source, cfg.data_root, f"specimen.particles.{i}.source")
        if path.suffix.lower() in (".pdb", ".cif", ".ent", ".mmcif") or path.name.endswith(".cif.gz"):
            refs.append(
                reference_from_model(
                    sp.name,
                    path,
                    pixel_size_A,
                    params,
                    sp.b_factor_A2,
                    cfg.specimen.ice_potential_V,
                    chain=sp.chain,
                    symmetry=sp.symmetry,
                    assembly_radius_A=sp.assembly_radius_A,
                    biological_assembly=sp.biological_assembly,
                )
            )
        elif path.suffix.lower() in (".mrc", ".map", ".rec"):
            refs.append(
                reference_from_map(sp.name, path, pixel_size_A, params, sp.map_mass_kDa, cfg.specimen.ice_potential_V)
            )
            if sp.assembly_radius_A or sp.chain or sp.biological_assembly:
                raise ValueError(
                    f"specimen.particles.{i}: chain, assembly_radius_A and biological_assembly need an atomic "
                    f"model, {path} is a map"
                )
            refs[-1].symmetry = sp.symmetry  # a map is taken to have the symmetry it is declared to have
        else:
            raise ValueError(
                f"specimen.particles.{i}.source: {path} is neither an atomic model (.pdb/.cif) nor a map (.mrc/.map)"
            )
    return refs


def binned_reference(reference: Reference, binning: int) -> torch.Tensor:
    """The reference's contrast map (z, y, x) at ``binning`` × its pixel size: its prepared spectrum
    Fourier-cropped, half the padded box kept (centre voxel n // 2, as the unbinned map)."""
    fv = bin_fourier_volume(reference.fourier, binning)
    volume = rotate_volume_fourier(fv, np.eye(3))
    m = fv.n // 2
    lo = fv.n // 2 - m // 2
    return volume[lo : lo + m, lo : lo + m, lo : lo + m].contiguous()


def simulate(
    outdir: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> SimulationResult:
    """Simulate the preset (with ``overrides`` {'a.b': value}) into ``outdir``; deterministic for ``seed``."""
    t0 = time.perf_counter()
    cfg = build_config(preset, overrides)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    det, acq = cfg.detector, cfg.acquisition
    sr = 2 if det.super_resolution else 1
    pix = det.pixel_size_A / sr
    shape = (det.image_size[0] * sr, det.image_size[1] * sr)
    binning = cfg.output.tomogram_binning * sr
    if binning not in (1, 2, 4, 8):
        raise ValueError(
            f"output.tomogram_binning: {cfg.output.tomogram_binning} must make a binning of 1, 2, "
            "4 or 8 of the simulation pixel"
        )

    refs = load_references(cfg, pix)
    params = load_scattering_factors(cfg.data_root)
    backgrounds = (
        [blob_reference(rng, pix, params, cfg.specimen.ice_potential_V) for _ in range(3)]
        if cfg.specimen.background_count
        else []
    )
    ice_power = None
    if cfg.specimen.ice_texture:
        k = np.linspace(0.0, math.sqrt(2) / (2 * pix) * 1.01, 1024)
        ice_power = (k, ice_power_spectrum(k, *params))
    mtf = None
    if det.mtf:
        freq, value = load_mtf(det.mtf, cfg.data_root)
        mtf = mtf_2d(shape, freq, value, det.super_resolution)
    gain = gain_reference(shape, det.gain_sigma, rng)
    gain_path = write_mrc(outdir / "gain.mrc", gain, pix, overwrite=True)
    ref_paths: dict[str, Path] = {}
    for r in refs:
        ref_paths[r.name] = write_mrc(
            outdir / "references" / f"{r.name}_reference.mrc", r.contrast.numpy(), pix, overwrite=True
        )
        write_mrc(outdir / "references" / f"{r.name}_potential.mrc", r.potential.numpy(), pix, overwrite=True)
        write_mrc(
            outdir / "references" / f"{r.name}_reference_bin{cfg.output.tomogram_binning}.mrc",
            binned_reference(r, binning).numpy(),
            pix * binning,
            overwrite=True,
        )
    result = SimulationResult(outdir, cfg, seed, gain_path, ref_paths)
    defects = DetectorDefects(hot_pixels(shape, det.hot_pixels, rng), det.hot_pixel_counts)
    field_A = (shape[1] * pix, shape[0] * pix)
    counts_per_frame = acq.dose_per_tilt / acq.frames_per_tilt * pix * pix

    n_tilts_total = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("simulating", total=None)
        for ts_index in range(acq.tilt_series_count):
            name = f"{cfg.name}_{ts_index + 1:02d}"
            spec = build_specimen(cfg.specimen, field_A, refs, backgrounds, rng)
            tilts = simulate_acquisition(acq, rng)
            if n_tilts_total is None:
                n_tilts_total = len(tilts) * acq.tilt_series_count
                bar.update(task, total=n_tilts_total)
            defects.xrays = []
            movies, stack, free_stack = [], [], []
            for i, tilt in enumerate(tilts):
                bar.update(task, description=f"{name} tilt {tilt.nominal_tilt_deg:+.1f}°")
                generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + ts_index * 1009 + i)
                signal = tilt_signal(
                    spec,
                    refs,
                    backgrounds,
                    tilt,
                    cfg,
                    shape,
                    pix,
                    cfg.specimen.fiducials.absorption_per_A,
                    ctf_free=cfg.output.write_ctf_free_stack,
                    ice_power=ice_power,
                    generator=generator,
                )
                weights = exposure_weights(shape, pix, tilt, acq.frames_per_tilt, acq.voltage_kV)
                frames = np.empty((acq.frames_per_tilt, *shape), dtype=np.int32)
                for f in range(acq.frames_per_tilt):
                    shift_px = tuple(tilt.frame_shifts_A[f] / pix)
                    expected = expected_frame(signal, weights[f], mtf, shift_px, counts_per_frame).numpy()
                    frames[f] = record_frame(expected, gain, defects, det.xrays_per_frame, det.xray_counts, rng, i, f)
                if cfg.output.write_noise_free_stack or cfg.output.write_ctf_free_stack:
                    mean_weight = torch.stack(weights).mean(0)
                    signal = replace(signal, ice_spectrum=None)  # the noise-free stacks hold the objects only
                if cfg.output.write_noise_free_stack:
                    stack.append(
                        expected_frame(
                            signal, mean_weight, mtf, (0.0, 0.0), counts_per_frame * acq.frames_per_tilt
                        ).numpy()
                    )
                if signal.ctf_free_spectrum is not None:
                    free = replace(signal, phase_spectrum=signal.ctf_free_spectrum)
                    free_stack.append(
                        expected_frame(
                            free, mean_weight, mtf, (0.0, 0.0), counts_per_frame * acq.frames_per_tilt
                        ).numpy()
                    )
                mname = movie_name(name, i, tilt.nominal_tilt_deg, det.movie_format)
                write_movie(outdir / "frames" / mname, frames, pix, det.movie_format)
                movies.append(f"frames/{mname}")
                bar.advance(task)
            mdoc = build_mdoc(name, tilts, movies, cfg, pix, shape, seed)
            mdoc_path = write_tilt_series_mdoc(outdir / f"{name}.mrc.mdoc", mdoc)
            tdir = outdir / "truth" / name
            stack_path = (
                write_mrc(tdir / "noise_free_tilt_series.mrc", np.stack(stack), pix, overwrite=True) if stack else None
            )
            free_path = (
                write_mrc(tdir / "noise_free_tilt_series_ctf_free.mrc", np.stack(free_stack), pix, overwrite=True)
                if free_stack
                else None
            )
            vpix = pix * binning
            vshape = (int(np.ceil(spec.thickness_A / vpix / 2) * 2), shape[0] // binning, shape[1] // binning)
            bar.update(task, description=f"{name} tomogram")
            volume = render_specimen_volume(spec, refs, backgrounds, vpix, vshape, binning)
            tomo_path = write_mrc(
                tdir / f"tomogram_bin{cfg.output.tomogram_binning}.mrc", volume.numpy(), vpix, overwrite=True
            )
            truth = {
                "format": FORMAT,
                "seed": seed,
                "preset": preset,
                "config": cfg.model_dump(mode="json"),
                "tilt_series": name,
                "mdoc": mdoc_path.name,
                "movies": movies,
                "pixel_size_A": pix,
                "image_size_yx": list(shape),
                "super_resolution": det.super_resolution,
                "voltage_kV": acq.voltage_kV,
                "cs_mm": acq.cs_mm,
                "amplitude_contrast": acq.amplitude_contrast,
                "tilt_axis_angle_deg": acq.tilt_axis_angle_deg,
                "tilt_offset_deg": acq.tilt_offset_deg,
                "defocus_handedness": 1,
                "projection_model": PROJECTION_MODEL,
                "tilts": tilt_records(tilts, movies),
                "xrays": list(defects.xrays),
                "hot_pixels_yx": defects.hot_pixels_yx.tolist(),
                "hot_pixel_counts": defects.hot_pixel_counts,
                "gain": gain_path.name,
                **specimen_records(spec, [r.name for r in refs]),
                "species": [
                    {
                        "name": r.name,
                        "source": r.source,
                        "reference_map": f"references/{r.name}_reference.mrc",
                        "potential_map": f"references/{r.name}_potential.mrc",
                        "reference_map_binned": f"references/{r.name}_reference_bin{cfg.output.tomogram_binning}.mrc",
                        "pixel_size_A": r.pixel_size_A,
                        "radius_A": r.radius_A,
                        "mass_Da": r.mass_Da,
                        "symmetry": r.symmetry,
                    }
                    for r in refs
                ],
                "tomogram": {
                    "path": str(tomo_path.relative_to(outdir)),
                    "binning": cfg.output.tomogram_binning,
                    "pixel_size_A": vpix,
                    "shape_zyx": list(vshape),
                },
                "noise_free_tilt_series": str(stack_path.relative_to(outdir)) if stack_path else None,
                "noise_free_tilt_series_ctf_free": str(free_path.relative_to(outdir)) if free_path else None,
            }
            jpath, spath = write_truth(tdir, truth, name)
            result.tilt_series.append(
                SimulatedTiltSeries(
                    name, mdoc_path, [outdir / m for m in movies], jpath, spath, stack_path, tomo_path, truth
                )
            )
    result.seconds = time.perf_counter() - t0
    (outdir / "simulation.json").write_text(
        json.dumps(
            {
                "format": FORMAT,
                "preset": preset,
                "seed": seed,
                "config": cfg.model_dump(mode="json"),
                "tilt_series": [ts.name for ts in result.tilt_series],
                "seconds": result.seconds,
            },
            indent=1,
        )
    )
    return result


def load_simulation(outdir: str | Path) -> SimulationResult:
    """Re-open a finished simulation folder (its ``simulation.json`` and each ``truth/<TS>/truth.json``)."""
    outdir = Path(outdir)
    meta_path = outdir / "simulation.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no simulation.json (the simulation did not finish, or this is not one)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a tomoforge simulation (format {meta.get('format')!r})")
    cfg = SimulationConfig.model_validate(meta["config"])
    refs = {sp.name: outdir / "references" / f"{sp.name}_reference.mrc" for sp in cfg.specimen.particles}
    result = SimulationResult(outdir, cfg, int(meta["seed"]), outdir / "gain.mrc", refs, seconds=meta["seconds"])
    for name in meta["tilt_series"]:
        tdir = outdir / "truth" / name
        truth = read_truth(tdir / "truth.json")
        stack = truth.get("noise_free_tilt_series")
        result.tilt_series.append(
            SimulatedTiltSeries(
                name,
                outdir / truth["mdoc"],
                [outdir / m for m in truth["movies"]],
                tdir / "truth.json",
                tdir / "tilts.star",
                outdir / stack if stack else None,
                outdir / truth["tomogram"]["path"],
                truth,
            )
        )
    return result
