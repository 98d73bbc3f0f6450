#!/bin/sh
# Install the Debian packages Shoebox needs, only those that are missing.
# Usage: scripts/install-deps.sh [build|test|bench]
#   build: compile and run the server
#   test:  build + what the test suite needs (PostgreSQL, Chromium, curl)
#   bench: test + the peers the benchmarks compare against
set -eu

build="meson ninja-build pkg-config gcc clang libmicrohttpd-dev libvips-dev libexif-dev
libraw-dev libjpeg62-turbo-dev libsqlite3-dev libsodium-dev libjansson-dev libpq-dev libssl-dev check python3"
test_extra="postgresql chromium chromium-driver curl libclang-rt-14-dev libvips-tools"
bench_extra="libvips-tools python3-pil wrk imagemagick libimage-exiftool-perl"

want=$build
case "${1:-build}" in
build) ;;
test) want="$build $test_extra" ;;
bench) want="$build $test_extra $bench_extra" ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js may come from Debian or from NodeSource (which bundles npm): ask for it only when absent.
if [ "${1:-build}" != build ] && ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0

echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
