"""The specimen: 0° projection = line integral of the noise-free volume; non-overlap; normals."""

import numpy as np
import torch

from tomoforge.simulate.config import build_config
from tomoforge.simulate.imaging import projected_potential_slabs
from tomoforge.simulate.run import load_references
from tomoforge.simulate.specimen import build_specimen, render_specimen_volume


def _tiny_specimen(test_data, seed=3):
    cfg = build_config("tiny", {"data_root": str(test_data)})
    pix = cfg.detector.pixel_size_A
    refs = load_references(cfg, pix)
    shape = tuple(cfg.detector.image_size)
    spec = build_specimen(cfg.specimen, (shape[1] * pix, shape[0] * pix), refs, [], np.random.default_rng(seed))
    return cfg, pix, refs, shape, spec


def test_zero_degree_projection_is_line_integral_of_the_volume(test_data):
    cfg, pix, refs, shape, spec = _tiny_specimen(test_data)
    nz = int(np.ceil(spec.thickness_A / pix / 2) * 2) + 64  # room for the padded particle boxes
    vol = render_specimen_volume(spec, refs, [], pix, (nz, *shape), binning=1)
    slabs, _ = projected_potential_slabs(spec, refs, [], None, shape, pix, slab_A=100.0)
    proj = sum(slabs.values())
    line_integral = vol.double().sum(0) * pix
    assert float(line_integral.abs().max()) > 100  # something is there (V·Å)
    assert torch.allclose(proj.double(), line_integral, atol=1e-5 * float(line_integral.abs().max()))


def test_objects_do_not_overlap_and_sit_in_the_ice(test_data):
    cfg, pix, refs, shape, spec = _tiny_specimen(test_data, seed=5)
    r = refs[0].radius_A
    pos = np.array([p.position_A for p in spec.particles])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
    assert d.min() >= 2 * r
    assert np.all(np.abs(pos @ spec.slab_normal) <= spec.ice_thickness_A / 2 - r + 1e-6)
    gold = np.array(spec.fiducials)
    depth = gold @ spec.slab_normal
    assert np.allclose(np.abs(depth), spec.ice_thickness_A / 2 - spec.fiducial_radius_A)
    assert (depth > 0).sum() == (depth < 0).sum() == cfg.specimen.fiducials.count_per_surface
    assert abs(spec.slab_normal[2] - np.cos(np.deg2rad(cfg.specimen.slab_tilt_deg))) < 1e-12


def test_membrane_particles_point_along_the_normal(test_data):
    _, _, refs, _, spec = _tiny_specimen(test_data)
    bound = [p for p in spec.particles if p.vesicle >= 0]
    assert bound
    for p in bound:
        v = spec.vesicles[p.vesicle]
        assert np.allclose(p.rotation @ [0, 0, 1], p.normal)
        # the normal is the ellipsoid's outward gradient at the anchor point (centre − offset·normal)
        a = v.rotation @ np.diag(v.semi_axes_A**-2.0) @ v.rotation.T
        anchor = p.position_A - p.normal * (v.membrane_thickness_A / 2 + refs[0].radius_A)
        assert abs((anchor - v.centre_A) @ a @ (anchor - v.centre_A) - 1) < 1e-9
        g = a @ (anchor - v.centre_A)
        assert np.allclose(g / np.linalg.norm(g), p.normal)
