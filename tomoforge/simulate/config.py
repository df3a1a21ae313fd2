"""Simulation parameters (pydantic), the named presets, and ``--set key.path=value`` overrides.

Units: Å, degrees, e/Å², kV, mm, µm only where the field name says so. Every field is documented
in its ``description``; ``SimulationConfig.model_json_schema()`` lists them all.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tomoforge.errors import UserError
from tomoforge.methods.symmetry import canonical_symmetry


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParticleSpecies(_Strict):
    name: str = Field("apoferritin", description="label used in the truth and file names")
    source: str = Field(
        "models/6z6u.pdb", description="atomic model (.pdb/.cif) or map (.mrc/.map): absolute, or relative to data_root"
    )
    count: int = Field(10, ge=0, description="particles free in the ice")
    count_on_membranes: int = Field(
        0, ge=0, description="particles bound to vesicle and sheet membranes, along the normal"
    )
    membrane_offset_A: float | None = Field(
        None,
        description="distance of a bound particle's centre from the "
        "membrane mid-surface; default: membrane half-thickness + radius",
    )
    b_factor_A2: float = Field(20.0, ge=0, description="B-factor added to every atom (Å²)")
    map_mass_kDa: float | None = Field(None, gt=0, description="mass of a map source (kDa); default: estimated")
    chain: str | None = Field(None, description="use only this chain of an atomic model (e.g. 'A')")
    biological_assembly: str | None = Field(
        None, description="build this biological assembly of the model file (e.g. '1'); default: as deposited"
    )
    symmetry: str = Field(
        "C1", description="point group (Cn, Dn, T, O, I) placing copies of the model or chain into an assembly"
    )
    assembly_radius_A: float = Field(0.0, ge=0, description="distance of each copy's centre from the symmetry axis")

    @field_validator("symmetry")
    @classmethod
    def _known_symmetry(cls, value: str) -> str:
        return canonical_symmetry(value)


class FiducialConfig(_Strict):
    count_per_surface: int = Field(6, ge=0, description="gold beads on each ice surface")
    diameter_A: float = Field(100.0, gt=0)
    potential_V: float = Field(
        10.0,
        description="effective potential of gold relative to ice in the weak-phase "
        "model (V); the true ~25 V would break the linear approximation",
    )
    absorption_per_A: float = Field(0.014, ge=0, description="amplitude loss: transmission exp(−μ·chord), 1/Å")
    min_spacing_A: float = Field(
        0.0,
        ge=0,
        description="least distance in x-y between two beads' centres (Å), so "
        "that beads on opposite surfaces stay apart in the tilted views and a tracker can "
        "tell them apart; 0: beads only may not overlap in 3D",
    )


class VesicleConfig(_Strict):
    count: int = Field(1, ge=0)
    radius_A: tuple[float, float] = Field((250.0, 400.0), description="range of the mean radius (Å)")
    aspect: tuple[float, float] = Field((1.0, 1.3), description="range of semi-axis ratios (1 = sphere)")
    membrane_thickness_A: float = Field(40.0, gt=0)
    head_potential_V: float = Field(1.5, description="head-group layers (10 Å each) relative to ice (V)")
    tail_potential_V: float = Field(-0.5, description="hydrocarbon core relative to ice (V)")


class VirionConfig(_Strict):
    count: int = Field(0, ge=0, description="enveloped virions carrying a lattice of assemblies inside their membrane")
    radius_A: tuple[float, float] = Field((500.0, 800.0), description="range of the membrane's mean radius (Å)")
    aspect: tuple[float, float] = Field((1.0, 1.2), description="range of semi-axis ratios (1 = sphere)")
    membrane_thickness_A: float = Field(40.0, gt=0)
    species: str = Field("", description="name of the specimen.particles species forming the lattice")
    spacing_A: float = Field(78.0, gt=0, description="distance between neighbouring assembly centres")
    gap_fraction: float = Field(0.15, ge=0, lt=1, description="fraction of lattice sites left empty")
    inset_A: float | None = Field(
        None,
        ge=0,
        description="depth of the assembly centres below the membrane mid-surface; default: membrane "
        "half-thickness + the species' radius",
    )


class SheetConfig(_Strict):
    count: int = Field(0, ge=0, description="flat membrane sheets (discs of bilayer; simulate/cellular.py)")
    radius_A: tuple[float, float] = Field((600.0, 1000.0), description="range of the disc's semi-axes (Å)")
    max_tilt_deg: float = Field(
        60.0, ge=0, le=90, description="largest angle between a sheet's normal and the ice slab's normal"
    )
    membrane_thickness_A: float = Field(40.0, gt=20)


class FilamentConfig(_Strict):
    count: int = Field(0, ge=0, description="helical filaments of a species' subunits (simulate/cellular.py)")
    species: str = Field("", description="name of the specimen.particles species forming the filaments")
    rise_A: float = Field(27.5, gt=0, description="distance along the axis between consecutive subunits")
    twist_deg: float = Field(-166.7, description="turn about the axis between consecutive subunits")
    radius_A: float = Field(25.0, ge=0, description="distance of the subunit centres from the axis")
    length_A: tuple[float, float] = Field((800.0, 1600.0), description="range of the filament length along the axis")
    max_curvature_per_A: float = Field(
        2.5e-4, ge=0, description="curvature of the backbone drawn from [0, this] (1/Å; 0: straight filaments)"
    )
    max_elevation_deg: float = Field(20.0, ge=0, le=90, description="largest angle of the axis out of the slab plane")


class SpecimenConfig(_Strict):
    geometry: Literal["plunge", "lamella"] = Field("plunge", description="plunge-frozen film or FIB lamella")
    ice_thickness_A: float = Field(800.0, gt=0)
    slab_tilt_deg: float = Field(2.0, description="tilt of the slab normal from z (lamella pre-tilt)")
    slab_tilt_azimuth_deg: float = Field(30.0, description="direction (from x) of the axis the slab is tilted about")
    ice_potential_V: float = Field(4.5, description="mean inner potential of vitreous ice: displaced by particles")
    inelastic_mean_free_path_A: float = Field(3500.0, gt=0, description="ice attenuation exp(−path/λ_in)")
    ice_texture: bool = Field(
        True,
        description="scattering of the vitreous ice itself (water molecules, Percus–"
        "Yevick structure factor; simulate/ice.py): most of a real image's Thon rings; in "
        "the recorded frames only",
    )
    particles: list[ParticleSpecies] = Field(default_factory=lambda: [ParticleSpecies()])
    fiducials: FiducialConfig = Field(default_factory=FiducialConfig)
    vesicles: VesicleConfig = Field(default_factory=VesicleConfig)
    virions: VirionConfig = Field(default_factory=VirionConfig)
    sheets: SheetConfig = Field(default_factory=SheetConfig)
    filaments: FilamentConfig = Field(default_factory=FilamentConfig)
    background_count: int = Field(0, ge=0, description="crowding blobs (random 20–40 Å globules) in the ice")
    margin_A: float = Field(20.0, ge=0, description="minimum gap between objects and to the ice surfaces")


class AcquisitionConfig(_Strict):
    tilt_series_count: int = Field(1, ge=1)
    scheme: Literal["dose_symmetric", "bidirectional"] = "dose_symmetric"
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    tilt_start_deg: float = 0.0
    group_size: int = Field(2, ge=1, description="dose-symmetric: tilts per side before switching (Hagen 2017)")
    bidirectional_first: Literal["positive", "negative"] = "negative"
    tilt_axis_angle_deg: float = Field(85.0, description="from image Y, counter-clockwise (SerialEM convention)")
    tilt_offset_deg: float = Field(0.7, description="true − nominal tilt angle (hidden from the mdoc)")
    stage_shift_sigma_A: float = Field(40.0, ge=0, description="random walk step of the per-tilt shift (Å)")
    rotation_drift_deg: float = Field(0.3, description="in-plane rotation drift over the series (ZRot − axis)")
    rotation_jitter_deg: float = Field(0.05, ge=0)
    defocus_um: tuple[float, float] = Field(
        (2.5, 4.0), description="range of the target defocus per series (µm, positive = underfocus)"
    )
    defocus_error_um: float = Field(0.1, ge=0, description="σ of the true − target defocus per tilt (µm)")
    astigmatism_um: float = Field(0.05, ge=0, description="mean DefocusU − DefocusV (µm)")
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = Field(0.07, ge=0, lt=1)
    dose_per_tilt: float = Field(3.0, gt=0, description="e/Å² per tilt image")
    pre_exposure: float = Field(0.0, ge=0, description="e/Å² before the first tilt")
    frames_per_tilt: int = Field(8, ge=1)
    exposure_time_s: float = Field(1.0, gt=0)
    beam_motion_A: float = Field(3.0, ge=0, description="typical beam-induced motion per tilt movie (Å)")
    depth_slab_A: float = Field(100.0, gt=0, description="height bins sharing one defocus (Å)")


class DetectorConfig(_Strict):
    image_size: tuple[int, int] = Field((1024, 1024), description="(ny, nx) of a frame in physical pixels")
    pixel_size_A: float = Field(3.0, gt=0, description="physical pixel size (Å)")
    mtf: str | None = Field(
        "mtf_k3_standard_300kV_FL2",
        description="file stem in detector/ttsim3d_mtf, a path, or null for a perfect detector",
    )
    super_resolution: bool = Field(False, description="frames at half the pixel size (2× the size)")
    gain_sigma: float = Field(0.05, ge=0, description="relative spread of the pixel gains")
    hot_pixels: int = Field(20, ge=0)
    hot_pixel_counts: float = Field(40.0, ge=0, description="extra mean counts per frame of a hot pixel")
    xrays_per_frame: float = Field(0.5, ge=0, description="mean X-ray hits per frame")
    xray_counts: tuple[float, float] = Field((60.0, 120.0), description="range of the counts of an X-ray hit")
    movie_format: Literal["mrc", "tiff"] = "mrc"
    mdoc_flavour: Literal["serialem", "tomo5"] = "serialem"


class OutputConfig(_Strict):
    tomogram_binning: int = Field(4, ge=1, description="binning of the noise-free tomogram (truth)")
    write_noise_free_stack: bool = True
    write_ctf_free_stack: bool = Field(
        False,
        description="also write the noise-free stack formed with a perfect "
        "transfer (CTF = −1, the sign of an underfocused first lobe), everything else "
        "the same: the truth a CTF correction aims at",
    )


class SimulationConfig(_Strict):
    name: str = Field("TS", description="prefix of tilt-series names: TS_01, TS_02, …")
    data_root: str | None = Field(
        None,
        description="folder of the shared data (default: $TOMOFORGE_TEST_DATA or ../shared/data beside the repository)",
    )
    specimen: SpecimenConfig = Field(default_factory=SpecimenConfig)
    acquisition: AcquisitionConfig = Field(default_factory=AcquisitionConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "specimen": {
            "ice_thickness_A": 300.0,
            "slab_tilt_deg": 1.0,
            "particles": [{"name": "apoferritin", "source": "models/6z6u.pdb", "count": 2, "count_on_membranes": 1}],
            "fiducials": {"count_per_surface": 3, "min_spacing_A": 200.0},
            "vesicles": {"count": 1, "radius_A": [90.0, 110.0], "aspect": [1.0, 1.2]},
        },
        "acquisition": {
            "tilt_min_deg": -30.0,
            "tilt_max_deg": 30.0,
            "tilt_step_deg": 10.0,
            "stage_shift_sigma_A": 10.0,
            "frames_per_tilt": 3,
            "dose_per_tilt": 3.0,
            "defocus_um": [2.0, 2.5],
        },
        "detector": {"image_size": [128, 128], "pixel_size_A": 6.0, "hot_pixels": 3, "xrays_per_frame": 1.0},
        "output": {"tomogram_binning": 2},
    },
    "small": {
        "specimen": {
            "ice_thickness_A": 1100.0,
            "particles": [
                {"name": "apoferritin", "source": "models/6z6u.pdb", "count": 90, "count_on_membranes": 20},
                {"name": "ribosome", "source": "models/4v5d.cif", "count": 15},
            ],
            "fiducials": {"count_per_surface": 8},
            "vesicles": {"count": 1, "radius_A": [300.0, 380.0], "aspect": [1.0, 1.2]},
            "background_count": 100,
        },
        "acquisition": {"frames_per_tilt": 8},
        "detector": {"image_size": [1024, 1024], "pixel_size_A": 3.0},
        "output": {"tomogram_binning": 4},
    },
    "virions": {  # HIV-like: enveloped virions with an immature-Gag-like lattice of C6 hexamers inside
        "name": "TS",
        "specimen": {
            "ice_thickness_A": 1500.0,
            "particles": [
                {
                    "name": "hexamer",
                    "source": "models/6z6u.pdb",
                    "chain": "A",
                    "symmetry": "C6",
                    "assembly_radius_A": 28.0,
                    "count": 0,
                }
            ],
            "fiducials": {"count_per_surface": 8},
            "vesicles": {"count": 0},
            "virions": {"count": 2, "species": "hexamer", "radius_A": [450.0, 580.0], "aspect": [1.0, 1.15]},
            "background_count": 40,
        },
        "acquisition": {
            "tilt_series_count": 3,
            "tilt_axis_angle_deg": 85.3,
            "frames_per_tilt": 4,
            "dose_per_tilt": 3.0,
            "defocus_um": [2.0, 4.0],
        },
        "detector": {"image_size": [928, 960], "pixel_size_A": 5.4, "mtf": "mtf_k2_300kV"},
        "output": {"tomogram_binning": 2},
    },
    "cell": {  # cellular: ribosomes, rubisco, membranes with bound complexes, filaments, crowders, gold
        "name": "TS",
        "specimen": {
            "ice_thickness_A": 1600.0,
            "particles": [
                {"name": "ribosome", "source": "models/4v5d.cif", "count": 200},
                {
                    "name": "rubisco",
                    "source": "maps/polnet_templates/1bxn.pdb",
                    "biological_assembly": "1",  # L8S8 (the file holds L4S4)
                    "count": 80,
                },
                {"name": "membrane_complex", "source": "models/6z6u.pdb", "count": 0, "count_on_membranes": 40},
                {"name": "filament_subunit", "source": "models/6z6u.pdb", "chain": "A", "count": 0},
            ],
            "fiducials": {"count_per_surface": 6},
            "vesicles": {"count": 2, "radius_A": [300.0, 450.0], "aspect": [1.0, 1.2]},
            "sheets": {"count": 2, "radius_A": [700.0, 1100.0]},
            "filaments": {"count": 4, "species": "filament_subunit"},
            "background_count": 300,
        },
        "acquisition": {
            "tilt_series_count": 2,
            "frames_per_tilt": 4,
            "dose_per_tilt": 3.0,
            "defocus_um": [3.0, 5.0],
        },
        "detector": {"image_size": [1024, 1024], "pixel_size_A": 5.0},
        "output": {"tomogram_binning": 2},
    },
    "tutorial": {
        "name": "TS",
        "specimen": {
            "ice_thickness_A": 1500.0,
            "particles": [{"name": "apoferritin", "source": "models/4v1w.cif", "count": 60, "count_on_membranes": 30}],
            "fiducials": {"count_per_surface": 10},
            "vesicles": {"count": 3, "radius_A": [350.0, 500.0], "aspect": [1.0, 1.15]},
            "background_count": 80,
        },
        "acquisition": {
            "tilt_series_count": 5,
            "tilt_axis_angle_deg": 85.3,
            "frames_per_tilt": 8,
            "dose_per_tilt": 3.0,
            "defocus_um": [2.0, 4.0],
            "exposure_time_s": 0.8,
        },
        "detector": {"image_size": [928, 960], "pixel_size_A": 5.4, "mtf": "mtf_k2_300kV"},
        "output": {"tomogram_binning": 2},
    },
}


PRESET_INFO: dict[str, tuple[int, str]] = {
    "tiny": (0, "1 tilt series of 7 tilts, 128² px: a few apoferritins, a vesicle, gold (tests)"),
    "small": (0, "1 tilt series of 41 tilts, 1024² px at 3 Å: apoferritins, ribosomes, a vesicle, crowders"),
    "virions": (0, "HIV-like: 3 tilt series of 41 tilts, virions with a gapped lattice of C6 hexamers"),
    "cell": (
        0,
        "cellular: 2 tilt series of 41 tilts at 5 Å, 200 ribosomes and 80 rubisco each, membrane sheets and "
        "vesicles with bound complexes, helical filaments, crowders, gold",
    ),
    "tutorial": (0, "5 tilt series of 41 tilts at 5.4 Å: apoferritins free and on vesicles, gold"),
}


def preset_help() -> str:
    """One line per preset: its name, default seed and description (for ``tomoforge simulate --help``)."""
    return "; ".join(f"{name} (seed {seed}): {text}" for name, (seed, text) in PRESET_INFO.items())


class ConfigError(UserError, ValueError):
    """An unknown preset, an unknown ``--set`` key or an invalid value; the message names it."""


def _set_path(tree: Any, keys: list[str], value: Any, full: str) -> None:
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(tree, list):
            if not key.isdigit() or int(key) >= len(tree):
                raise ConfigError(f"--set {full}: '{key}' is not an index of the list (0..{len(tree) - 1})")
            if last:
                tree[int(key)] = value
            else:
                tree = tree[int(key)]
        elif isinstance(tree, dict):
            if key not in tree:
                raise ConfigError(f"--set {full}: unknown key '{key}' (known: {', '.join(sorted(tree))})")
            if last:
                tree[key] = value
            else:
                tree = tree[key]
        else:
            raise ConfigError(f"--set {full}: '{key}' cannot be set inside a {type(tree).__name__}")


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON (numbers, true/false/null, [lists], {objects}) or else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """['a.b=1', …] → {'a.b': 1, …}; a clear error for an item without '='."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value.strip())
    return out


def build_config(preset: str = "tiny", overrides: dict[str, Any] | None = None) -> SimulationConfig:
    """The preset's configuration with ``overrides`` ({'detector.pixel_size_A': 2.0, …}) applied."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    tree = SimulationConfig.model_validate(copy.deepcopy(PRESETS[preset])).model_dump(mode="json")
    for key, value in (overrides or {}).items():
        _set_path(tree, key.split("."), value, key)
    try:
        return SimulationConfig.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid value for {where}: {first['msg']}") from err
