"""The preprocessing protocols state no default of their own where a method has one: they take the method's."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

from tomoforge.methods.preprocess import motion, xray
from tomoforge.methods.preprocess.settings import XRAY_DEFAULTS, XraySettings
from tomoforge.protocols.preprocess.motion import MotionParams
from tomoforge.protocols.preprocess.xray import XrayParams


def default_of(fn: object, name: str) -> object:
    return inspect.signature(fn).parameters[name].default  # type: ignore[arg-type]


def test_the_xray_params_default_to_the_methods_settings():
    assert XrayParams().settings() == XRAY_DEFAULTS == XraySettings()
    assert default_of(xray.erase_xrays, "settings") is XRAY_DEFAULTS
    assert default_of(xray.find_outliers, "settings") is XRAY_DEFAULTS
    custom = XrayParams(threshold_sd=5.0, polarity="both").settings()
    assert custom == XraySettings(threshold_sd=5.0, polarity="both")


def test_the_motion_params_default_to_the_methods_b_factors():
    p = MotionParams()
    assert p.bfactor_A2 == default_of(motion.estimate_global_shifts, "bfactor_A2")
    assert p.patch_bfactor_A2 == default_of(motion.estimate_local_motion, "bfactor_A2")
    assert p.max_shift_A is default_of(motion.estimate_global_shifts, "max_shift_A")


def test_the_protocols_listing_shows_the_methods_defaults():
    probe = (
        "import json\n"
        "from tomoforge.engine.registry import get_protocol\n"
        "schema = get_protocol('xray-eraser').Params.model_json_schema()['properties']\n"
        "print(json.dumps({k: v.get('default') for k, v in schema.items()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    shown = json.loads(out.strip().splitlines()[-1])
    assert shown == {
        "threshold_sd": XRAY_DEFAULTS.threshold_sd,
        "grow_sd": XRAY_DEFAULTS.grow_sd,
        "max_radius_px": XRAY_DEFAULTS.max_radius_px,
        "background_px": XRAY_DEFAULTS.background_px,
        "polarity": XRAY_DEFAULTS.polarity,
    }
