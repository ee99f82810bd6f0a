#!/usr/bin/env bash
# Builds the Docker image workrs/python:3 without any registry: a minimal Debian root
# filesystem with python3, made by mmdebstrap from the Debian mirror this system already
# uses, then `docker import`ed. Jobs run Python scripts in it:
#   workrs submit --image workrs/python:3 --file job.py -- python3 job.py
# Idempotent: when the image exists and carries this script's recipe label, it does
# nothing (≈ 0.1 s). Run by `make setup` and `make images`. Facts: docs/host.md.
set -euo pipefail

IMAGE="${WORKRS_PYTHON_IMAGE:-workrs/python:3}"
# Downloaded .debs are kept here, so a rebuild (a new recipe) downloads only what changed.
CACHE_DIR="${WORKRS_DEB_CACHE:-/var/cache/workrs/mmdebstrap}"
APT_LOCK=(-o DPkg::Lock::Timeout=900)
# mmdebstrap's whole output, kept after the build for when it fails.
LOG="${WORKRS_PYTHON_IMAGE_LOG:-/var/log/workrs-python-image.log}"
# The image is rebuilt whenever this file changes: its hash is the recipe, kept as a
# label, so an edited package list or import option can never leave a stale image.
RECIPE_LABEL=workrs.recipe
RECIPE="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
export DEBIAN_FRONTEND=noninteractive

started=$(date +%s%N)
say() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: FAILED: %s\n' "$*" >&2; exit 1; }
seconds() { awk -v ns="$(( $(date +%s%N) - started ))" 'BEGIN { printf "%.1f", ns / 1e9 }'; }

require_host() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap installs into a chroot); run: sudo make images"
  timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "no Docker engine answers; run: make setup"
}

image_is_current() {
  local have
  have=$(docker image inspect --format "{{ index .Config.Labels \"$RECIPE_LABEL\" }}" "$IMAGE" 2>/dev/null) || return 1
  [ "$have" = "$RECIPE" ]
}

# mmdebstrap rather than debootstrap: it resolves and downloads with apt (several
# mirrors at once, so the updates and security suites too), takes dpkg path filters so
# docs never land in the tree, and has hooks to keep the .debs. It is a Debian package.
ensure_mmdebstrap() {
  if command -v mmdebstrap >/dev/null 2>&1; then return; fi
  say "installing mmdebstrap from Debian"
  apt-get "${APT_LOCK[@]}" update -qq || die "apt-get update failed (is Debian's mirror reachable?)"
  apt-get "${APT_LOCK[@]}" install -y -qq --no-install-recommends mmdebstrap >/dev/null \
    || die "apt-get install mmdebstrap failed"
}

# The apt lines for the image, from the mirrors this system already uses (deb822
# `.sources` files or one-line sources.list): the release and its updates from the
# main mirror, security updates from the security mirror when one is configured.
# Only the Debian mirror is reachable from these machines, never a default one.
# Sets SUITE and SOURCES.
find_sources() {
  SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$SUITE" ] || die "cannot read the Debian release name (VERSION_CODENAME) from /etc/os-release"
  local uris mirror security
  uris=$(
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }'
    { cat /etc/apt/sources.list 2>/dev/null || true; } | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }'
  )
  # Only Debian's own archives: other configured repositories (e.g. nodesource) do not
  # carry this suite.
  mirror=$(grep -E '/debian/?$' <<<"$uris" | head -n1 || true)
  security=$(grep -E '/debian-security/?$' <<<"$uris" | head -n1 || true)
  [ -n "$mirror" ] || die "cannot find a Debian mirror in /etc/apt/sources.list{,.d}"
  SOURCES=("deb $mirror $SUITE main" "deb $mirror $SUITE-updates main")
  [ -z "$security" ] || SOURCES+=("deb $security $SUITE-security main")
}

