"""Decoding video files (MPEG-1/2, MP4, AVI, ...) into frames with PyAV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

# Chroma samples within this distance of 128 count as neutral: MPEG encoders leave +-1 of rounding
# noise in the chroma planes of gray content, and a real colour cast is far above it.
NEUTRAL_CHROMA_TOLERANCE = 2
# FFmpeg's AVCOL_RANGE_JPEG: full-range (0-255) luma.
_COLOR_RANGE_JPEG = 2
# Limited-range luma (16-235) to full range (0-255), rounded as swscale rounds it; and the same for
# two neighbouring pixels read as one 16-bit number (either byte order: each byte maps on its own).
_LIMITED_TO_FULL_TABLE = np.array(
    [min(255, max(0, round((value - 16) * 255 / 219))) for value in range(256)], dtype=np.uint8
)
_PAIRS = np.arange(65536)
_LIMITED_TO_FULL_PAIRS = _LIMITED_TO_FULL_TABLE[_PAIRS & 0xFF].astype(np.uint16) | (
    _LIMITED_TO_FULL_TABLE[_PAIRS >> 8].astype(np.uint16) << 8
)
del _PAIRS
# Pixel formats whose chroma planes can be read directly as bytes.
_PLANAR_YUV_8BIT = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv440p", "yuvj440p"}
)


# The import converts and encodes frames in its own worker threads, which keep the cores busy; FFmpeg
# decoding threads on top of them only add contention (measured with bench/import_bench.py).
DECODE_THREAD_TYPE = "SLICE"


class VideoRejected(Exception):
    """A video file that cannot be decoded; the message is shown to the user."""


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    frame_rate: float | None
    width: int
    height: int
    duration_s: float | None
    estimated_frames: int | None  # from the container header; only for progress


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # index of the frame in the source, counting every decoded frame
    time_s: float
    frame: Any  # the decoded av.VideoFrame

    def pixels(self) -> NDArray[np.uint8]:
        """The frame's pixels as a new array (the caller's own): height x width (grayscale) when
        its chroma is neutral, else height x width x 3 (RGB).

        Converting costs more than decoding an MPEG-1 frame, so the import calls this in its worker
        threads, not in the thread that decodes; PyAV frames are reference-counted copies and its
        reformatter is made per call, so this is safe while decoding goes on.
        """
        try:
            return _to_pixels(self.frame)
        except (av.FFmpegError, ValueError) as exc:
            raise VideoRejected(f"frame {self.index} cannot be converted: {exc}") from exc


def probe_video(path: Path) -> VideoInfo:
    """Read the header of the first video stream; raises VideoRejected when there is none."""
    try:
        with av.open(str(path)) as container:
            return _info(container)
    except VideoRejected:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise VideoRejected(f"not a readable video: {exc}") from exc


def _info(container: Any) -> VideoInfo:
    if not container.streams.video:
        raise VideoRejected("the file has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frame_rate = float(rate) if rate else None
    duration_s: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    estimated = stream.frames or None
    if estimated is None and duration_s and frame_rate:
        estimated = round(duration_s * frame_rate)
    return VideoInfo(
        codec=stream.codec_context.name,
        frame_rate=frame_rate,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        duration_s=duration_s,
        estimated_frames=estimated,
    )


def decode_frames(path: Path, *, every_nth: int, counter: list[int]) -> Iterator[DecodedFrame]:
    """Every `every_nth` decoded frame of the first video stream, in presentation order.

    `counter[0]` is set to the number of frames decoded so far (the source's true frame count once
    the iterator is exhausted; headers often do not know it, MPEG-1 for one). Any decoding error,
    including a file that ends mid-stream, raises VideoRejected.
    """
    counter[0] = 0
    try:
        with av.open(str(path)) as container:
            info = _info(container)
            stream = container.streams.video[0]
            stream.thread_type = DECODE_THREAD_TYPE
            # By default FFmpeg conceals damaged or missing data and returns a plausible picture;
            # 'explode' makes it fail instead, so a cut-off file (a broken upload, a partial copy)
            # is refused rather than imported with invented content.
            stream.codec_context.options = {"err_detect": "explode"}
            time_base: Fraction | None = stream.time_base
            first_pts: int | None = None
            for frame in container.decode(stream):
                index = counter[0]
                counter[0] += 1
                if index % every_nth:
                    continue
                if frame.pts is not None and time_base is not None:
                    # Times start at 0 even where the container's first timestamp does not.
                    first_pts = frame.pts if first_pts is None else first_pts
                    time_s = float((frame.pts - first_pts) * time_base)
                elif info.frame_rate:
                    time_s = index / info.frame_rate
                else:
                    time_s = float(index)
                yield DecodedFrame(index=index, time_s=time_s, frame=frame)
            _check_complete(container, stream, counter[0])
    except VideoRejected:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError, EOFError) as exc:
        raise VideoRejected(f"unreadable or truncated video: {exc}") from exc


def _check_complete(container: Any, stream: Any, decoded: int) -> None:
    if decoded == 0:
        raise VideoRejected("no frame could be decoded")
    # FFmpeg decodes what it can of a cut-off file without raising; the header still says how long
    # the stream should be, so a file that ends well before that is truncated.
    expected = container.duration
    if stream.duration is not None and stream.time_base is not None:
        expected_s = float(stream.duration * stream.time_base)
    elif expected is not None:
        expected_s = expected / av.time_base
    else:
        return
    rate = stream.average_rate or stream.guessed_rate
    if rate and expected_s > 0:
        decoded_s = decoded / float(rate)
        if decoded_s < 0.9 * expected_s - 1.0 / float(rate):
            raise VideoRejected(
                f"truncated video: {decoded} frames decoded, the header announces about "
                f"{round(expected_s * float(rate))}"
            )


def _to_pixels(frame: Any) -> NDArray[np.uint8]:
    """Grayscale when the chroma planes are neutral (gray content, as in CLE), RGB otherwise."""
    if _chroma_is_neutral(frame):
        if frame.format.name in _PLANAR_YUV_8BIT:
            return _luma_pixels(frame)
        return np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def _luma_pixels(frame: Any) -> NDArray[np.uint8]:
    """The gray pixels of a planar YUV frame from its Y plane, pixel for pixel what swscale's
    conversion to 'gray' gives (so levels match an RGB decode of the same file), for less CPU than
    that conversion (bench/README.md, import).

    swscale copies full-range luma (yuvj* formats, or color_range JPEG) unchanged and stretches
    limited-range luma (16-235, the default) to 0-255 with the rounding of _LIMITED_TO_FULL_TABLE;
    the tests compare both against swscale for every luma value. The lookup goes two pixels at a
    time through a 65,536-entry table: 0.16 ms for a 576x592 frame, against 0.2 ms for Pillow's
    point() plus its copy into an array, and 0.46 ms for a lookup per pixel in numpy.
    """
    plane = frame.planes[0]
    width, height = frame.width, frame.height
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:height, :width]
    if frame.format.name.startswith("yuvj") or frame.color_range == _COLOR_RANGE_JPEG:
        return luma.copy()  # the view shares the frame's memory; the copy owns its pixels
    if width % 2:
        return _LIMITED_TO_FULL_TABLE[luma]
    pixels = np.empty((height, width), np.uint8)
    np.take(_LIMITED_TO_FULL_PAIRS, luma.view(np.uint16), out=pixels.view(np.uint16))
    return pixels


def _chroma_is_neutral(frame: Any) -> bool:
    name = frame.format.name
    if name in {"gray", "gray8"}:
        return True
    if name not in _PLANAR_YUV_8BIT:
        rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
        spread = np.maximum(np.abs(rgb[..., 0] - rgb[..., 1]), np.abs(rgb[..., 1] - rgb[..., 2]))
        return bool(spread.max() <= NEUTRAL_CHROMA_TOLERANCE)
    for plane in frame.planes[1:3]:
        samples = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        # min/max on the bytes themselves: no int16 copy of the plane (0.1 -> 0.06 ms a frame).
        if samples.min() < 128 - NEUTRAL_CHROMA_TOLERANCE or samples.max() > 128 + NEUTRAL_CHROMA_TOLERANCE:
            return False
    return True
