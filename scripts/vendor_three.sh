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
# Without the line that registers this copy as window.__THREE__: ComfyUI's frontend bundles its own three.js (which
# extensions cannot use) and registers it first, so ours would warn "Multiple instances of Three.js being imported"
# (see web/recapture_camera_editor.js). The two copies never share an object.
sed 's#,"undefined"!=typeof window&&(window.__THREE__?console.warn("WARNING: Multiple instances of Three.js being imported."):window.__THREE__=t);#;#' \
  "$work/package/build/three.module.min.js" > "$out/three.module.min.js"
if grep -q __THREE__ "$out/three.module.min.js"; then echo "three.module.min.js: the __THREE__ registration was not removed" >&2; exit 1; fi
cp "$work/package/LICENSE" "$out/LICENSE"
# The controls import the bare name 'three', which a browser resolves only through an import map: point it at the file.
sed "s#from 'three';#from './three.module.min.js';#" "$work/package/examples/jsm/controls/OrbitControls.js" > "$out/OrbitControls.js"
echo "three.js $version (build/three.module.min.js without its window.__THREE__ registration)" > "$out/VERSION"
echo "vendored three.js $version into ${out#$repo/}"
