"""The specimen: an ice slab with particles, gold fiducials, vesicles and crowding molecules.

All positions are in Å relative to the tomogram centre, vectors (x, y, z); orientations are rotation
matrices R with x_tomogram = R · x_reference + position. ``render_specimen_volume`` gives the noise-free
potential (V, relative to ice) on a (z, y, x) grid; its z-sum equals the 0° projection exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tomoforge.methods.ellipsoids import add_ellipsoid_volume, ellipsoid_matrix, ellipsoid_outward_normal
from tomoforge.methods.projection import bin_fourier_volume, paste_add, split_position
from tomoforge.methods.rotations import random_rotations, rotation_about_axis, rotation_about_z, rotation_aligning_z_to
from tomoforge.simulate.cellular import Filament, Sheet, helical_filament, sheet_conflicts, sheet_height_extent_A
from tomoforge.simulate.config import SpecimenConfig
from tomoforge.simulate.lattice import ellipsoid_lattice, to_tomogram
from tomoforge.simulate.placement import rotate_box
from tomoforge.simulate.structures import Reference


@dataclass
class PlacedParticle:
    species: int  # index into the references (background molecules: their own list)
    position_A: np.ndarray  # (3,) x, y, z
    rotation: np.ndarray  # (3, 3)
    vesicle: int = -1  # vesicle it is bound to, −1 when free
    normal: np.ndarray | None = None  # membrane normal at its anchor (unit, x, y, z)
    virion: int = -1  # virion whose lattice it belongs to, −1 when none
    sheet: int = -1  # sheet it is bound to, −1 when none
    filament: int = -1  # filament it is a subunit of, −1 when none


@dataclass
class Solid:
    """A solid ellipsoid of uniform potential ``weight_V`` (relative to ice)."""

    centre_A: np.ndarray
    matrix: np.ndarray  # ellipsoid matrix A (1/Å²)
    weight_V: float
    kind: str  # "membrane" or "fiducial"


@dataclass
class Vesicle:
    centre_A: np.ndarray
    semi_axes_A: np.ndarray  # of the membrane mid-surface, along the columns of ``rotation``
    rotation: np.ndarray
    membrane_thickness_A: float


@dataclass
class Specimen:
    field_A: tuple[float, float]  # (x, y) extent of the tomogram
    thickness_A: float  # z extent of the tomogram (holds the whole slab)
    ice_thickness_A: float
    slab_normal: np.ndarray  # unit normal of the ice slab (x, y, z)
    particles: list[PlacedParticle] = field(default_factory=list)
    background: list[PlacedParticle] = field(default_factory=list)
    fiducials: list[np.ndarray] = field(default_factory=list)  # centres (Å)
    fiducial_radius_A: float = 50.0
    vesicles: list[Vesicle] = field(default_factory=list)
    virions: list[Vesicle] = field(default_factory=list)
    virion_lattice_axes_A: list[np.ndarray] = field(default_factory=list)  # semi-axes of each lattice surface
    solids: list[Solid] = field(default_factory=list)
    sheets: list[Sheet] = field(default_factory=list)
    filaments: list[Filament] = field(default_factory=list)
    filament_species: int = -1  # index of the species the filaments are made of


class _Packer:
    """Non-overlapping random placement of spheres inside the slab and the field."""

    def __init__(
        self,
        field_A: tuple[float, float],
        ice_A: float,
        normal: np.ndarray,
        margin_A: float,
        rng: np.random.Generator,
    ) -> None:
        self.field, self.ice, self.n, self.margin, self.rng = field_A, ice_A, normal, margin_A, rng
        self.centres = np.zeros((0, 3))
        self.radii = np.zeros(0)
        self.owner = np.zeros(0, dtype=int)  # vesicle index of a sphere (−1: not a vesicle)
        self.sheets: list[Sheet] = []

    def fits(
        self,
        p: np.ndarray,
        r: float,
        ignore_vesicle: int = -1,
        surface_gap: float | None = None,
        ignore_sheet: int = -1,
    ) -> bool:
        return bool(self.fits_all(p[None], r, ignore_vesicle, surface_gap, ignore_sheet))

    def fits_all(
        self,
        points: np.ndarray,
        r: float,
        ignore_vesicle: int = -1,
        surface_gap: float | None = None,
        ignore_sheet: int = -1,
    ) -> bool:
        """Whether spheres of radius ``r`` at all ``points`` (m, 3) fit in the slab and the field and keep
        the margin from every placed sphere (but those of vesicle ``ignore_vesicle``) and sheet."""
        half = np.array(self.field) / 2 - r - self.margin
        gap = self.margin / 2 if surface_gap is None else surface_gap
        if np.any(np.abs(points[:, :2]) > half) or np.any(np.abs(points @ self.n) > self.ice / 2 - r - gap + 1e-6):
            return False
        if self.sheets and np.any(sheet_conflicts(points, r, self.sheets, self.margin, ignore_sheet)):
            return False
        if len(self.radii) == 0:
            return True
        d = np.linalg.norm(self.centres[None] - points[:, None], axis=2) - self.radii - r - self.margin
        return bool(np.all((d > 0) | ((self.owner == ignore_vesicle) & (ignore_vesicle >= 0))))

    def add_all(self, points: np.ndarray, r: float) -> None:
        self.centres = np.vstack([self.centres, points])
        self.radii = np.append(self.radii, np.full(len(points), r))
        self.owner = np.append(self.owner, np.full(len(points), -1))

    def add(self, p: np.ndarray, r: float, owner: int = -1) -> None:
        self.centres = np.vstack([self.centres, p])
        self.radii = np.append(self.radii, r)
        self.owner = np.append(self.owner, owner)

    def random_point(self, r: float, depth: float | None = None) -> np.ndarray:
        xy = (self.rng.random(2) - 0.5) * (np.array(self.field) - 2 * (r + self.margin))
        room = max(self.ice / 2 - r - self.margin, 0.0)
        d = self.rng.uniform(-room, room) if depth is None else depth
        z = (d - self.n[0] * xy[0] - self.n[1] * xy[1]) / self.n[2]
        return np.array([xy[0], xy[1], z])

    def place(self, r: float, what: str, depth: float | None = None, tries: int = 2000) -> np.ndarray:
        for _ in range(tries):
            p = self.random_point(r, depth)
            if self.fits(p, r, surface_gap=None if depth is None else 0.0):
                return p
        raise RuntimeError(
            f"could not place {what} (radius {r:.0f} Å) without overlap after {tries} tries: "
            "make the field larger or the ice thicker, or lower the counts"
        )


def _place_bead(
    packer: _Packer, r: float, depth: float, beads: list[np.ndarray], min_spacing_A: float, what: str, tries: int = 200
) -> np.ndarray:
    """A bead's centre at ``depth`` that fits and lies at least ``min_spacing_A`` in x-y from every bead in
    ``beads`` (with no spacing asked, the packer's first place: the same random draws as without this rule)."""
    for _ in range(tries):
        p = packer.place(r, what, depth=depth)
        if (
            not beads
            or min_spacing_A <= 0
            or np.min(np.linalg.norm(np.asarray(beads)[:, :2] - p[:2], axis=1)) >= min_spacing_A
        ):
            return p
    raise RuntimeError(
        f"could not place {what} {min_spacing_A:.0f} Å in x-y from the other beads after {tries} tries: "
        "lower specimen.fiducials.min_spacing_A or count_per_surface, or make the field larger"
    )


def _membrane_solids(v: Vesicle, head_V: float, tail_V: float) -> list[Solid]:
    """Bilayer as nested solid ellipsoids: head 10 Å | tail core | head 10 Å (telescoping weights)."""
    t = v.membrane_thickness_A
    layers = [(t / 2, head_V), (t / 2 - 10, tail_V - head_V), (-t / 2 + 10, head_V - tail_V), (-t / 2, -head_V)]
    return [Solid(v.centre_A, ellipsoid_matrix(v.semi_axes_A + off, v.rotation), w, "membrane") for off, w in layers]


def _add_virions(
    cfg: SpecimenConfig, spec: Specimen, packer: _Packer, references: list[Reference], rng: np.random.Generator
) -> None:
    """Virions: membranes like vesicles, each with a lattice of assemblies (``lattice.ellipsoid_lattice``) on
    the ellipsoid ``inset_A`` inside its mid-surface; the assemblies join ``spec.particles``."""
    vc = cfg.virions
    names = [sp.name for sp in cfg.particles]
    if vc.species not in names:
        raise ValueError(f"specimen.virions.species: {vc.species!r} is not a specimen.particles name ({names})")
    s = names.index(vc.species)
    inset = vc.membrane_thickness_A / 2 + references[s].radius_A if vc.inset_A is None else vc.inset_A
    for i in range(vc.count):
        r = rng.uniform(*vc.radius_A)
        axes = r * np.array([1.0, rng.uniform(*vc.aspect), rng.uniform(*vc.aspect)])
        axes *= r / np.cbrt(np.prod(axes))
        if axes.min() <= inset + vc.spacing_A:
            raise ValueError(
                f"specimen.virions.radius_A: a virion of semi-axes {np.round(axes)} Å has no room for a lattice "
                f"{inset:.0f} Å inside its membrane: make the radii larger or specimen.virions.inset_A smaller"
            )
        rot = random_rotations(1, rng)[0]
        bound = axes.max() + vc.membrane_thickness_A / 2
        centre = packer.place(bound, f"virion {i}")
        packer.add(centre, bound)
        virion = Vesicle(centre, axes, rot, vc.membrane_thickness_A)
        spec.virions.append(virion)
        spec.virion_lattice_axes_A.append(axes - inset)
        spec.solids += _membrane_solids(virion, cfg.vesicles.head_potential_V, cfg.vesicles.tail_potential_V)
        sites = to_tomogram(
            ellipsoid_lattice(axes - inset, vc.spacing_A, rng, gap_fraction=vc.gap_fraction), centre, rot
        )
        spec.particles += [
            PlacedParticle(s, p, q, -1, n, virion=i)
            for p, q, n in zip(sites.positions_A, sites.rotations, sites.normals)
        ]


def _add_sheets(cfg: SpecimenConfig, spec: Specimen, packer: _Packer, rng: np.random.Generator) -> None:
    """Flat membrane discs inside the ice, apart from each other (``cellular.Sheet``)."""
    sc = cfg.sheets
    for i in range(sc.count):
        for _ in range(2000):
            axes = rng.uniform(*sc.radius_A, size=2)
            tilt = np.degrees(np.arccos(1 - rng.random() * (1 - np.cos(np.radians(sc.max_tilt_deg)))))
            turn = rotation_about_z(rng.uniform(0, 360)) @ rotation_about_axis(np.array([1.0, 0, 0]), tilt)
            rot = rotation_aligning_z_to(spec.slab_normal) @ turn @ rotation_about_z(rng.uniform(0, 360))
            depth = sheet_height_extent_A(axes, rot, sc.membrane_thickness_A, spec.slab_normal)
            room = cfg.ice_thickness_A / 2 - depth - cfg.margin_A
            if room < 0:
                continue
            centre = packer.random_point(0.0, rng.uniform(-room, room))
            if np.any(np.abs(centre[:2]) > np.array(spec.field_A) / 2 - cfg.margin_A):
                continue
            rim = np.linspace(0, 2 * np.pi, 64, endpoint=False)
            radii = np.linspace(0, 1, 6)[:, None, None]
            disc = (radii * np.stack([np.cos(rim) * axes[0], np.sin(rim) * axes[1], 0 * rim], -1)).reshape(-1, 3)
            points = centre + disc @ rot.T
            if not sheet_conflicts(points, sc.membrane_thickness_A / 2, packer.sheets, cfg.margin_A).any():
                break
        else:
            raise RuntimeError(
                f"could not place sheet {i} in the ice without touching another: lower specimen.sheets.count or "
                "radius_A, or make the ice thicker"
            )
        sheet = Sheet(centre, axes, rot, sc.membrane_thickness_A)
        packer.sheets.append(sheet)
        spec.sheets.append(sheet)
        for semi_z, weight in (
            (sc.membrane_thickness_A / 2, cfg.vesicles.head_potential_V),
            (sc.membrane_thickness_A / 2 - 10, cfg.vesicles.tail_potential_V - cfg.vesicles.head_potential_V),
        ):
            matrix = ellipsoid_matrix(np.array([axes[0], axes[1], semi_z]), rot)
            spec.solids.append(Solid(centre, matrix, weight, "membrane"))


def _add_filaments(
    cfg: SpecimenConfig, spec: Specimen, packer: _Packer, references: list[Reference], rng: np.random.Generator
) -> None:
    """Helical filaments of a species' subunits (``cellular.helical_filament``), their backbones in the
    slab plane (up to ``max_elevation_deg`` out of it), kept apart from everything placed before."""
    fc = cfg.filaments
    names = [sp.name for sp in cfg.particles]
    if fc.species not in names:
        raise ValueError(f"specimen.filaments.species: {fc.species!r} is not a specimen.particles name ({names})")
    s = names.index(fc.species)
    spec.filament_species = s
    bound = fc.radius_A + references[s].radius_A
    for i in range(fc.count):
        for _ in range(2000):
            length = rng.uniform(*fc.length_A)
            elevation = rng.uniform(-fc.max_elevation_deg, fc.max_elevation_deg)
            frame = rotation_aligning_z_to(spec.slab_normal) @ rotation_about_z(rng.uniform(0, 360))
            direction = frame @ rotation_about_axis(np.array([0, 1.0, 0]), 90 - elevation)[:, 2]
            bend = np.cross(spec.slab_normal, direction)
            curvature = rng.uniform(0, fc.max_curvature_per_A) * rng.choice([-1.0, 1.0])
            centre = packer.random_point(bound)
            fil = helical_filament(
                centre,
                direction,
                bend,
                curvature,
                length,
                rise_A=fc.rise_A,
                twist_deg=fc.twist_deg,
                radius_A=fc.radius_A,
                phase_deg=rng.uniform(0, 360),
            )
            step = max(1, int(bound // fc.rise_A))
            samples = np.concatenate([fil.backbone_A[::step], fil.backbone_A[-1:]])
            if packer.fits_all(samples, bound):
                break
        else:
            raise RuntimeError(f"could not place filament {i} without overlap: lower specimen.filaments.count")
        packer.add_all(samples, bound)
        spec.filaments.append(fil)
        spec.particles += [PlacedParticle(s, p, q, filament=i) for p, q in zip(fil.positions_A, fil.rotations)]


def _bind(
    spec: Specimen, packer: _Packer, rng: np.random.Generator, radius_A: float, offset_A: float | None, what: str
) -> PlacedParticle:
    """A particle bound to a random vesicle or sheet, centred ``offset_A`` (default: half the membrane's
    thickness + ``radius_A``) from the mid-surface along the normal (outward for vesicles, either side for
    sheets), its z along that normal."""
    n_vesicles = len(spec.vesicles)
    for _ in range(2000):
        mi = int(rng.integers(n_vesicles + len(spec.sheets)))
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        if mi < n_vesicles:
            ves = spec.vesicles[mi]
            surface = ves.centre_A + ves.rotation @ (ves.semi_axes_A * u)
            n = ellipsoid_outward_normal(ellipsoid_matrix(ves.semi_axes_A, ves.rotation), ves.centre_A, surface[None])[
                0
            ]
            p = surface + n * (ves.membrane_thickness_A / 2 + radius_A if offset_A is None else offset_A)
            ok = packer.fits(p, radius_A, ignore_vesicle=mi)
        else:
            sheet = spec.sheets[mi - n_vesicles]
            r = 0.8 * np.sqrt(rng.random())  # uniform over the disc inside 0.8 of its radius
            angle = rng.uniform(0, 2 * np.pi)
            local = np.array([r * np.cos(angle) * sheet.semi_axes_A[0], r * np.sin(angle) * sheet.semi_axes_A[1], 0])
            n = sheet.normal * (1.0 if u[0] >= 0 else -1.0)
            lift = sheet.membrane_thickness_A / 2 + radius_A if offset_A is None else offset_A
            p = sheet.centre_A + sheet.rotation @ local + n * lift
            ok = packer.fits(p, radius_A, ignore_sheet=mi - n_vesicles)
        if ok:
            break
    else:
        raise RuntimeError(f"could not bind {what} to a membrane without overlap")
    packer.add(p, radius_A)
    rot = rotation_aligning_z_to(n) @ rotation_about_z(rng.uniform(0, 360))
    if mi < n_vesicles:
        return PlacedParticle(0, p, rot, mi, n)
    return PlacedParticle(0, p, rot, -1, n, sheet=mi - n_vesicles)


def build_specimen(
    cfg: SpecimenConfig,
    field_A: tuple[float, float],
    references: list[Reference],
    backgrounds: list[Reference],
    rng: np.random.Generator,
) -> Specimen:
    """Place sheets, vesicles, virions with their lattices, membrane-bound particles, gold, filaments, free
    particles and crowders, in that order (without sheets, virions or filaments, no random number is drawn
    for them)."""
    az = np.deg2rad(cfg.slab_tilt_azimuth_deg)
    normal = rotation_about_axis(np.array([np.cos(az), np.sin(az), 0.0]), cfg.slab_tilt_deg) @ np.array([0, 0, 1.0])
    corners = np.array([[sx * field_A[0] / 2, sy * field_A[1] / 2] for sx in (-1, 1) for sy in (-1, 1)])
    tilt_extent = np.abs(corners @ normal[:2]).max() / normal[2]
    thickness = 2 * (cfg.ice_thickness_A / 2 / normal[2] + tilt_extent) * 1.05 + 2 * cfg.margin_A
    spec = Specimen(
        field_A, float(thickness), cfg.ice_thickness_A, normal, fiducial_radius_A=cfg.fiducials.diameter_A / 2
    )
    packer = _Packer(field_A, cfg.ice_thickness_A, normal, cfg.margin_A, rng)

    if cfg.sheets.count:
        _add_sheets(cfg, spec, packer, rng)
    vc = cfg.vesicles
    for i in range(vc.count):
        r = rng.uniform(*vc.radius_A)
        axes = r * np.array([1.0, rng.uniform(*vc.aspect), rng.uniform(*vc.aspect)])
        axes *= r / np.cbrt(np.prod(axes))  # keep the mean radius
        rot = random_rotations(1, rng)[0]
        bound = axes.max() + vc.membrane_thickness_A / 2
        centre = packer.place(bound, f"vesicle {i}")
        packer.add(centre, bound, owner=i)
        ves = Vesicle(centre, axes, rot, vc.membrane_thickness_A)
        spec.vesicles.append(ves)
        spec.solids += _membrane_solids(ves, vc.head_potential_V, vc.tail_potential_V)

    if cfg.virions.count:
        _add_virions(cfg, spec, packer, references, rng)

    for s, (sp, ref) in enumerate(zip(cfg.particles, references)):
        if sp.count_on_membranes and not (spec.vesicles or spec.sheets):
            raise ValueError(
                f"specimen.particles.{s}.count_on_membranes: needs specimen.vesicles.count or sheets.count > 0"
            )
        for k in range(sp.count_on_membranes):
            bound = _bind(spec, packer, rng, ref.radius_A, sp.membrane_offset_A, f"{sp.name} {k}")
            bound.species = s
            spec.particles.append(bound)

    fc = cfg.fiducials
    for side in (-1, 1):
        for k in range(fc.count_per_surface):
            depth = side * (cfg.ice_thickness_A / 2 - fc.diameter_A / 2)  # touching the surface
            p = _place_bead(packer, fc.diameter_A / 2, depth, spec.fiducials, fc.min_spacing_A, f"gold bead {k}")
            packer.add(p, fc.diameter_A / 2)
            spec.fiducials.append(p)
            r = fc.diameter_A / 2
            spec.solids.append(Solid(p, ellipsoid_matrix(np.array([r, r, r])), fc.potential_V, "fiducial"))

    if cfg.filaments.count:
        _add_filaments(cfg, spec, packer, references, rng)

    for s, (sp, ref) in enumerate(zip(cfg.particles, references)):
        for k in range(sp.count):
            p = packer.place(ref.radius_A, f"{sp.name} {k}")
            packer.add(p, ref.radius_A)
            spec.particles.append(PlacedParticle(s, p, random_rotations(1, rng)[0]))

    for k in range(cfg.background_count):
        b = int(rng.integers(len(backgrounds)))
        p = packer.place(backgrounds[b].radius_A, f"background molecule {k}")
        packer.add(p, backgrounds[b].radius_A)
        spec.background.append(PlacedParticle(b, p, random_rotations(1, rng)[0]))
    return spec


def render_specimen_volume(
    spec: Specimen,
    references: list[Reference],
    backgrounds: list[Reference],
    pixel_size_A: float,
    shape_zyx: tuple[int, int, int],
    binning: int = 1,
) -> torch.Tensor:
    """Noise-free potential (V relative to ice), (z, y, x) float32, voxel n // 2 at 0 Å; references
    Fourier-binned by ``binning`` (pixel_size_A must be their pixel size × binning)."""
    vol = torch.zeros(shape_zyx, dtype=torch.float32)
    centre = np.array(shape_zyx[::-1]) // 2
    for refs, items in ((references, spec.particles), (backgrounds, spec.background)):
        binned = [bin_fourier_volume(r.fourier, binning) for r in refs]
        for item in items:
            whole, frac = split_position(item.position_A / pixel_size_A + centre)
            box = rotate_box(binned[item.species], item.rotation, frac)
            paste_add(vol, box, tuple(whole[::-1]))
    for solid in spec.solids:
        add_ellipsoid_volume(vol, pixel_size_A, solid.centre_A, solid.matrix, solid.weight_V)
    return vol
