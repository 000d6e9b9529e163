#!/bin/sh
# Build redpipe.pyz: one file, pure-Python hash-pinned dependencies, byte-identical for
# every build of a commit. Needs only python3 (3.9+) with pip.  Usage: ./build.sh [OUTPUT]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/redpipe.pyz"}
exec python3 "$here/tools/mkpyz.py" --output "$out"
