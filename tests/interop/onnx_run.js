// The ONNX files of onnx_cases in ONNX Runtime (onnxruntime-node), against
// cudl's outputs (onnx-interop.sh).
//
// usage: node onnx_run.js DIR
//
// For every case of DIR/manifest.txt: run DIR/<case>.onnx on its input in
// batches and compare "output" with DIR/<case>.out.f32, value by value,
// within |ort - cudl| <= ATOL + RTOL * |cudl| (float32 tolerance: the two
// engines sum convolutions and products in different orders, and
// erf/exp differ in the last bits; 1e-4 is far above that and far below
// any mapping mistake). For classifiers (cross-entropy), the predicted
// classes (the argmax) must be the same for every row. "probabilities",
// where present, must be the softmax (sigmoid) of cudl's output.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const ATOL = 1e-4;
const RTOL = 1e-4;
const BATCH = 500;

function readFloats(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

function argmax(values, offset, count) {
  let best = 0;
  for (let k = 1; k < count; ++k)
    if (values[offset + k] > values[offset + best]) best = k;
  return best;
}

function expected(kind, y, row, k, count) {
  if (kind === 'bce') return 1 / (1 + Math.exp(-y[row * count + k]));
  let max = -Infinity, sum = 0;
  for (let j = 0; j < count; ++j) max = Math.max(max, y[row * count + j]);
  for (let j = 0; j < count; ++j) sum += Math.exp(y[row * count + j] - max);
  return Math.exp(y[row * count + k] - max) / sum;
}

async function runCase(dir, fields) {
  const [name, rowsText, inText, outText, loss, probText, inputFile] = fields;
  const inShape = inText.split('x').map(Number);
  const rows = Number(rowsText), outNumel = Number(outText);
  const inNumel = inShape.reduce((a, b) => a * b, 1);
  const x = readFloats(path.join(dir, inputFile));
  const y = readFloats(path.join(dir, name + '.out.f32'));
  if (x.length < rows * inNumel || y.length !== rows * outNumel)
    throw new Error(`${name}: input or output file of the wrong size`);
  const session = await ort.InferenceSession.create(path.join(dir, name + '.onnx'),
                                                    {intraOpNumThreads: 2});
  // worst: the largest excess over the tolerance (0: none beyond it).
  let maxErr = 0, worst = 0, worstAt = -1, classMismatches = 0, probWorst = 0;
  const seen = new Set();
  for (let start = 0; start < rows; start += BATCH) {
    const n = Math.min(BATCH, rows - start);
    const input = new ort.Tensor('float32', x.slice(start * inNumel, (start + n) * inNumel),
                                 [n].concat(inShape));
    const result = await session.run({input});
    const out = result.output.data;
    if (out.length !== n * outNumel) throw new Error(`${name}: output has ${out.length} values`);
    for (let i = 0; i < n * outNumel; ++i) {
      const ref = y[start * outNumel + i];
      maxErr = Math.max(maxErr, Math.abs(out[i] - ref));
      const excess = Math.abs(out[i] - ref) - (ATOL + RTOL * Math.abs(ref));
      // NaN compares false: a NaN from either side is a failure.
      if (!(excess <= worst)) { worst = Number.isNaN(excess) ? Infinity : excess; worstAt = start * outNumel + i; }
    }
    if (loss === 'ce') {
      for (let r = 0; r < n; ++r) {
        const a = argmax(out, r * outNumel, outNumel);
        const b = argmax(y, (start + r) * outNumel, outNumel);
        seen.add(b);
        if (a !== b) ++classMismatches;
      }
    }
    if (probText === '1') {
      const p = result.probabilities.data;
      for (let r = 0; r < n; ++r)
        for (let k = 0; k < outNumel; ++k) {
          const e = expected(loss, y, start + r, k, outNumel);
          probWorst = Math.max(probWorst, Math.abs(p[r * outNumel + k] - e));
        }
    }
  }
  const problems = [];
  if (worstAt >= 0)
    problems.push(`output[${worstAt}] is ${worst} beyond ${ATOL} + ${RTOL}|cudl| ` +
                  `from cudl's ${y[worstAt]}`);
  if (classMismatches > 0) problems.push(`${classMismatches} of ${rows} classes differ`);
  if (!(probWorst <= ATOL)) problems.push(`probabilities differ by ${probWorst}`);
  const classes = loss === 'ce' ? `, classes equal on all ${rows} rows (${seen.size} distinct)` : '';
  if (problems.length > 0) throw new Error(`${name}: ${problems.join('; ')}`);
  console.log(`onnx_run: ${name}: ${rows}x${outNumel} outputs within ${ATOL} + ${RTOL}|cudl| ` +
              `(largest difference ${maxErr.toExponential(2)})${classes}`);
  return seen.size;
}

async function main() {
  const dir = process.argv[2];
  const minDistinct = Number(process.argv[3] || 0);
  const lines = fs.readFileSync(path.join(dir, 'manifest.txt'), 'utf8').split('\n')
    .filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error('no cases');
  for (const line of lines) {
    const distinct = await runCase(dir, line.split(' '));
    if (distinct < minDistinct)
      throw new Error(`${line.split(' ')[0]}: cudl predicted only ${distinct} distinct classes; ` +
                      `a network that always answers alike would agree by chance`);
  }
  console.log(`onnx_run: ${lines.length} models agree with cudl in ONNX Runtime ${ort.env.versions ? ort.env.versions.common : ''}`);
}

main().catch((e) => { console.error('onnx_run: ' + e.message); process.exit(1); });
