"""Every used frame resampled onto the reference grid, straight into the frame store.

:class:`Warper` is shared by the threads of the warp step. Bayer frames go from the
mosaic to RGB on the reference grid, each colour interpolated once from its own sites
(``warp.warp_bayer``), unless ``demosaic='bilinear'`` asks for a demosaic first. Each
thread reuses its own buffers, because a fresh frame-sized array per frame costs more
in page faults than the warp itself, and with in-RAM float32 storage a frame is
warped straight into its slot.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from crowdsky.stacking import analysis, debayer, memory, quality, register, warp
from crowdsky.stacking.analysis import FrameState
from crowdsky.stacking.params import StackParams

if TYPE_CHECKING:  # imports numba: loaded by the warm-up, off the caller's thread
    from crowdsky.stacking.frame_store import FrameStore

__all__ = ["Warper"]


class Warper:
    """Warps frames onto ``ref``'s grid into ``store``, from any thread.

    Call :meth:`warp` once per used frame, then :meth:`release` once the threads that
    called it have ended.
    """

    def __init__(self, ref: FrameState, store: FrameStore, params: StackParams) -> None:
        self.ref = ref
        self.store = store
        self.params = params
        self._local = threading.local()
        self._allocated: list[np.ndarray] = []

    def warp(self, k: int, frame: FrameState) -> tuple[np.ndarray, np.ndarray]:
        """Warp used frame ``k`` into its slot of the store (reading it again if its
        mosaic was not kept); its per-channel background and noise, ADU."""
        data = frame.image if frame.image is not None else analysis.reload_mosaic(frame)
        frame.image = None
        rows, cols = self.ref.shape
        n_channels = self.ref.n_channels
        target = self.store.target(k)
        if target is None:
            target = self._buffer("out", (rows, cols * n_channels), np.float32)
        dst = target.reshape(rows, cols, n_channels)
        if frame.kind == "bayer" and self.params.demosaic == "cfa":
            self._warp_mosaic(data, frame, dst)
        else:
            self._warp_pixels(data, frame, dst)
        del data
        back, noise = quality.channel_statistics(dst)
        self.store.put(k, target)
        return back, noise

    def release(self) -> None:
        """Hand every thread's buffers back for the next stack."""
        for array in self._allocated:
            memory.release(array)
        self._allocated.clear()

    def _matrix(self, frame: FrameState) -> np.ndarray:
        if frame is self.ref:
            return register.IDENTITY
        return np.asarray(frame.record.transform, dtype=np.float64)

    def _warp_mosaic(self, data: np.ndarray, frame: FrameState, dst: np.ndarray) -> None:
        """Each colour resampled from its own sites of the mosaic (the reference too)."""
        assert frame.pattern is not None
        rows, cols = self.ref.shape
        planes = self._buffer("planes", (warp.BAYER_WORK_PLANES, rows, cols), np.float32)
        warp.warp_bayer(
            data,
            frame.pattern,
            self._matrix(frame),
            self.ref.shape,
            self.params.interpolation,
            dst=dst,
            work=planes,
        )

    def _warp_pixels(self, data: np.ndarray, frame: FrameState, dst: np.ndarray) -> None:
        """Mono and RGB frames, and mosaics demosaiced first, warped as images (the
        reference copied as it is)."""
        rows, cols = self.ref.shape
        n_channels = self.ref.n_channels
        rgb32 = self._buffer("rgb32", (rows, cols, n_channels), np.float32)
        if frame.kind == "bayer":
            assert frame.pattern is not None
            rgb16 = self._buffer("rgb16", (rows, cols, 3), np.uint16)
            debayer.debayer(data, frame.pattern, dst=rgb16)
            np.copyto(rgb32, rgb16, casting="unsafe")
        else:
            np.copyto(rgb32, data.reshape(rows, cols, n_channels), casting="unsafe")
        if frame is self.ref:
            np.copyto(dst, rgb32)
            return
        src = rgb32 if n_channels == 3 else rgb32[..., 0]
        scratch = (  # only the blended kernel needs a second plane
            self._buffer("scratch", dst.shape, np.float32)
            if self.params.interpolation == warp.BLENDED
            else None
        )
        warp.warp_image(
            src,
            self._matrix(frame),
            self.ref.shape,
            self.params.interpolation,
            dst=dst,
            scratch=scratch,
        )

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """This thread's reusable buffer ``name``, allocated when first needed."""
        found: np.ndarray | None = getattr(self._local, name, None)
        if found is None:
            found = memory.empty(shape, dtype)
            setattr(self._local, name, found)
            self._allocated.append(found)
        return found