build_rootfs() {
  local rootfs="$1"
  find_sources
  say "building a Debian $SUITE root filesystem with python3 from ${SOURCES[0]#deb } (log: $LOG)"
  # --variant=essential: only the Essential:yes set (a shell, coreutils, dpkg) plus
  #   python3 and its dependencies; no apt, no init. Jobs have no network anyway.
  # python3, not python3-minimal: the minimal one lacks json, decimal, sqlite3 and
  #   multiprocessing, which ordinary scripts import.
  # merged-usr hook: merges /usr the way debootstrap does, instead of pulling in the
  #   usrmerge package and, through it, 50 MB of perl.
  # force-unsafe-io: dpkg need not fsync a tree that is thrown away if the build fails.
  # path-exclude: no man pages, docs (copyrights stay), info or translations.
  # The cache hooks copy the .debs in before apt runs and back out after (minus the
  #   versions the mirror no longer has); --skip=essential/unlink keeps mmdebstrap from
  #   deleting them first.
  # The customize hook makes /work (the jobs' working folder) and drops build logs.
  local status=0
  mmdebstrap --mode=root --format=directory --variant=essential --include=python3 \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --skip=essential/unlink \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in $CACHE_DIR /var/cache/apt/archives/" \
    --customize-hook='APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get -qq autoclean' \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE_DIR" \
    --customize-hook='mkdir -p "$1/work" && rm -rf "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/var/cache/debconf/*-old' \
    "$SUITE" "$rootfs" "${SOURCES[@]}" 2>&1 \
    | tee "$LOG" | awk '/^I: (running apt-get|downloading|extracting|installing|success)/ { print "images:   " substr($0, 4) > "/dev/stderr"; fflush("/dev/stderr") }' \
    || status=$?
  [ "$status" -eq 0 ] || die "mmdebstrap failed; last lines of $LOG:
$(tail -n 15 "$LOG")"
  rm -f "$CACHE_DIR/lock"
  rm -rf "$CACHE_DIR/partial"
}

import_image() {
  local rootfs="$1" old
  old=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  say "importing $IMAGE ($(du -sh "$rootfs" | cut -f1) on disk)"
  # PYTHONUNBUFFERED: a job's print() reaches `workrs logs -f` at once instead of in
  # 8 KB blocks, and a killed job does not lose its last lines in a buffer.
  tar --numeric-owner -C "$rootfs" -c . \
    | docker import \
      -c 'CMD ["python3"]' \
      -c 'WORKDIR /work' \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'ENV LANG=C.UTF-8' \
      -c 'ENV PYTHONUNBUFFERED=1' \
      -c "LABEL $RECIPE_LABEL=$RECIPE" \
      - "$IMAGE" >/dev/null \
    || die "docker import of $IMAGE failed"
  # The image this one replaces, unless a container still uses it (then it stays, untagged).
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || say "the previous $IMAGE ($old) is still in use; left untagged"
  fi
}

main() {
  require_host
  if image_is_current; then
    say "$IMAGE present (recipe $RECIPE)"
    return
  fi
  # Two builds at once (two `make setup`s) would share the .deb cache: the second one
  # waits, then finds the image the first one built.
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR.lock"
  flock 9
  if image_is_current; then
    say "$IMAGE built meanwhile by another run"
    return
  fi
  ensure_mmdebstrap
  # Under /var/tmp, not /tmp: the tree is about 100 MB and /tmp may be a small tmpfs.
  workdir=$(mktemp -d /var/tmp/workrs-python-image.XXXXXX)
  # --one-file-system: never follow a mount that a failed mmdebstrap left in the chroot.
  trap 'rm -rf --one-file-system "$workdir"' EXIT
  build_rootfs "$workdir/rootfs"
  local python
  python=$(chroot "$workdir/rootfs" python3 -c 'import json, sqlite3, decimal, ssl; import sys; print(sys.version.split()[0])') \
    || die "python3 does not run in the new root filesystem"
  import_image "$workdir/rootfs"
  local size
  size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
  say "$IMAGE built: Python $python, $(( size / 1000000 )) MB, recipe $RECIPE, in $(seconds) s"
}

main "$@"
