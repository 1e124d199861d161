"""Read TFRecord files (TF Serving's warm-up file format) without TensorFlow.

Each record is: uint64 length, uint32 masked CRC-32C of the length, the data, uint32 masked
CRC-32C of the data (all little-endian). Both checksums are verified, so a torn or corrupted
file is reported as such rather than parsed into garbage.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path


class TFRecordError(ValueError):
    """The file is not a well-formed TFRecord file; the message says where."""


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses. Pure Python: warm-up files are small."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: Path, max_records: int) -> Iterator[bytes]:
    """The records of ``path``, at most ``max_records`` (more is an error, not a silent cut)."""
    with path.open("rb") as file:
        index = 0
        while True:
            header = file.read(12)
            if not header:
                return
            if len(header) < 12:
                raise TFRecordError(f"{path}: record {index} is truncated (header)")
            if index == max_records:
                raise TFRecordError(f"{path}: more than {max_records} records")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc(header[:8]) != length_crc:
                raise TFRecordError(f"{path}: record {index} has a corrupted length")
            data = file.read(length)
            footer = file.read(4)
            if len(data) < length or len(footer) < 4:
                raise TFRecordError(f"{path}: record {index} is truncated")
            if masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise TFRecordError(f"{path}: record {index} fails its checksum")
            yield data
            index += 1
