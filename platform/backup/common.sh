# Shared by backup.sh and restore.sh (sourced, not run).

die() { echo "error: $*" >&2; exit 1; }

# The database URL as libpq takes it: postgres:// or postgresql:// without django-environ's query
# options (libpq refuses unknown ones such as conn_max_age).
libpq_url() {
  local url=${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database (postgres://user:pw@host:port/name)}
  case $url in
    postgres://* | postgresql://*) ;;
    *) die "DATABASE_URL must be a PostgreSQL URL (postgres://...); the SQLite demo is backed up by copying its file" ;;
  esac
  printf '%s\n' "${url%%\?*}"
}

media_root() {
  printf '%s\n' "${CLEAR_MEDIA_ROOT:?set CLEAR_MEDIA_ROOT to the media folder}"
}
