"""CRIU images: a protobuf reader (also used for pagemaps, edge_pagemap, and memory layouts,
edge_criu_mm), and
CRIU's own timings from the `stats-dump` / `stats-restore` images (protobuf StatsEntry:
dump = 1 {freezing_time = 1, frozen_time = 2, memdump_time = 3, memwrite_time = 4, ...},
restore = 2 {pages_compared = 1, pages_skipped_cow = 2, forking_time = 3, restore_time = 4,
pages_restored = 5}; times in microseconds). They give the floor a migration is compared to."""

import os
import struct

DUMP_FIELDS = {1: "freezing_time", 2: "frozen_time", 3: "memdump_time", 4: "memwrite_time", 5: "pages_scanned",
               7: "pages_written"}
RESTORE_FIELDS = {1: "pages_compared", 2: "pages_skipped_cow", 3: "forking_time", 4: "restore_time",
                  5: "pages_restored"}


def _varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def protobuf_items(data):
    """[(field number, value)] of a protobuf message (varints and length-delimited bytes), in
    order: a repeated field appears once per value."""
    items, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)
        items.append((number, value))
    return items


def protobuf_fields(data):
    """{field number: value} of a protobuf message (the last value of a repeated field)."""
    return dict(protobuf_items(data))


def parse(data):
    """The dump and restore statistics in a stats image, times converted to seconds."""
    # The image is a magic (one or two 32-bit words), then a 32-bit length and the entry.
    for offset in (8, 4):
        try:
            (length,) = struct.unpack_from("<I", data, offset)
            if offset + 4 + length != len(data):
                continue
            entry = protobuf_fields(data[offset + 4:offset + 4 + length])
            break
        except (struct.error, IndexError, ValueError):
            continue
    else:
        raise ValueError("not a CRIU stats image")
    result = {}
    for number, names, key in ((1, DUMP_FIELDS, "dump"), (2, RESTORE_FIELDS, "restore")):
        if isinstance(entry.get(number), (bytes, bytearray)):
            raw = protobuf_fields(entry[number])
            result[key] = {name: (raw[field] / 1e6 if name.endswith("_time") else raw[field])
                           for field, name in names.items() if field in raw}
    return result


def read(directory, name):
    """Statistics from directory/name ('stats-dump' or 'stats-restore'), or {} if absent or unreadable."""
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as handle:
            return parse(handle.read())
    except (OSError, ValueError):
        return {}
