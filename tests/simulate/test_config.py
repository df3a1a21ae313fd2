import pytest

from tomoforge.simulate.config import PRESETS, ConfigError, build_config, parse_overrides


def test_presets_validate_and_small_meets_the_brief():
    for name in PRESETS:
        build_config(name)
    small = build_config("small")
    assert small.detector.image_size == (1024, 1024)
    n_tilts = (
        round((small.acquisition.tilt_max_deg - small.acquisition.tilt_min_deg) / small.acquisition.tilt_step_deg) + 1
    )
    assert n_tilts == 41
    assert sum(p.count + p.count_on_membranes for p in small.specimen.particles) >= 100
    assert small.specimen.fiducials.count_per_surface > 0 and small.specimen.vesicles.count >= 1
    total = small.acquisition.dose_per_tilt * n_tilts
    assert 40 <= total <= 150
    assert 0.1 <= small.acquisition.dose_per_tilt / small.acquisition.frames_per_tilt <= 0.5


def test_overrides_apply_and_parse_json():
    cfg = build_config(
        "tiny",
        parse_overrides(
            [
                "detector.pixel_size_A=5.5",
                "specimen.particles.0.count=4",
                "acquisition.defocus_um=[1.0, 2.0]",
                "name=Pos",
            ]
        ),
    )
    assert cfg.detector.pixel_size_A == 5.5 and cfg.specimen.particles[0].count == 4
    assert cfg.acquisition.defocus_um == (1.0, 2.0) and cfg.name == "Pos"


def test_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        build_config("huge")
    with pytest.raises(ConfigError, match="detector.pixelsize"):
        build_config("tiny", {"detector.pixelsize": 2})
    with pytest.raises(ConfigError, match="specimen.particles.5"):
        build_config("tiny", {"specimen.particles.5.count": 2})
    with pytest.raises(ConfigError, match="detector.pixel_size_A"):
        build_config("tiny", {"detector.pixel_size_A": -1})
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["nonsense"])


def test_missing_model_file_is_named(tmp_path, test_data):
    from tomoforge.simulate import simulate

    with pytest.raises(FileNotFoundError, match="specimen.particles.0.source"):
        simulate(
            tmp_path,
            "tiny",
            overrides={"specimen.particles.0.source": "models/nope.pdb", "data_root": str(test_data)},
            progress=False,
        )
