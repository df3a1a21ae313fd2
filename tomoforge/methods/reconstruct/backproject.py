"""The back-projector and its exact adjoint, the forward projector, as one sparse matrix.

Every voxel (z, x) reads, in each view, its line row at offset r = −tan(XTilt)·z and position τ
(geometry.py): bilinear weights on the (row, τ) grid of the (upsampled) lines, the same for every
tomogram row y. So the back-projection of a block of rows is one sparse × dense product

    volume (voxels (z, x), rows y) = S (voxels, line samples of all views) @ lines (line samples, rows y)

with S in CSR form (2 taps per voxel and view, 4 with an XTilt), which torch runs multi-threaded on the
CPU (MKL) and on the GPU (cuSPARSE). The forward projector is oversampling × Sᵀ @ volume: the exact
adjoint of the back-projector, scaled so that it gives line integrals (voxel values × voxel length).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from tomoforge.methods.reconstruct.lines import LinePlan
from tomoforge.methods.reconstruct.slabs import release_freed_memory

_BUILD_ENTRIES = 1 << 21  # voxel × view × tap entries built at once (bounds the build's temporaries)


def _csr(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, val, shape)


def projector_bytes(plan: LinePlan) -> int:
    """Bytes S will take (int32 column and float32 weight per entry, 2 or 4 taps per voxel and view)."""
    nz, _, nx = plan.volume.shape_zyx
    taps = 4 if np.any(plan.tan_a != 0) else 2
    return nz * nx * plan.n_views * taps * 8 + (nz * nx + 1) * 4


class LineProjector:
    """S for a line plan: ``backproject`` lines → voxels, ``project`` voxels → lines, per block of rows."""

    def __init__(self, plan: LinePlan, device: torch.device | str | None = None):
        self.plan = plan
        self.device = torch.device(device or "cpu")
        nz, _, nx = plan.volume.shape_zyx
        self.n_voxels = nz * nx
        self.block_sizes = (plan.n_offsets * plan.n_samples).astype(np.int64)  # columns per view
        self.col_base = np.concatenate([[0], np.cumsum(self.block_sizes)[:-1]])
        self.n_columns = int(self.block_sizes.sum())
        self.matrix = self._build()
        if self.device.type == "cpu":
            release_freed_memory()  # the build's temporaries
        self._transposed: torch.Tensor | None = None
        self._column_sums: torch.Tensor | None = None

    # --- construction --------------------------------------------------------------------------
    def _build(self) -> torch.Tensor:
        """S in CSR form, filled block of z-rows by block into arrays of the final size (int32 columns,
        float32 weights; taps of weight 0, from views without XTilt when another has one, left out)."""
        p = self.plan
        nz, _, nx = p.volume.shape_zyx
        x = torch.as_tensor(p.volume.axis_px("x"), dtype=torch.float32)
        z_all = torch.as_tensor(p.volume.axis_px("z"), dtype=torch.float64)
        cos_b = torch.as_tensor(p.cos_b, dtype=torch.float32) * p.oversampling
        sin_b_over_cos_a = torch.as_tensor(p.sin_b / p.cos_a, dtype=torch.float64) * p.oversampling
        tan_a, row_lo = torch.as_tensor(p.tan_a), torch.as_tensor(p.row_lo)
        # τ sample position (upsampled units) = cos b · x · os + [sin b / cos a · z − τ0] · os + column base
        offset = torch.as_tensor(-p.tau0 * p.oversampling + self.col_base)
        n_s = p.n_samples
        four = bool(np.any(p.tan_a != 0))
        taps = 4 if four else 2
        per_row = p.n_views * taps
        if self.n_voxels * per_row >= 2**31 - 1:
            raise MemoryError(
                f"the projector would have {self.n_voxels * per_row} entries, too many for one matrix: "
                "use a smaller tomogram (binning, thickness) or fewer views"
            )
        cols = torch.empty(self.n_voxels * per_row, dtype=torch.int32)
        vals = torch.empty(self.n_voxels * per_row, dtype=torch.float32)
        crow = torch.empty(self.n_voxels + 1, dtype=torch.int64)
        crow[0] = 0
        filled = 0
        step = max(1, _BUILD_ENTRIES // (nx * per_row))
        for z0 in range(0, nz, step):
            z = z_all[z0 : z0 + step]
            per_z = sin_b_over_cos_a[None, :] * z[:, None] + offset[None, :]  # (z, view), float64
            whole = torch.floor(per_z)
            m = cos_b[None, None, :] * x[None, :, None] + (per_z - whole).to(torch.float32)[:, None, :]
            m0 = torch.floor(m)
            fm = m - m0
            col0 = m0.to(torch.int32) + whole.to(torch.int32)[:, None, :]
            rows = len(z) * nx
            if four:
                r = -tan_a[None, :] * z[:, None]  # (z, view) row offset
                r0 = torch.floor(r)
                fr = (r - r0).to(torch.float32)[:, None, :]
                col0 += ((r0.to(torch.int32) - row_lo[None, :].to(torch.int32)) * n_s)[:, None, :]
                w = torch.stack([(1 - fr) * (1 - fm), (1 - fr) * fm, fr * (1 - fm), fr * fm], dim=-1)
                c = torch.stack([col0, col0 + 1, col0 + n_s, col0 + n_s + 1], dim=-1)
                w, c = w.reshape(rows, per_row), c.reshape(rows, per_row)
                keep = w != 0
                n_keep = int(keep.sum())
                torch.cumsum(keep.sum(dim=1), 0, out=crow[1 + z0 * nx : 1 + z0 * nx + rows])
                crow[1 + z0 * nx : 1 + z0 * nx + rows] += filled
                cols[filled : filled + n_keep] = c[keep]
                vals[filled : filled + n_keep] = w[keep]
                filled += n_keep
            else:
                n_new = rows * per_row
                cols[filled : filled + n_new].view(rows, p.n_views, 2).copy_(
                    torch.stack([col0, col0 + 1], dim=-1).view(rows, p.n_views, 2)
                )
                vals[filled : filled + n_new].view(rows, p.n_views, 2).copy_(
                    torch.stack([1 - fm, fm], dim=-1).view(rows, p.n_views, 2)
                )
                crow[1 + z0 * nx : 1 + z0 * nx + rows] = torch.arange(1, rows + 1) * per_row + filled
                filled += n_new
        return _csr(
            crow.to(torch.int32).to(self.device),
            cols[:filled].to(self.device),
            vals[:filled].to(self.device),
            (self.n_voxels, self.n_columns),
        )

    @property
    def transposed(self) -> torch.Tensor:
        """Sᵀ in CSR form (built on first use: the forward projector): S's entries sorted by column, stably,
        so that each row of Sᵀ lists its voxels in order."""
        if self._transposed is None:
            s = self.matrix
            col, crow = s.col_indices(), s.crow_indices()
            order = torch.argsort(col, stable=True)
            voxel = torch.repeat_interleave(
                torch.arange(s.shape[0], dtype=torch.int32, device=col.device), (crow[1:] - crow[:-1]).long()
            )
            counts = torch.bincount(col.long(), minlength=s.shape[1])
            t_crow = torch.zeros(s.shape[1] + 1, dtype=torch.int64, device=col.device)
            torch.cumsum(counts, 0, out=t_crow[1:])
            self._transposed = _csr(t_crow.to(torch.int32), voxel[order], s.values()[order], (s.shape[1], s.shape[0]))
        return self._transposed

    @property
    def column_sums(self) -> torch.Tensor:
        """(n_columns,) oversampling · Sᵀ · 1: the ray length (voxels) through one full tomogram row that each
        line sample at each row offset collects."""
        if self._column_sums is None:
            ones = torch.ones(self.n_voxels, 1, device=self.matrix.device)
            self._column_sums = self.project_columns(ones)[:, 0]
        return self._column_sums

    @property
    def nbytes(self) -> int:
        """Memory held by S (and Sᵀ once built), in bytes."""
        one = self.matrix.values().numel() * 8 + self.matrix.crow_indices().numel() * 4
        return one * (2 if self._transposed is not None else 1)

    # --- lines <-> matrix columns --------------------------------------------------------------
    def columns_from_lines(self, lines: torch.Tensor, first_row: int, y0: int, y1: int) -> torch.Tensor:
        """(n_columns, y1 − y0) right-hand side for tomogram rows [y0, y1) from ``lines`` (views, rows,
        n_samples) whose row 0 is line row ``first_row``."""
        p, c = self.plan, y1 - y0
        out = torch.empty(self.n_columns, c, dtype=lines.dtype, device=lines.device)
        for v in range(p.n_views):
            start = y0 + int(p.row_lo[v]) - first_row
            d = int(p.n_offsets[v])
            block = lines[v, start : start + d + c - 1]  # (d + c − 1, n_samples)
            target = out[int(self.col_base[v]) : int(self.col_base[v] + self.block_sizes[v])]
            target.view(d, p.n_samples, c).copy_(block.unfold(0, c, 1))  # [offset, τ, row]
        return out

    def add_columns_to_lines(self, columns: torch.Tensor, lines: torch.Tensor, first_row: int, y0: int) -> None:
        """The adjoint of ``columns_from_lines``: add ``columns`` (n_columns, rows) into ``lines`` in place."""
        p, c = self.plan, columns.shape[1]
        for v in range(p.n_views):
            start = y0 + int(p.row_lo[v]) - first_row
            block = columns[int(self.col_base[v]) : int(self.col_base[v] + self.block_sizes[v])]
            block = block.reshape(int(p.n_offsets[v]), p.n_samples, c)
            for d in range(int(p.n_offsets[v])):
                lines[v, start + d : start + d + c] += block[d].t()

    # --- the products ----------------------------------------------------------------------------
    def backproject_columns(self, columns: torch.Tensor) -> torch.Tensor:
        """(n_voxels (z, x), rows) = S @ columns."""
        return self.matrix @ columns.contiguous()

    def project_columns(self, voxels: torch.Tensor) -> torch.Tensor:
        """(n_columns, rows) = oversampling · Sᵀ @ voxels (line integrals in voxel units)."""
        return (self.transposed @ voxels.contiguous()) * float(self.plan.oversampling)

    def voxels_of(self, volume_rows: torch.Tensor) -> torch.Tensor:
        """(n_voxels, rows) layout of a (z, rows, x) block of the tomogram."""
        nz, c, nx = volume_rows.shape
        return volume_rows.permute(0, 2, 1).reshape(nz * nx, c)

    def rows_of(self, voxels: torch.Tensor) -> torch.Tensor:
        """The (z, rows, x) view of a (n_voxels, rows) block (not contiguous)."""
        nz, _, nx = self.plan.volume.shape_zyx
        return voxels.view(nz, nx, -1).permute(0, 2, 1)


__all__ = ["LineProjector", "projector_bytes"]
