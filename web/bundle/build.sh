#!/usr/bin/env bash
# Rebuilds api/ui/vendor/scuttlebutt.js, npm scuttlebutt (pinned in
# package.json, the version interop/ tests against) bundled for the browser
# with browserify (which supplies Node's events, util, stream and process).
# Needs node and npm; the output is committed, so nobody else runs this.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund >/dev/null
out=../../api/ui/vendor/scuttlebutt.js
{
  echo "/* npm scuttlebutt@$(node -p "require('scuttlebutt/package.json').version") bundled by web/bundle/build.sh (browserify $(node -p "require('browserify/package.json').version")); MIT licensed, see its package. */"
  npx --no-install browserify entry.js
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -c <"$out") bytes)"
