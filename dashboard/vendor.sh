#!/usr/bin/env bash
# Refresh the vendored charting library from package-lock.json: npm ci into
# dashboard/node_modules (ignored), then copy the minified files uPlot ships,
# with its licence, under static/vendor, where go:embed takes them. Run it
# after changing the version in package.json (npm install --save-exact
# uplot@X), and commit static/vendor with the lockfile.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
mkdir -p static/vendor
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css static/vendor/
cp node_modules/uplot/LICENSE static/vendor/uPlot.LICENSE
echo "static/vendor: uPlot $(node -p 'require("./node_modules/uplot/package.json").version')"
