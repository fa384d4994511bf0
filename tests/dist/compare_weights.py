"""Compare two safetensors files of f32 tensors.

    compare_weights.py A B TOLERANCE [--differ]

Every tensor of A must be in B with the same shape and
|a - b| <= TOLERANCE * (1 + |b|) elementwise; with --differ, some element
must be outside that bound instead (the check's own control: a tolerance
that cannot tell different runs apart proves nothing). Prints the largest
scaled difference. Exit 0 when the expectation holds.
"""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {entry['dtype']}, not F32")
        begin, end = entry["data_offsets"]
        count = (end - begin) // 4
        out[name] = (entry["shape"], struct.unpack(f"<{count}f", body[begin:end]))
    return out


def main():
    a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
    tolerance = float(sys.argv[3])
    differ = len(sys.argv) > 4 and sys.argv[4] == "--differ"
    if sorted(a) != sorted(b):
        print(f"different tensors: {sorted(a)} and {sorted(b)}")
        return 1
    worst, where = 0.0, ""
    for name in a:
        if a[name][0] != b[name][0]:
            print(f"{name}: shapes {a[name][0]} and {b[name][0]}")
            return 1
        for i, (x, y) in enumerate(zip(a[name][1], b[name][1])):
            scaled = abs(x - y) / (1.0 + abs(y))
            if scaled > worst:
                worst, where = scaled, f"{name}[{i}]: {x!r} and {y!r}"
    print(f"largest |a - b| / (1 + |b|): {worst:.3g} at {where or '-'}")
    within = worst <= tolerance
    return 0 if within != differ else 1


sys.exit(main())
