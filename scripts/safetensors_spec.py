#!/usr/bin/env python3
"""An independent safetensors reader and writer, written from the format
specification with the Python standard library only (json, struct), to check
cudl's reader and writer against something that shares no code with them.

The format: an 8-byte little-endian unsigned header length N; N bytes of
UTF-8 JSON, an object mapping each tensor name to
{"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]} plus an
optional "__metadata__" object of string -> string; then the data section.
Offsets are relative to the data section, and the tensors' byte ranges must
tile it exactly (no overlap, no hole, nothing after the last). Each tensor is
its elements in row-major order, little-endian.

Usage:
  safetensors_spec.py write PATH     write the fixed interop set (below)
  safetensors_spec.py check PATH     verify a file cudl wrote holds exactly the
                                     interop set and follows the format
                                     strictly, in the layout cudl's writer
                                     promises
  safetensors_spec.py selftest DIR   check the checker: a canonical file
                                     passes, and each of a list of damaged
                                     copies fails

The interop set (the same table is at the top of
tests/interop/safetensors_interop.c):

  k  name                  dtype  shape
  0  conv1.weight          F32    [2, 3, 3, 3]
  1  conv1.bias            F32    [2]
  2  scalar                F32    []
  3  empty                 F32    [0, 3]
  4  five_d                F16    [2, 1, 3, 1, 2]
  5  half                  F16    [5]
  6  empty_half            F16    [0]
  7  brain                 BF16   [3, 4]
  8  emb.<U+65E5 U+672C U+1F642>  BF16   [2, 2]
  9  quote"back\\slash      F32    [3]   (a double quote and one backslash)
 10  scalar_bf16           BF16   []

Element i (row-major) of tensor k has the value

  v(k, i) = (((7 * i + 13 * k) mod 61) - 30) / 4

a multiple of 1/4 in [-7.5, 7.5], exact in F32, F16 and BF16, so both sides
compute the same bits with no rounding: F32 and F16 are IEEE 754 binary32
and binary16; BF16 is the upper 16 bits of the binary32 value.

Metadata: format = "cudl-interop-v1",
          formula = "v(k,i) = ((7*i + 13*k) mod 61 - 30) / 4",
          unicode = "<u-umlaut>n<i-diaeresis>c<o-stroke>d<e-acute> <check mark> <U+1F642>".

`write` lays the tensors out in the order of the table (not cudl's order:
an F32 tensor then sits at an offset that is not a multiple of 4, which the
format allows) and escapes non-ASCII characters in the JSON (\\uXXXX,
surrogate pairs for U+1F642), so cudl's reader sees a file its own writer
would not produce.

`check` verifies, on top of the format rules: the header is compact JSON
(no whitespace outside strings, non-ASCII characters unescaped), padded with
spaces to a multiple of 8; "__metadata__" comes first with its keys sorted;
each entry's keys are dtype, shape, data_offsets in that order; tensors are
laid out as the reference implementation lays them out: by its dtype enum
order (DTYPE_ORDER below), last first -- of cudl's dtypes F32, then BF16,
then F16 -- then by name (bytewise UTF-8). So BF16 tensors precede F16 ones
whatever their names, and larger elements still come first.
"""

import json
import struct
import sys

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "F64": 8, "I64": 8, "U64": 8,
}
# The reference implementation's dtype enum, in declaration order; its
# writer sorts tensors by this order, descending, then by name.
DTYPE_ORDER = [
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64",
]
MAX_HEADER = 100000000


def layout_key(name, dtype):
    """Sort key of the reference (and cudl) layout: dtype order descending,
    then name bytewise."""
    return (-DTYPE_ORDER.index(dtype), utf8_key(name))

TENSORS = [
    ("conv1.weight", "F32", [2, 3, 3, 3]),
    ("conv1.bias", "F32", [2]),
    ("scalar", "F32", []),
    ("empty", "F32", [0, 3]),
    ("five_d", "F16", [2, 1, 3, 1, 2]),
    ("half", "F16", [5]),
    ("empty_half", "F16", [0]),
    ("brain", "BF16", [3, 4]),
    ("emb.\u65e5\u672c\U0001F642", "BF16", [2, 2]),
    ("quote\"back\\slash", "F32", [3]),
    ("scalar_bf16", "BF16", []),
]

METADATA = {
    "format": "cudl-interop-v1",
    "formula": "v(k,i) = ((7*i + 13*k) mod 61 - 30) / 4",
    "unicode": "\u00fcn\u00efc\u00f8d\u00e9 \u2713 \U0001F642",
}


