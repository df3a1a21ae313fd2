"""postprocess: soft mask, phase-randomisation-corrected masked FSC, resolution at 0.143, Guinier B-factor
and FSC-weighted sharpening of a map's half maps (``methods.sta.postprocess``); PNG plots of the FSC curves
and the Guinier plot; the sharpened map as a Volume carrying the corrected FSC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model.volume import FSC, Volume
from tomoforge.protocols.sta.halves import volumes_with_halves


class PostprocessParams(ProtocolParams):
    mask_file: str = param("", help="soft mask MRC (values 0-1); '' makes one from the average")
    threshold: float = param(0.2, gt=0, lt=1, help="automatic mask: fraction of the low-passed map's maximum")
    extend_px: float = param(2.0, ge=0, unit="voxel", help="automatic mask: growth of the binary mask")
    soft_edge_px: float = param(4.0, ge=0, unit="voxel", help="automatic mask: width of the cosine edge")
    bfactor_A2: float | None = param(None, unit="Å²", help="sharpen with this B instead of the Guinier fit's")
    fit_from_A: float = param(10.0, gt=0, unit="Å", help="low-resolution end of the Guinier fit")


@dataclass(frozen=True, kw_only=True)
class PostprocessJob:
    """The job of ``postprocess_task``: the half maps, the mask (or ''), pixel size, output base, params."""

    half1: str
    half2: str
    pixel_size_A: float
    out_base: str
    params: PostprocessParams
    mask: str = ""


def postprocess_task(job: PostprocessJob) -> dict[str, Any]:
    """Task: ``{out_base}.mrc`` (sharpened), ``_mask.mrc``, ``_fsc.png``, ``_guinier.png``; returns the figures."""
    from tomoforge.io.mrc import read_mrc, write_mrc
    from tomoforge.methods.sta.postprocess import postprocess
    from tomoforge.protocols.sta.plots import fsc_plot, guinier_plot

    p = job.params
    mask = read_mrc(job.mask) if job.mask else None
    r = postprocess(
        read_mrc(job.half1),
        read_mrc(job.half2),
        job.pixel_size_A,
        mask=mask,
        bfactor_A2=p.bfactor_A2,
        fit_from_A=p.fit_from_A,
        threshold=p.threshold,
        extend_px=p.extend_px,
        soft_edge_px=p.soft_edge_px,
    )
    px = job.pixel_size_A
    sharpened = write_mrc(f"{job.out_base}.mrc", r.sharpened.numpy(), px, overwrite=True)
    mask_file = write_mrc(f"{job.out_base}_mask.mrc", r.mask.numpy(), px, overwrite=True)
    curves = [
        ("unmasked", r.fsc_unmasked.correlation),
        ("masked", r.fsc_masked.correlation),
        (f"phase-randomised beyond shell {r.randomised_from_shell}", r.fsc_randomised.correlation),
        ("corrected", r.fsc_corrected.correlation),
    ]
    fsc_png = fsc_plot(f"{job.out_base}_fsc.png", f"{r.resolution_A:.1f} Å at 0.143", r.fsc_corrected.frequency, curves)
    guinier_png = guinier_plot(
        f"{job.out_base}_guinier.png",
        "Guinier",
        r.guinier_k2,
        r.guinier_ln_amplitude,
        r.guinier_fit_range,
        r.bfactor_A2,
    )
    return {
        "file": str(sharpened),
        "mask_file": str(mask_file),
        "pngs": [fsc_png, guinier_png],
        "resolution_A": r.resolution_A,
        "bfactor_A2": r.bfactor_A2,
        "frequency": r.fsc_corrected.frequency.tolist(),
        "fsc": r.fsc_corrected.correlation.tolist(),
        "randomised_from_shell": r.randomised_from_shell,
    }


class Postprocess(Protocol):
    """Post-process: masked FSC corrected by phase randomisation, resolution, B-factor and sharpening."""

    name = "postprocess"
    Params = PostprocessParams
    inputs: ClassVar = {"volumes": InputSpec(Volume, help="maps with their two half maps")}
    outputs: ClassVar = {"volumes": Volume}
    params: PostprocessParams

    def tasks(self) -> Iterator[Task[Any]]:
        for volume, refusal in volumes_with_halves(self, "post-processing"):
            if refusal is not None:
                yield refusal
                continue
            job = PostprocessJob(
                half1=str(self.absolute(volume.half1_file)),
                half2=str(self.absolute(volume.half2_file)),
                pixel_size_A=volume.pixel_size_A,
                out_base=str(self.out_path(f"{volume.name}_postprocess")),
                params=self.params,
                mask=self.params.mask_file,
            )
            yield Task(postprocess_task, job, key=volume.name)

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        source = cast(Volume, self.input("volumes").get(task.key))
        label = f"corrected masked FSC; B = {result['bfactor_A2']:.0f} Å²"
        volume = source.model_copy(
            update={
                "name": f"{source.name}_postprocess",
                "file": self.relative(result["file"]),
                "mask_file": self.relative(result["mask_file"]),
                "fsc": FSC(label=label, frequency_per_A=result["frequency"], correlation=result["fsc"]),
            }
        )
        self.emit("volumes", volume, task)
        self.log(
            f"{source.name}: resolution {result['resolution_A']:.2f} Å (0.143, masked FSC corrected by phase "
            f"randomisation beyond shell {result['randomised_from_shell']}); B-factor {result['bfactor_A2']:.1f} Å²; "
            f"plots {', '.join(result['pngs'])}"
        )


__all__ = ["Postprocess", "PostprocessJob", "PostprocessParams", "postprocess_task"]
