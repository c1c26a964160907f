#!/usr/bin/env bash
# Back up one CLEAR installation: a PostgreSQL dump plus the content-addressed media folder.
# Usage: platform/backup.sh DEST_DIR   (DATABASE_URL and CLEAR_MEDIA_ROOT from the environment)
set -euo pipefail
dest=${1:?usage: platform/backup.sh DEST_DIR}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dest/$stamp"
pg_dump --format=custom --no-owner --dbname="${DATABASE_URL:?set DATABASE_URL}" --file="$dest/$stamp/clear.dump"
# Media files are immutable and named by their sha256, so an rsync is an incremental, consistent copy.
rsync -a "${CLEAR_MEDIA_ROOT:?set CLEAR_MEDIA_ROOT}/" "$dest/$stamp/media/"
echo "backup written to $dest/$stamp"
