#!/usr/bin/env bash
# Vendor three.js (MIT) into web/vendor/three/ for the camera path editor: the pack never loads anything from
# the network at run time, and ComfyUI serves web/ as it is. Run once per three.js update; the result is committed.
#   bash scripts/vendor_three.sh [version]
set -euo pipefail
version=${1:-0.170.0}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "three@$version" >/dev/null && tar xzf "three-$version.tgz")
out="$repo/web/vendor/three"
mkdir -p "$out"
cp "$work/package/build/three.module.min.js" "$out/"
cp "$work/package/LICENSE" "$out/LICENSE"
# The controls import the bare name 'three', which a browser resolves only through an import map: point it at the file.
sed "s#from 'three';#from './three.module.min.js';#" "$work/package/examples/jsm/controls/OrbitControls.js" > "$out/OrbitControls.js"
echo "three.js $version" > "$out/VERSION"
echo "vendored three.js $version into ${out#$repo/}"
