"""Write a changed copy of a safetensors file, for the CLI tests.

    edit_safetensors.py IN OUT [--meta KEY=VALUE] [--drop-meta KEY]
                               [--set TENSOR INDEX VALUE]

--meta sets a metadata entry (added or replaced), --drop-meta removes one,
--set writes VALUE (a Python float: 1.5, nan, inf, -inf) into element INDEX
of an F32 tensor. Each option may repeat. The layout stays the reference
writer's (header padded with spaces to a multiple of 8).
"""
import argparse
import json
import struct


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--meta", action="append", default=[])
    parser.add_argument("--drop-meta", action="append", default=[])
    parser.add_argument("--set", nargs=3, action="append", default=[],
                        metavar=("TENSOR", "INDEX", "VALUE"))
    args = parser.parse_args()
    with open(args.source, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    data = bytearray(blob[8 + length:])
    meta = header.setdefault("__metadata__", {})
    for item in args.meta:
        key, value = item.split("=", 1)
        meta[key] = value
    for key in args.drop_meta:
        meta.pop(key, None)
    for name, index, value in args.set:
        entry = header[name]
        assert entry["dtype"] == "F32", entry
        begin = entry["data_offsets"][0] + 4 * int(index)
        assert begin + 4 <= entry["data_offsets"][1], (name, index)
        data[begin:begin + 4] = struct.pack("<f", float(value))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(args.target, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))


if __name__ == "__main__":
    main()
