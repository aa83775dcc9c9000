"""The outbox's codec: a message's bytes packed as an LZ4 block; zlib still read."""

from __future__ import annotations

import zlib

import lz4.block

# Marks an LZ4 block (lz4.block's own form: the length as 4 bytes, then the block). The
# first byte of a zlib stream, which a release before this codec wrote, is 0x08-0x78
# with a low nibble of 8 (RFC 1950's CMF); "4" (0x34) is never one, so it tells the two
# apart. An LZ4 block has no magic of its own, and an LZ4 frame's, which does, took
# ~15-35 us to unpack a 29 KB digest against the block's ~8.
LZ4 = b"4"


def pack(data: bytes) -> bytes:
    """Return ``data`` packed for the outbox."""
    # LZ4's fast mode, not zlib (level 3) as before: on the bench's digests (~29 KB)
    # ~45 us to pack rather than ~300, ~8 us to unpack rather than ~75, at ~9.2 KB
    # stored rather than ~6.5. Unpacking is in every message's send, which CPU bounds.
    block: bytes = lz4.block.compress(data)
    return LZ4 + block


def unpack(packed: bytes) -> bytes:
    """Return the bytes ``pack`` packed, or those of a zlib stream (earlier releases)."""
    if packed[:1] == LZ4:
        unpacked: bytes = lz4.block.decompress(memoryview(packed)[1:])
        return unpacked
    return zlib.decompress(packed)
