"""The xl save-file / migration-stream format.

The header and the JSON domain config are xl's own (tools/xl/xl_saverestore.c), so the
``info 0x3/0x0/N`` numbers xl prints come out as on a real host.  Where the real stream carries
the guest's memory (libxc's stream), the simulation carries a small JSON record instead: what
the guest is like (its load, its I/O rates, whether it ignores ACPI) so that a restored or
migrated guest behaves as before.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from simxen import yajl

MAGIC = b"Xen saved domain, xl format\n \0 \r"
BYTEORDER = 0x01020304
FLAG_JSON = 1 << 0
FLAG_STREAMV2 = 1 << 1
_HEADER = struct.Struct("=32sIIII")
_SIM_TAG = b"SIMXEN-DOMAIN\0"
_U32 = struct.Struct("=I")


TRUNCATED = "libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated"


class StreamError(Exception):
    """A save file or stream that is not what xl expects; ``lines`` is what xl prints."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Header:
    mandatory_flags: int
    optional_flags: int
    optional_data_len: int

    def info(self) -> str:
        return f"0x{self.mandatory_flags:x}/0x{self.optional_flags:x}/{self.optional_data_len}"


def encode_config(config: dict[str, Any]) -> bytes:
    # libxl_domain_config_to_json() text plus its NUL: xl stores and counts the terminator.
    return yajl.dumps(config).encode() + b"\0"


def header_and_config(config: dict[str, Any]) -> tuple[bytes, Header]:
    blob = encode_config(config)
    optdata = _U32.pack(len(blob)) + blob
    hdr = Header(FLAG_STREAMV2 | FLAG_JSON, 0, len(optdata))
    raw = _HEADER.pack(MAGIC, BYTEORDER, hdr.mandatory_flags, hdr.optional_flags, hdr.optional_data_len)
    return raw + optdata, hdr


def encode_guest(record: dict[str, Any]) -> bytes:
    body = json.dumps(record).encode()
    return _SIM_TAG + _U32.pack(len(body)) + body


def _read_exactly(f: BinaryIO, n: int, what: str, source: str) -> bytes:
    chunks = []
    left = n
    while left:
        chunk = f.read(left)
        if not chunk:
            raise StreamError([f"{TRUNCATED} reading {what} from {source}"])
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_header(f: BinaryIO, source: str) -> Header:
    raw = _read_exactly(f, _HEADER.size, "header", source)
    magic, byteorder, mandatory, optional, optlen = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise StreamError(["File has wrong magic number - corrupt or for a different tool?"])
    if byteorder != BYTEORDER:
        raise StreamError(["File has wrong byte order"])
    return Header(mandatory, optional, optlen)


def read_config(f: BinaryIO, hdr: Header, source: str) -> dict[str, Any] | None:
    if not hdr.optional_data_len:
        return None
    optdata = _read_exactly(f, hdr.optional_data_len, "optdata", source)
    if len(optdata) < 4:
        raise StreamError(["Savefile truncated."])
    (length,) = _U32.unpack(optdata[:4])
    if len(optdata) - 4 < length:
        raise StreamError(["Savefile truncated."])
    text = optdata[4 : 4 + length].rstrip(b"\0").decode()
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise StreamError(["Savefile truncated."])
    return doc


def read_guest(f: BinaryIO, source: str) -> dict[str, Any]:
    tag = _read_exactly(f, len(_SIM_TAG), "domain", source)
    if tag != _SIM_TAG:
        raise StreamError(
            [
                "xc: error: Failed to read Record Header from stream: Internal error",
                "libxl: error: libxl_stream_read.c:850:libxl__xc_domain_restore_done: restoring domain: "
                "Invalid argument",
            ]
        )
    (length,) = _U32.unpack(_read_exactly(f, 4, "domain", source))
    doc = json.loads(_read_exactly(f, length, "domain", source))
    return doc if isinstance(doc, dict) else {}
