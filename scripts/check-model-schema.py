#!/usr/bin/env python3
"""Check docs/model-file.schema.json against the model files cudl writes.

    scripts/check-model-schema.py SCHEMA FILE_OR_DIR...

Every *.json given (directly or in a directory) must be valid under the
schema, and the schema must reject a few files cudl rejects (a misspelt
key, an unknown kind, a conv2d without a name, a string where a number
goes), so that a schema that accepts everything fails here too. Exit
status 77 (a skip for ctest) when the jsonschema module (Debian:
python3-jsonschema) is missing.
"""
import json
import pathlib
import sys

try:
    import jsonschema
except ImportError:
    print("check-model-schema: python3-jsonschema is not installed; skipped")
    sys.exit(77)

REJECTED = [
    {"input_shape": [4], "layers": [{"kind": "relu"}], "loss": "hinge"},
    {"input_shape": [4], "layers": [{"kind": "relu", "alpha": 0.1}]},
    {"input_shape": [4], "layers": [{"kind": "conv"}]},
    {"input_shape": [1, 8, 8],
     "layers": [{"kind": "conv2d", "out_channels": 2, "kernel_size": 3}]},
    {"input_shape": [1, 8, 8],
     "layers": [{"kind": "conv2d", "name": "c", "out_channels": 2,
                 "kernal_size": 3}]},
    {"input_shape": [1, 8, 8],
     "layers": [{"kind": "dropout", "p": "0.5"}]},
    {"input_shape": [4], "layers": []},
    {"input_shape": [4], "layer": [{"kind": "relu"}]},
]


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schema = json.loads(pathlib.Path(argv[1]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = []
    for arg in argv[2:]:
        path = pathlib.Path(arg)
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    failed = 0
    for path in files:
        errors = list(validator.iter_errors(json.loads(path.read_text())))
        if errors:
            failed += 1
            print(f"{path}: not valid under the schema: {errors[0].message[:300]}")
    for doc in REJECTED:
        if validator.is_valid(doc):
            failed += 1
            print(f"the schema accepts what cudl rejects: {json.dumps(doc)}")
    print(f"check-model-schema: {len(files)} files valid, {len(REJECTED)} bad "
          f"documents rejected" if not failed else f"check-model-schema: {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
