"""The aligned frames of one stack, (N, H, W·C), in RAM or in a float16 scratch file.

:class:`FrameStore` picks the cheapest storage the memory budget allows: float32 in
RAM, float16 in RAM, or a float16 scratch file read back in row bands. The file is
written with ``pwrite`` and read with ``preadv`` rather than mapped, so the page cache
stays out of the process's RSS and peak memory does not grow with N. float16 is exact
enough for background-subtracted frames (under 0.1 ADU on the sky, a 0.05 % step at
star peaks, far below photon noise). Uncovered pixels are NaN.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdsky.stacking import errors, half, memory

__all__ = ["FrameStore"]


@dataclass(slots=True)
class FrameStore:
    """Aligned frames, (N, H, W·C), in RAM or in a float16 scratch file.

    Use :meth:`create`; write each frame once with :meth:`put`, read bands with
    :meth:`band`, and :meth:`close` (removes the scratch file), or use the store as a
    context manager that closes it.
    """

    n_frames: int
    rows: int
    cols: int
    kind: str
    array: np.ndarray | None = None
    fd: int | None = None
    path: Path | None = None
    bytes_written: int = 0
    _band: np.ndarray | None = None  # float32 rows handed out by band(), reused
    _raw: np.ndarray | None = None  # float16 rows read from the scratch file, reused

    @classmethod
    def create(
        cls,
        n_frames: int,
        rows: int,
        cols: int,
        budget_bytes: int,
        scratch_dir: Path,
    ) -> FrameStore:
        """Pick RAM float32, RAM float16 or a float16 scratch file from the budget."""
        plane = rows * cols
        if n_frames * plane * 4 <= budget_bytes:
            return cls(
                n_frames,
                rows,
                cols,
                "ram-float32",
                memory.empty((n_frames, rows, cols), np.float32),
            )
        if n_frames * plane * 2 <= budget_bytes:
            return cls(
                n_frames,
                rows,
                cols,
                "ram-float16",
                memory.empty((n_frames, rows, cols), np.float16),
            )
        try:
            scratch_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".crowdsky-stack-", suffix=".f16", dir=scratch_dir)
        except OSError as exc:
            raise errors.OutputError(
                f"cannot create a scratch file in {scratch_dir}: {exc}"
            ) from exc
        return cls(n_frames, rows, cols, "disk-float16", None, fd, Path(name))

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame."""
        itemsize = 4 if self.kind == "ram-float32" else 2
        return self.rows * self.cols * itemsize

    def target(self, i: int) -> np.ndarray | None:
        """A writable float32 (H, W·C) view of slot ``i`` (RAM float32 only), else None.

        Warping straight into the slot saves a 25 MB copy per frame.
        """
        if self.kind == "ram-float32":
            assert self.array is not None
            slot: np.ndarray = self.array[i]
            return slot
        return None

    def put(self, i: int, frame: np.ndarray) -> None:
        """Store frame ``i`` ((H, W·C) float32). Thread-safe for distinct ``i``.

        float16 storage clips at float16's largest finite value (65504) so saturated
        pixels do not become infinite.
        """
        if self.kind == "ram-float32":
            assert self.array is not None
            if frame is not self.array[i] and not np.shares_memory(frame, self.array[i]):
                self.array[i] = frame
            return
        if self.array is not None:
            half.to_half(frame, self.array[i])
            return
        assert self.fd is not None
        data = np.empty(frame.shape, dtype=np.float16)
        half.to_half(frame, data)
        try:
            written = os.pwrite(self.fd, data.data.cast("B"), i * self.frame_bytes)
        except OSError as exc:
            raise errors.OutputError(f"scratch write failed: {exc}") from exc
        if written != data.nbytes:
            raise errors.OutputError("scratch write was short (disk full?)")
        self.bytes_written += written

    def band(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of every frame as (N, r1 − r0, W·C) float32.

        A view for RAM float32. Otherwise the rows are converted into a buffer the
        store keeps and reuses for the next band (fresh band-sized arrays cost a page
        fault per 4 KiB, ~0.3 s per GB converted), so the returned array is only valid
        until the next call.
        """
        frames, first = self.band_rows(r0, r1)
        return frames[:, first : first + (r1 - r0)]

    def band_rows(self, r0: int, r1: int) -> tuple[np.ndarray, int]:
        """Rows ``r0:r1`` of every frame inside a C-contiguous (N, rows, W·C) float32
        array: the array and the index of row ``r0`` in it (valid as for :meth:`band`).

        The kernel is given whole contiguous arrays, not a band sliced out of them:
        numba compiles a slice across frames for arbitrary strides, and its loops
        then stay scalar (2.5× slower).
        """
        if self.kind == "ram-float32":
            assert self.array is not None
            return self.array, r0
        rows = r1 - r0
        if self._band is None or self._band.shape[1] < rows:
            self._band = memory.empty((self.n_frames, rows, self.cols), np.float32)
        band = self._band[:, :rows]
        if self.array is not None:
            for i in range(self.n_frames):
                half.from_half(self.array[i, r0:r1], band[i])
            return self._band, 0
        assert self.fd is not None
        if self._raw is None or self._raw.shape[1] < rows:
            self._raw = memory.empty((self.n_frames, rows, self.cols), np.float16)
        raw = self._raw[:, :rows]
        row_bytes = self.cols * 2
        for i in range(self.n_frames):
            view = memoryview(raw[i]).cast("B")
            got = os.preadv(self.fd, [view], i * self.frame_bytes + r0 * row_bytes)
            if got != view.nbytes:
                raise errors.OutputError("scratch read was short")
        for i in range(self.n_frames):
            half.from_half(raw[i], band[i])
        return self._band, 0

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Free memory (kept for the next store, see ``memory``) and remove the scratch file."""
        for array in (self.array, self._band, self._raw):
            memory.release(array)
        self.array = self._band = self._raw = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