class CheckError(Exception):
    pass


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def value(k, i):
    return (((7 * i + 13 * k) % 61) - 30) / 4.0


def encode(dtype, k, count):
    """The bytes of tensor k: `count` elements of the formula."""
    out = bytearray()
    for i in range(count):
        v = value(k, i)
        if dtype == "F32":
            out += struct.pack("<f", v)
        elif dtype == "F16":
            out += struct.pack("<e", v)
        elif dtype == "BF16":
            bits = struct.unpack("<I", struct.pack("<f", v))[0]
            if bits & 0xFFFF:
                raise ValueError("value %r is not exact in BF16" % v)
            out += struct.pack("<H", bits >> 16)
        else:
            raise ValueError("no encoder for " + dtype)
    # Exactness: decoding gives the value back.
    if dtype == "F16":
        for i in range(count):
            if struct.unpack_from("<e", out, 2 * i)[0] != value(k, i):
                raise ValueError("value not exact in F16")
    return bytes(out)


def expected_tensors():
    """name -> (k, dtype, shape, bytes)."""
    return {name: (k, dtype, shape, encode(dtype, k, numel(shape)))
            for k, (name, dtype, shape) in enumerate(TENSORS)}


def utf8_key(name):
    return name.encode("utf-8")


def build(order="table", ascii_json=True, metadata=METADATA):
    """A file image of the interop set.

    order: "table" (as listed), "cudl" (the reference's dtype order
    descending, then name) or "size" (element size descending, then name:
    cudl's old layout, which puts F16 before BF16 when the F16 name sorts
    first -- not the reference's).
    ascii_json: escape non-ASCII characters in the JSON text."""
    entries = list(enumerate(TENSORS))
    if order == "cudl":
        entries.sort(key=lambda e: layout_key(e[1][0], e[1][1]))
    elif order == "size":
        entries.sort(key=lambda e: (-DTYPE_SIZES[e[1][1]], utf8_key(e[1][0])))
    elif order != "table":
        raise ValueError("unknown order %r" % order)
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items(),
                                             key=lambda kv: utf8_key(kv[0])))
    data = bytearray()
    for k, (name, dtype, shape) in entries:
        blob = encode(dtype, k, numel(shape))
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":"),
                      ensure_ascii=ascii_json).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


# --------------------------------------------------------------- reading ---

def _pairs_no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise CheckError("the key %r appears twice in one JSON object" % key)
        seen.add(key)
    return dict(pairs)  # keeps the file's order


def _reject_constant(name):
    raise CheckError("non-standard JSON constant " + name)


