#!/bin/sh
# make bench: every benchmark, each printing its own figures (results under build/bench/).
set -eu
cd "$(dirname "$0")/.."
python3 bench/ingest.py
# Phone photos: HEIC grids against vipsthumbnail (issue 13, build/bench/heic.json).
python3 bench/heic.py
if [ -f bench/progress.py ]; then python3 bench/progress.py; fi
if [ -f bench/tus.py ]; then python3 bench/tus.py; fi
# one 1,000-photo upload at default settings against --batch-delay 0 (issue 13)
python3 bench/batchdelay.py
# PostgreSQL next to SQLite (issue 9): its own PostgreSQL, fsync on (build/bench/pg.json).
python3 bench/pg.py
# A library of 100,000 photos against an empty one (issue 13, build/bench/library.json).
python3 bench/library.py
# Worker hosts at a quarter core each, 1/2/4 on one PostgreSQL; --s3: S3 against a directory (issue 10).
python3 bench/scaleout.py --s3
