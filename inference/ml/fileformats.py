"""Recognising weight files by their first bytes, and reading a safetensors header without torch.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name -> dtype,
shape, byte offsets, plus an optional "__metadata__" map of strings) and the raw tensor bytes.
Reading the header alone lets a file be checked before any tensor is loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

HEADER_LIMIT = 100 * 1024 * 1024  # safetensors itself refuses headers above 100 MB

DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}

TORCH_DTYPES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.float32: "F32",
    torch.int64: "I64",
    torch.float64: "F64",
}


class FormatError(Exception):
    """A file that is not (valid) safetensors; `kind` is pickle, not_safetensors or damaged."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int]


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] | None
    header_bytes: int  # 8 + the JSON header's length: where the tensor data begins


def safetensors_dtype(dtype: torch.dtype) -> str:
    return TORCH_DTYPES.get(dtype, str(dtype))


def sniff(head: bytes, size: int) -> str:
    """ "safetensors" (plausibly), "pickle" (a torch.save zip or a raw pickle) or "unknown", from a
    file's first 9 bytes and its size.

    Safetensors is tried first: its 8-byte header length can itself begin like a pickle (a length of
    0x480 starts with the bytes 0x80 0x04, a protocol-4 pickle's opening), but a pickle never has a
    "{" right after a length that fits in the file.
    """
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "pickle"  # torch.save's zip container holds a data.pkl
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"  # a pickle stream with protocol 2-5 (torch's legacy format)
    return "unknown"


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Parse and check a file's safetensors header; the tensor data is not read."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(9)
        kind = sniff(head, size)
        if kind == "pickle":
            raise FormatError("it is a pickle (torch.save) file", kind="pickle")
        if kind != "safetensors":
            raise FormatError("it does not start with a safetensors header", kind="not_safetensors")
        handle.seek(0)
        data = handle.read(8 + int.from_bytes(head[:8], "little"))
    return parse_safetensors_header(data, size)


def parse_safetensors_header(data: bytes, total_size: int) -> SafetensorsHeader:
    """Check the header at the start of `data` (a file of `total_size` bytes) and describe it."""
    kind = sniff(data[:9], total_size)
    if kind == "pickle":
        raise FormatError("it is a pickle (torch.save) file", kind="pickle")
    length = int.from_bytes(data[:8], "little")
    if kind != "safetensors" or length > HEADER_LIMIT or len(data) < 8 + length:
        raise FormatError("it does not start with a safetensors header", kind="not_safetensors")
    raw = data[8 : 8 + length]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"its safetensors header is not valid JSON ({exc})", kind="damaged") from exc
    except RecursionError as exc:
        # A crafted header of thousands of nested brackets exhausts the parser's stack.
        raise FormatError("its safetensors header nests too deeply", kind="damaged") from exc
    if not isinstance(header, dict):
        raise FormatError("its safetensors header is not a JSON object", kind="damaged")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise FormatError("its __metadata__ is not a map of strings", kind="damaged")

    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        tensors[name] = _tensor_info(name, entry)
    _check_layout(tensors, total_size - 8 - length)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_bytes=8 + length)


def _tensor_info(name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise FormatError(f"its header entry for {name!r} is not an object", kind="damaged")
    dtype = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise FormatError(f"tensor {name!r} has an unknown dtype {dtype!r}", kind="damaged")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise FormatError(f"tensor {name!r} has an invalid shape {shape!r}", kind="damaged")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and o >= 0 for o in offsets)
    ):
        raise FormatError(f"tensor {name!r} has invalid data offsets {offsets!r}", kind="damaged")
    start, end = offsets
    if end - start != math.prod(shape) * DTYPE_SIZES[str(dtype)]:
        raise FormatError(
            f"tensor {name!r}: its byte range does not match its shape and dtype", kind="damaged"
        )
    return TensorInfo(dtype=str(dtype), shape=tuple(shape), offsets=(start, end))


def _check_layout(tensors: dict[str, TensorInfo], data_size: int) -> None:
    """The tensors must tile the data section exactly: no overlap, no hole, nothing cut off."""
    position = 0
    for info in sorted(tensors.values(), key=lambda item: item.offsets):
        if info.offsets[0] != position:
            raise FormatError("its tensors overlap or leave holes in the data", kind="damaged")
        position = info.offsets[1]
    if position != data_size:
        what = "cut off" if position > data_size else "followed by unexpected bytes"
        raise FormatError(
            f"the file is {what} (data {data_size} bytes, header says {position})", kind="damaged"
        )