def _reject_float(text):
    raise CheckError("a non-integer number %s in the header" % text)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def parse(image):
    """Parse and validate a file image by the format rules alone.

    Returns (header_text, header_object, data_bytes); raises CheckError."""
    if len(image) < 8:
        raise CheckError("file of %d bytes is shorter than the length field"
                         % len(image))
    (n,) = struct.unpack_from("<Q", image, 0)
    if n > MAX_HEADER:
        raise CheckError("header length %d is above the limit" % n)
    if 8 + n > len(image):
        raise CheckError("header length %d runs past the end of the file" % n)
    raw = image[8:8 + n]
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CheckError("header is not valid UTF-8: %s" % e)
    if not text.startswith("{"):
        raise CheckError("header does not start with '{'")
    decoder = json.JSONDecoder(object_pairs_hook=_pairs_no_duplicates,
                               parse_constant=_reject_constant,
                               parse_float=_reject_float, strict=True)
    try:
        obj, end = decoder.raw_decode(text)
    except json.JSONDecodeError as e:
        raise CheckError("header is not valid JSON: %s" % e)
    if text[end:].strip(" \t\r\n") != "":
        raise CheckError("bytes after the JSON object: %r" % text[end:][:20])
    if not isinstance(obj, dict):
        raise CheckError("header's top level is not an object")
    data = image[8 + n:]

    spans = []
    for name, info in obj.items():
        if name == "__metadata__":
            if not isinstance(info, dict):
                raise CheckError("__metadata__ is not an object")
            for mk, mv in info.items():
                if not isinstance(mv, str):
                    raise CheckError("__metadata__[%r] is not a string" % mk)
            continue
        if name == "":
            raise CheckError("a tensor has an empty name")
        if not isinstance(info, dict):
            raise CheckError("entry %r is not an object" % name)
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise CheckError("entry %r has keys %r" % (name, sorted(info)))
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise CheckError("entry %r has dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise CheckError("entry %r has shape %r" % (name, shape))
        if (not isinstance(offsets, list) or len(offsets) != 2 or
                not all(_is_int(o) and o >= 0 for o in offsets)):
            raise CheckError("entry %r has data_offsets %r" % (name, offsets))
        begin, end_ = offsets
        if end_ < begin:
            raise CheckError("entry %r has reversed data_offsets" % name)
        if end_ - begin != numel(shape) * DTYPE_SIZES[dtype]:
            raise CheckError("entry %r: data_offsets span %d bytes, %s x %r needs %d"
                             % (name, end_ - begin, dtype, shape,
                                numel(shape) * DTYPE_SIZES[dtype]))
        spans.append((begin, end_, name))
    cursor = 0
    for begin, end_, name in sorted(spans):
        if begin != cursor:
            raise CheckError("entry %r begins at %d, expected %d (%s)"
                             % (name, begin, cursor,
                                "overlap" if begin < cursor else "hole"))
        cursor = end_
    if cursor != len(data):
        raise CheckError("tensors cover %d bytes of a %d-byte data section"
                         % (cursor, len(data)))
    return text, obj, data


def check_layout(image, text, obj):
    """The layout cudl's writer promises, beyond the format's rules."""
    (n,) = struct.unpack_from("<Q", image, 0)
    if n % 8 != 0:
        raise CheckError("header length %d is not a multiple of 8" % n)
    body = text.rstrip(" ")
    pad = len(text) - len(body)
    if pad >= 8:
        raise CheckError("%d bytes of padding (at most 7 expected)" % pad)
    if not body.endswith("}"):
        raise CheckError("header padding is not only spaces")
    compact = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if compact != body:
        raise CheckError("header is not compact JSON in canonical form:\n  %s\n"
                         "expected\n  %s" % (body[:200], compact[:200]))
    names = list(obj)
    if "__metadata__" in obj:
        if names[0] != "__metadata__":
            raise CheckError("__metadata__ is not the first key")
        keys = list(obj["__metadata__"])
        if keys != sorted(keys, key=utf8_key):
            raise CheckError("__metadata__ keys are not sorted: %r" % keys)
        names = names[1:]
    for name in names:
        if list(obj[name]) != ["dtype", "shape", "data_offsets"]:
            raise CheckError("entry %r keys in order %r" % (name, list(obj[name])))
    want = sorted(names, key=lambda nm: layout_key(nm, obj[nm]["dtype"]))
    if names != want:
        raise CheckError("tensors are in the order %r, expected %r" % (names, want))
    offsets = [obj[nm]["data_offsets"][0] for nm in names]
    if offsets != sorted(offsets):
        raise CheckError("header order is not data order")


def check_contents(obj, data):
    expected = expected_tensors()
    names = set(obj) - {"__metadata__"}
    if names != set(expected):
        raise CheckError("tensor names differ: missing %r, unexpected %r"
                         % (sorted(set(expected) - names), sorted(names - set(expected))))
    for name, (k, dtype, shape, blob) in expected.items():
        info = obj[name]
        if info["dtype"] != dtype:
            raise CheckError("%r: dtype %s, expected %s" % (name, info["dtype"], dtype))
        if info["shape"] != shape:
            raise CheckError("%r: shape %r, expected %r" % (name, info["shape"], shape))
        begin, end = info["data_offsets"]
        got = bytes(data[begin:end])
        if got != blob:
            first = next((j for j in range(min(len(got), len(blob)))
                          if got[j] != blob[j]), min(len(got), len(blob)))
            raise CheckError("%r: bytes differ from the formula at byte %d" % (name, first))
    if obj.get("__metadata__") != METADATA:
        raise CheckError("metadata %r, expected %r" % (obj.get("__metadata__"), METADATA))


def check_image(image, layout=True):
    text, obj, data = parse(image)
    if layout:
        check_layout(image, text, obj)
    check_contents(obj, data)


# -------------------------------------------------------------- commands ---

def cmd_write(path):
    with open(path, "wb") as f:
        f.write(build(order="table", ascii_json=True))
    return 0


def cmd_check(path):
    with open(path, "rb") as f:
        image = f.read()
    check_image(image, layout=True)
    print("%s: %d tensors and %d metadata pairs as expected"
          % (path, len(TENSORS), len(METADATA)))
    return 0


def _replace_once(image, old, new):
    if old not in image:
        raise AssertionError("selftest: %r is not in the image" % old)
    return image.replace(old, new, 1)


def _with_header(image, text):
    """image with its header bytes replaced (length updated, no padding added)."""
    (n,) = struct.unpack_from("<Q", image, 0)
    return struct.pack("<Q", len(text)) + text + image[8 + n:]


def _padded(text):
    return text + b" " * (-len(text) % 8)


def _rebuilt(image, obj, ascii_json=False):
    """image with the header rewritten from obj: compact JSON, padded to 8."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_json).encode("utf-8")
    return _with_header(image, _padded(text))


def cmd_selftest(directory):
    import os
    os.makedirs(directory, exist_ok=True)
    good = build(order="cudl", ascii_json=False)
    check_image(good)                           # the canonical image passes
    if _rebuilt(good, parse(good)[1]) != good:  # and _rebuilt reproduces it
        raise AssertionError("selftest: the canonical image does not rebuild")
    spec = build(order="table", ascii_json=True)
    check_image(spec, layout=False)             # the spec writer's file is valid
    (n,) = struct.unpack_from("<Q", good, 0)
    header = good[8:8 + n]
    body = header.rstrip(b" ")
    obj = parse(good)[1]

    def reordered(keys):
        return {k: obj[k] for k in keys}

    names = [k for k in obj if k != "__metadata__"]
    meta_last = reordered(names + ["__metadata__"])
    swapped = reordered(["__metadata__"] + names[1:2] + names[0:1] + names[2:])
    keys_moved = dict(obj)
    keys_moved[names[0]] = {"shape": obj[names[0]]["shape"], "dtype": obj[names[0]]["dtype"],
                            "data_offsets": obj[names[0]]["data_offsets"]}
    meta_unsorted = dict(obj)
    meta_unsorted["__metadata__"] = dict(reversed(list(obj["__metadata__"].items())))
    meta_extra = json.loads(json.dumps(obj))
    meta_extra["__metadata__"] = dict([("a_extra", "x")] + list(obj["__metadata__"].items()))
    damaged = {
        "a data byte flipped": good[:-3] + bytes([good[-3] ^ 1]) + good[-2:],
        "one byte appended": good + b"\0",
        "one byte cut": good[:-1],
        "cut in the header": good[:20],
        "cut in the length": good[:5],
        "length not a multiple of 8": _with_header(good, body + b" " * (-len(body) % 8 + 1)),
        "8 or more spaces of padding": _with_header(good, body + b" " * (-len(body) % 8 + 8)),
        "padding with NUL": _with_header(good, body + b"\0" * (-len(body) % 8 or 8)),
        "invalid UTF-8": _with_header(good, body[:-1] + b"\xff}" + b" " * (-len(body) % 8)),
        "space after a colon": _with_header(good, _padded(_replace_once(body, b'":{', b'": {'))),
        "metadata last": _rebuilt(good, meta_last),
        "tensor order swapped": _rebuilt(good, swapped),
        "entry keys reordered": _rebuilt(good, keys_moved),
        "metadata keys unsorted": _rebuilt(good, meta_unsorted),
        "metadata with an extra key": _rebuilt(good, meta_extra),
        "ASCII-escaped JSON": _rebuilt(good, obj, ascii_json=True),
        "a dtype changed": _replace_once(good, b'"dtype":"BF16"', b'"dtype":"F16 "'),
        "a shape changed": _replace_once(good, b'"shape":[2,3,3,3]', b'"shape":[3,2,3,3]'),
        "a name changed": _replace_once(good, b'"conv1.bias"', b'"conv1.bIas"'),
        "a duplicate key": _with_header(good, body[:-1] + b',"empty":{"dtype":"F32",'
                                        b'"shape":[0],"data_offsets":[0,0]}}'),
        "a float offset": _replace_once(good, b'"data_offsets":[0,', b'"data_offsets":[0.0,'),
        "table order": build(order="table", ascii_json=False),
        "element-size order (F16 before BF16)": build(order="size", ascii_json=False),
        "metadata value changed": _replace_once(good, b"cudl-interop-v1", b"cudl-interop-v2"),
    }
    failures = 0
    for what, image in damaged.items():
        try:
            check_image(image)
        except CheckError as e:
            print("ok: %s -> %s" % (what, str(e).splitlines()[0]))
            continue
        print("FAIL: the checker accepted a damaged file (%s)" % what)
        failures += 1
    with open(os.path.join(directory, "canonical.safetensors"), "wb") as f:
        f.write(good)
    return 1 if failures else 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("write", "check", "selftest"):
        sys.stderr.write(__doc__.split("\n\n")[2] + "\n")
        return 2
    try:
        return {"write": cmd_write, "check": cmd_check,
                "selftest": cmd_selftest}[argv[1]](argv[2])
    except CheckError as e:
        sys.stderr.write("%s: %s\n" % (argv[2], e))
        return 1
    except OSError as e:
        sys.stderr.write("%s: %s\n" % (argv[2], e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
