#!/bin/sh
# Install the Debian packages Shoebox needs, only those that are missing.
# Usage: scripts/install-deps.sh [build|test|bench|fuzz]
#   build: compile and run the server
#   test:  build + what the test suite needs (Chromium and Node.js for the browser
#          tests, the vips command line that makes test images, curl, and Debian's
#          PostgreSQL 15 server, which tests/pgserver.py starts throwaway copies of,
#          Ceph's monitor, OSD and RADOS Gateway, the S3 server tests/rgwserver.py starts,
#          and promtool from prometheus, which checks the /metrics text)
#   bench: test + the peers the benchmarks compare against
#   fuzz:  test + clang's libFuzzer runtime
set -eu

build="meson ninja-build pkg-config gcc libmicrohttpd-dev libvips-dev libexif-dev libraw-dev
libjpeg62-turbo-dev libavcodec-dev libheif-dev libsqlite3-dev libsodium-dev libjansson-dev libssl-dev libpq-dev check python3
libcurl4-openssl-dev libxml2-dev"
test_extra="chromium curl libvips-tools postgresql prometheus ceph-mon ceph-osd radosgw ceph-common"
fuzz_extra="clang libclang-rt-14-dev"
bench_extra="libvips-tools python3-pil wrk imagemagick libimage-exiftool-perl"

want=$build
case "${1:-build}" in
build) ;;
test) want="$build $test_extra" ;;
bench) want="$build $test_extra $bench_extra" ;;
fuzz) want="$build $test_extra $fuzz_extra" ;;
*) echo "usage: $0 [build|test|bench|fuzz]" >&2; exit 2 ;;
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
# The postgresql package would create (and, where services may start, run) a default
# cluster 15/main on port 5432. The tests never use it (tests/pgserver.py starts its own
# servers), so ask postgresql-common not to create it: its postinst reads
# createcluster.conf, which includes createcluster.d/. Without a cluster, the package's
# "start" step has nothing to start and cannot fail (port 5432 taken, no systemd, ...).
case " $missing " in
*" postgresql "*)
    if [ ! -d /etc/postgresql/15 ]; then
        $SUDO mkdir -p /etc/postgresql-common/createcluster.d
        echo "create_main_cluster = false  # Shoebox: tests start their own servers" |
            $SUDO tee /etc/postgresql-common/createcluster.d/shoebox-no-main-cluster.conf >/dev/null
    fi ;;
esac
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
