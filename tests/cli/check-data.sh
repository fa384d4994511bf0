#!/usr/bin/env bash
# `cudl data check`: the summary of a folder of images (make_images folder
# writes one: train/ and test/ of three classes, gray PNGs and RGB JPEGs,
# with a truncated, a corrupt and a non-image file in train/), its exit
# statuses (0 readable, 1 nothing readable or --strict with unreadable
# files, 2 a wrong command line), and one error line for each failure.
# usage: check-data.sh CUDL_BINARY MAKE_IMAGES_BINARY SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cli/lib.sh
. "$here/lib.sh"
begin "$1" "$3"
make_images=$2
folder="$area/photos"
"$make_images" folder "$folder"
expect "make_images writes the folder" 0 $?
out="$scratch/check.out"

"$cudl" data check "$folder" >"$out" 2>"$scratch/check.err"
expect "data check of a folder with bad files" 0 $?
cat "$out"
expect_grep "the layout" "^layout: splits, .*/train (no val: --val-split makes one), test" "$out"
expect_grep "train counts" "^  18 images in 3 classes, 3 unreadable" "$out"
expect_grep "test counts" "^  9 images in 3 classes, 0 unreadable" "$out"
expect_grep "a class and its count" "^ *6  circle$" "$out"
expect_grep "sizes" "smallest 8 x 8, largest 8 x 8, most common 8 x 8 (18 images)" "$out"
expect_grep "channels and formats" "channels: 12 gray, 6 colour; formats: 12 PNG, 6 JPEG" "$out"
expect_grep "the decoded size (18 images and 3 unreadable files x 3 x 8 x 8)" "decoded: 3.9 KiB at 3 x 8 x 8, within the default cache limit of .* (training holds it in memory; --cache-limit)" "$out"
expect_grep "the corrupt file and why" "unreadable: .*/train/circle/corrupt.png: PNG: IDAT" "$out"
expect_grep "the truncated file and why" "unreadable: .*/train/circle/truncated.png: PNG: .*ends" "$out"
expect_grep "the text file and why" "unreadable: .*/train/square/notes.txt: not a PNG or JPEG image" "$out"
expect "nothing on stderr" 0 "$(wc -c <"$scratch/check.err")"

# One tree of classes (split later by --val-split).
"$cudl" data check "$folder/test" >"$out" 2>&1
expect "data check of one tree" 0 $?
expect_grep "one tree" "^layout: one tree of classes" "$out"

expect_error "--strict with unreadable files" 1 \
  "--strict: 3 unreadable files, the first '.*/circle/corrupt.png'" \
  data check "$folder" --strict
mkdir -p "$area/empty/a" "$area/junk/a"
printf 'x' >"$area/junk/a/x.png"
expect_error "nothing readable" 1 "no readable image in" data check "$area/junk"
expect_error "no class directories" 1 "no class subdirectories" data check "$area/empty/a"
expect_error "a folder that is not there" 1 "cannot list" data check "$area/missing"
expect_error "no folder" 2 "which folder" data check
expect_error "two folders" 2 "one PATH" data check "$folder" "$folder"
expect_error "an unknown option" 2 "unknown option '--fast'" data check "$folder" --fast
expect_error "an unknown subcommand" 2 "the one subcommand is check" data list "$folder"
"$cudl" data check --help >"$out" 2>&1
expect "data check --help" 0 $?
expect_grep "the help says the usage" "usage: cudl data check PATH" "$out"
finish
