#!/usr/bin/env bash
# Open a Snakemake HTML report in headless Chromium: save a screenshot and the DOM after
# the report's JavaScript has run, so a person (or a test) can check that it renders.
#   tools/report_screenshot.sh results/report.html results/report_screenshot.png
# Needs Debian's chromium (apt-get install chromium). The flags keep Chromium from
# reaching for the network (the report is self-contained) and let it run as root.
set -euo pipefail
report=$(realpath "$1")
png=${2:-${1%.html}_screenshot.png}
dom=${png%.png}.dom.html
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "no chromium on PATH (Debian: apt-get install chromium)" >&2
    exit 3
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$profile" --window-size=1400,1000
       --virtual-time-budget=20000 --hide-scrollbars)
"$browser" "${flags[@]}" --screenshot="$(realpath -m "$png")" "file://$report" 2>/dev/null
"$browser" "${flags[@]}" --dump-dom "file://$report" 2>/dev/null > "$dom"
echo "$png"
echo "$dom"
