#!/usr/bin/env bash
# Restore a backup made by platform/backup/backup.sh.
#
#   platform/backup/restore.sh [--force] BACKUP_DIR   (DATABASE_URL and CLEAR_MEDIA_ROOT from the environment)
#
# Checks every checksum of the backup before touching anything, then restores the database in one
# transaction and unpacks the media, and checks every media file against media.sha256.
# It refuses a database that already has tables, or a media folder that already has files, unless
# --force is given: then the backup's tables are dropped and recreated (pg_restore --clean) and its
# media files are written over the folder (files of the same name have the same content; other
# files are left alone).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

force=0
if [[ ${1:-} == --force ]]; then force=1; shift; fi
src=${1:?usage: platform/backup/restore.sh [--force] BACKUP_DIR}
db_url=$(libpq_url)
media=$(media_root)

for file in SHA256SUMS database.dump media.tar media.sha256; do
  [[ -f $src/$file ]] || die "$src is not a CLEAR backup: $file is missing"
done
(cd "$src" && sha256sum --quiet --strict --check SHA256SUMS) || die "the backup in $src is damaged (checksums differ)"

tables=$(psql --dbname="$db_url" --no-psqlrc --tuples-only --no-align --set=ON_ERROR_STOP=1 --command \
  "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
if [[ $tables != 0 && $force != 1 ]]; then
  die "the database already has $tables tables; restore into an empty database, or give --force to replace them"
fi
if [[ -d $media && -n $(find "$media" -mindepth 1 -print -quit) && $force != 1 ]]; then
  die "the media folder is not empty; restore into an empty folder, or give --force to write over it"
fi

clean=()
[[ $force == 1 ]] && clean=(--clean --if-exists)
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction "${clean[@]}" \
  --dbname="$db_url" "$src/database.dump"

mkdir -p "$media"
tar --extract --file="$src/media.tar" --directory="$media" --no-same-owner
if [[ -s $src/media.sha256 ]]; then  # (an empty manifest is an empty media folder: nothing to check)
  (cd "$media" && sha256sum --quiet --strict --check "$(cd "$src" && pwd)/media.sha256") \
    || die "media files differ from the backup's manifest after unpacking"
fi
echo "restored $src: database and $(grep -c '' "$src/media.sha256") media files"
