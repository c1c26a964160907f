#!/usr/bin/env bash
# Back up one CLEAR installation: the PostgreSQL database and the media folder.
#
#   platform/backup/backup.sh DEST_DIR      (DATABASE_URL and CLEAR_MEDIA_ROOT from the environment)
#
# Writes DEST_DIR/clear-backup-<UTC time>/ with
#   database.dump   pg_dump custom format (no owners, no grants: restorable under any role)
#   media.tar       every file below CLEAR_MEDIA_ROOT except unfinished .tmp-* files
#   media.sha256    sha256sum lines of those files, relative to the media folder (checked on restore)
#   SHA256SUMS      sha256sum lines of the three files above
#   info.txt        when, from which pg_dump, how many media files
# The folder is built under a .partial- name and renamed when complete: a folder named
# clear-backup-* is always a whole backup. The database is dumped first: media files are written
# before the rows that name them and never changed afterwards, so every file the dump refers to is
# already in the media folder when it is archived.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

dest=${1:?usage: platform/backup/backup.sh DEST_DIR}
db_url=$(libpq_url)
media=$(media_root)
[[ -d $media ]] || die "the media folder CLEAR_MEDIA_ROOT does not exist"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dest"
work=$(mktemp -d "$dest/.partial-clear-backup-$stamp.XXXXXX")
trap 'rm -rf "$work"' EXIT

pg_dump --format=custom --no-owner --no-privileges --dbname="$db_url" --file="$work/database.dump"

# One list of files for the manifest and the archive, so that both describe the same files.
(cd "$media" && find . -type f ! -name '.tmp-*' -print0 | LC_ALL=C sort -z) >"$work/media.list"
(cd "$media" && xargs -0 --no-run-if-empty sha256sum --) <"$work/media.list" >"$work/media.sha256"
tar --create --file="$work/media.tar" --directory="$media" --numeric-owner --no-recursion \
  --null --files-from="$work/media.list"
count=$(tr -cd '\0' <"$work/media.list" | wc -c)
rm "$work/media.list"

(cd "$work" && sha256sum database.dump media.tar media.sha256 >SHA256SUMS)
{
  echo "created: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "pg_dump: $(pg_dump --version)"
  echo "media files: $count"
} >"$work/info.txt"

final="$dest/clear-backup-$stamp"
[[ ! -e $final ]] || die "$final already exists"
mv "$work" "$final"
trap - EXIT
echo "backup written to $final ($count media files)"
