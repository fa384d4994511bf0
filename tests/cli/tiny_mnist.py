"""Write a tiny MNIST-format dataset for the CLI tests.

    tiny_mnist.py DIR TRAIN TEST SIZE

TRAIN and TEST images of SIZE x SIZE (gzip IDX images, raw IDX labels),
three classes told apart by brightness, so that a small net learns them.
"""
import gzip
import struct
import sys

directory, counts, size = sys.argv[1], (int(sys.argv[2]), int(sys.argv[3])), int(sys.argv[4])
for split, n in zip(("train", "t10k"), counts):
    labels = bytes(i % 3 for i in range(n))
    pixels = bytes((labels[i] * 90 + (i * 7 + j * 13) % 40) % 256
                   for i in range(n) for j in range(size * size))
    with gzip.open(f"{directory}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, size, size) + pixels)
    with open(f"{directory}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
