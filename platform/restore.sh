#!/usr/bin/env bash
# Restore a backup made by platform/backup.sh into an empty database and media folder.
# Usage: platform/restore.sh BACKUP_DIR   (DATABASE_URL and CLEAR_MEDIA_ROOT from the environment)
set -euo pipefail
src=${1:?usage: platform/restore.sh BACKUP_DIR}
pg_restore --no-owner --exit-on-error --dbname="${DATABASE_URL:?set DATABASE_URL}" "$src/clear.dump"
mkdir -p "${CLEAR_MEDIA_ROOT:?set CLEAR_MEDIA_ROOT}"
rsync -a "$src/media/" "$CLEAR_MEDIA_ROOT/"
echo "restored from $src"
