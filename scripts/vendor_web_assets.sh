#!/usr/bin/env bash
# Refresh the JavaScript the website serves itself, so pages work offline: MathJax (math),
# RequireJS and the Jupyter widgets HTML manager (interactive figures). The files are
# committed under _assets/vendor/ (served as _static/vendor/); building the book needs neither npm nor a network.
# Run this only to change a version (needs npm and the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX=3.2.2
REQUIREJS=2.3.7
HTML_MANAGER=1.0.6   # the version myst-nb 1.x loads from a CDN by default
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$MATHJAX" "requirejs@$REQUIREJS" "@jupyter-widgets/html-manager@$HTML_MANAGER" >/dev/null)
for t in "$tmp"/*.tgz; do mkdir -p "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done
out=_assets/vendor
rm -rf "$out" && mkdir -p "$out/mathjax" "$out/html-manager"
cp "$tmp/mathjax-$MATHJAX/package/es5/tex-svg.js" "$out/mathjax/"
cp "$tmp/mathjax-$MATHJAX/package/LICENSE" "$out/mathjax/LICENSE"
cp "$tmp/requirejs-$REQUIREJS/package/require.js" "$out/require.js"
head -c 0 /dev/null  # requirejs ships its MIT license in the header of require.js
hm="$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package"
cp "$hm/dist/embed-amd.js" "$hm/dist/"*.woff2 "$hm/dist/"*.woff "$out/html-manager/"
cp "$hm/LICENSE" "$out/html-manager/LICENSE" 2>/dev/null || cp "$hm/dist/embed.js.LICENSE.txt" "$out/html-manager/LICENSE"
cat > "$out/VERSIONS" <<VERSIONS
mathjax $MATHJAX (Apache-2.0): es5/tex-svg.js
requirejs $REQUIREJS (MIT): require.js
@jupyter-widgets/html-manager $HTML_MANAGER (BSD-3-Clause): dist/embed-amd.js and its web fonts
VERSIONS
du -sh "$out"
