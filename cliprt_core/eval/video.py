"""Rollout videos: frames are streamed to an MP4 (imageio + its bundled ffmpeg) as they come."""
from __future__ import annotations

import os
from pathlib import Path

from cliprt_core.sim.protocol import CONTROL_FREQ_HZ
import numpy as np


class VideoWriter:
    """
    Stream uint8 HxWx3 frames into ``<path>.partial.mp4``; ``finish(final)`` renames it.

    A run killed mid-episode leaves only a ``.partial.mp4`` behind, never a truncated file under
    a final name.
    """

    def __init__(self, path: str | os.PathLike, fps: int = CONTROL_FREQ_HZ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.stem + '.partial.mp4')
        self.fps = fps
        self.frames = 0
        self._writer = None

    def append(self, frame: np.ndarray) -> None:
        if self._writer is None:
            import imageio.v2 as imageio  # deferred: imageio/ffmpeg only when videos are on

            self._writer = imageio.get_writer(self.partial, fps=self.fps, codec='libx264',
                                              quality=7, macro_block_size=1,
                                              ffmpeg_log_level='error')
        self._writer.append_data(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frames += 1

    def finish(self, final_path: str | os.PathLike | None = None) -> Path | None:
        """Close the stream and move it to ``final_path`` (default ``path``); None if no frames."""
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        target = Path(final_path) if final_path is not None else self.path
        os.replace(self.partial, target)
        return target

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.partial.unlink(missing_ok=True)
