"""The ONNX checker on the files of onnx_cases (onnx-interop.sh).

usage: onnx_check.py DIR [KEY=VALUE ...]

For every case of DIR/manifest.txt: onnx.checker.check_model with
full_check (the schema of every operator at the file's opset, and shape
inference through the graph), then what cudl promises about the file
(docs/deploy.md): IR version 8, the default opset 17 and nothing else,
producer "cudl", the input "input" and output "output" with a free batch
dimension "N" and the per-sample sizes of the manifest, "probabilities"
when asked for, initializers f32 or int64 in raw data, and the metadata
cudl writes (cudl.version, cudl.architecture). KEY=VALUE pairs are
metadata every file must also hold. Runs under /usr/bin/python3, whose
onnx module is Debian's python3-onnx.
"""
import json
import math
import os
import sys

import onnx
from onnx import TensorProto


def fail(case, message):
    sys.exit("onnx_check: %s: %s" % (case, message))


def per_sample(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return dims[0].dim_param, [d.dim_value for d in dims[1:]]


def check(path, case, in_numel, out_numel, probabilities, required):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    if model.ir_version != 8:
        fail(case, "IR version %d, not 8" % model.ir_version)
    opsets = [(o.domain, o.version) for o in model.opset_import]
    if opsets != [("", 17)]:
        fail(case, "opset imports %r, not the default domain at 17" % opsets)
    if model.producer_name != "cudl":
        fail(case, "producer %r" % model.producer_name)
    graph = model.graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    want_outputs = ["output"] + (["probabilities"] if probabilities else [])
    if inputs != ["input"] or outputs != want_outputs:
        fail(case, "inputs %r, outputs %r" % (inputs, outputs))
    for value, numel in ((graph.input[0], in_numel), (graph.output[0], out_numel)):
        batch, dims = per_sample(value)
        if batch != "N" or math.prod(dims) != numel:
            fail(case, "%s is [%s, %r], not [N, %d values]"
                 % (value.name, batch, dims, numel))
    for t in graph.initializer:
        if t.data_type not in (TensorProto.FLOAT, TensorProto.INT64) or \
                not t.HasField("raw_data"):
            fail(case, "initializer %s is not raw f32/int64" % t.name)
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("cudl.version", "cudl.architecture"):
        if not meta.get(key):
            fail(case, "no metadata %s" % key)
    json.loads(meta["cudl.architecture"])
    for key, value in required.items():
        if meta.get(key) != value:
            fail(case, "metadata %s is %r, not %r" % (key, meta.get(key), value))


def main():
    directory = sys.argv[1]
    required = dict(arg.split("=", 1) for arg in sys.argv[2:])
    count = 0
    with open(os.path.join(directory, "manifest.txt")) as manifest:
        for line in manifest:
            case, _rows, in_shape, out_numel, _loss, probabilities, _ = line.split()
            in_numel = math.prod(int(d) for d in in_shape.split("x"))
            check(os.path.join(directory, case + ".onnx"), case, in_numel,
                  int(out_numel), probabilities == "1", required)
            count += 1
    if count == 0:
        sys.exit("onnx_check: no cases in %s" % directory)
    print("onnx_check: %d files pass the ONNX checker (full_check)" % count)


main()
