#!/bin/sh
# test_promtool.sh SAMPLE - renders a sample metrics registry with the SAMPLE program and
# checks it with `promtool check metrics` (format and lint: HELP present, counter names,
# units...). promtool comes from the Debian package `prometheus`; to get it without the
# daemon: `apt-get download prometheus && dpkg -x prometheus_*.deb DIR` (DIR/usr/bin/promtool).
# It is looked for in $PROMTOOL, then PATH, then /usr/local/lib/promtool/usr/bin.
# Exits 77 (reported by ctest as skipped) when promtool is not found: never a silent pass.
set -u
sample=${1:?usage: test_promtool.sh SAMPLE_PROGRAM}

tool=${PROMTOOL:-}
if [ -z "$tool" ]; then
    tool=$(command -v promtool 2>/dev/null || true)
fi
if [ -z "$tool" ] && [ -x /usr/local/lib/promtool/usr/bin/promtool ]; then
    tool=/usr/local/lib/promtool/usr/bin/promtool
fi
if [ -z "$tool" ] || [ ! -x "$tool" ]; then
    echo "SKIP: promtool not found (set PROMTOOL, or install Debian's prometheus package;" \
        "see the comment at the top of $0)"
    exit 77
fi

out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
if ! "$sample" >"$out"; then
    echo "FAIL: $sample did not render"
    exit 1
fi
# promtool prints lint problems and exits non-zero for them as well as for parse errors.
if ! problems=$("$tool" check metrics <"$out" 2>&1); then
    echo "FAIL: promtool check metrics:"
    echo "$problems"
    echo "--- exposition:"
    cat "$out"
    exit 1
fi
echo "ok: promtool ($("$tool" --version 2>&1 | head -n 1)) accepts $(grep -c -v '^#' "$out") samples"
exit 0
