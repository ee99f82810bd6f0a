#!/usr/bin/env bash
# Prepares this box for Workrs: npm dependencies, a Docker engine with checkpoint
# support, a CRIU that works on this kernel, the base image workrs/busybox:1, and
# chromium for the browser tests.
# Idempotent: every step checks first and does nothing when already done.
# Facts behind each step: docs/host.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${WORKRS_SETUP_STATE:-/var/cache/workrs-setup}"
CRIU_PREFIX="${WORKRS_CRIU_PREFIX:-/opt/criu4}"
CRIU_WRAPPER=/usr/local/sbin/criu
DOCKERD_LOG="${WORKRS_DOCKERD_LOG:-/var/log/workrs-dockerd.log}"
BASE_IMAGE=workrs/busybox:1
APT_LOCK=(-o DPkg::Lock::Timeout=900)
# dockerd (and runc under it) find criu through PATH: the wrapper must come first.
DAEMON_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

started=$(date +%s%N)
say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }
elapsed_ms() { echo $(( ($(date +%s%N) - started) / 1000000 )); }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, starts dockerd); run: sudo make setup"
}

check_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || die "node is not on PATH; Workrs needs Node 20"
  [ "$major" -ge 20 ] || die "Node $major found; Workrs needs Node 20 or later"
}

npm_deps() {
  # `npm ci` wipes node_modules; only run it when the lock file changed since the last install.
  local stamp="$ROOT/node_modules/.workrs-lock-sha"
  local want
  want=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "npm dependencies: up to date"
    return
  fi
  say "npm dependencies: npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed (is the npm registry reachable?)"
  echo "$want" >"$stamp"
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && { say "packages: ${*} present"; return; }
  say "packages: installing ${missing[*]} from Debian"
  apt-get "${APT_LOCK[@]}" update -qq || die "apt-get update failed (are Debian's mirrors reachable?)"
  apt-get "${APT_LOCK[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# The Debian mirror this system already uses, read from its apt configuration.
debian_mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "cannot find the Debian mirror in /etc/apt/sources.list{,.d}"
  echo "$uri"
}

criu_works() { command -v criu >/dev/null 2>&1 && criu check >/dev/null 2>&1; }

# Debian bookworm's CRIU 3.17 fails on this kernel (vDSO bounds). CRIU 4.1 from trixie
# works; it is unpacked under $CRIU_PREFIX, never installed, so trixie's libc stays out
# of the system. A private apt configuration leaves the system's sources untouched.
install_trixie_criu() {
  local work="$STATE_DIR/apt-trixie" mirror
  mirror=$(debian_mirror)
  say "criu: system criu missing or failing; unpacking CRIU from Debian trixie ($mirror) into $CRIU_PREFIX"
  rm -rf "$work"
  mkdir -p "$work/parts" "$work/lists/partial" "$work/cache" "$work/archives/partial"
  : >"$work/status"
  echo "deb $mirror trixie main" >"$work/sources.list"
  local opts=("${APT_LOCK[@]}"
    -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
    -o Dir::Etc::Preferences=/dev/null -o "Dir::State::Lists=$work/lists"
    -o "Dir::State::status=$work/status" -o "Dir::Cache=$work/cache"
    -o "Dir::Cache::archives=$work/archives" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq || die "apt-get update of the trixie suite failed"
  apt-get "${opts[@]}" install -y -qq --download-only --no-install-recommends criu >/dev/null \
    || die "downloading trixie's criu failed"
  compgen -G "$work/archives/criu_*.deb" >/dev/null || die "trixie's criu .deb was not downloaded"
  rm -rf "$CRIU_PREFIX.new"
  mkdir -p "$CRIU_PREFIX.new"
  for deb in "$work"/archives/*.deb; do dpkg-deb -x "$deb" "$CRIU_PREFIX.new"; done
  rm -rf "$CRIU_PREFIX"
  mv "$CRIU_PREFIX.new" "$CRIU_PREFIX"
  rm -rf "$work"
  write_criu_wrapper
}

write_criu_wrapper() {
  local triplet loader
  triplet="$(uname -m)-linux-gnu"
  loader=$(cd "$CRIU_PREFIX/usr/lib/$triplet" 2>/dev/null && ls ld-linux*.so.* 2>/dev/null | head -n1)
  [ -n "$loader" ] || die "no dynamic loader found under $CRIU_PREFIX/usr/lib/$triplet"
  mkdir -p "$(dirname "$CRIU_WRAPPER")"
  # CRIU_FAULT=130: these VMs do not deliver x86 hardware breakpoints and criu 4.1
  # otherwise hangs in every dump ("Waiting for PID to trap"); fixed upstream in 4.2.
  cat >"$CRIU_WRAPPER.tmp" <<WRAP
#!/bin/sh
# Installed by Workrs' scripts/setup-host.sh: CRIU 4.1 from Debian trixie, unpacked in $CRIU_PREFIX.
export CRIU_FAULT="\${CRIU_FAULT:-130}"
R=$CRIU_PREFIX; L=\$R/usr/lib/$triplet
exec "\$L/$loader" --library-path "\$L:\$R/lib/$triplet" "\$R/usr/sbin/criu" "\$@"
WRAP
  chmod 755 "$CRIU_WRAPPER.tmp"
  mv "$CRIU_WRAPPER.tmp" "$CRIU_WRAPPER"
}

ensure_criu() {
  export PATH="$DAEMON_PATH:$PATH"
  if criu_works; then
    say "criu: $(command -v criu) passes 'criu check' ($(criu --version 2>/dev/null | head -n1))"
    return
  fi
  if [ -x "$CRIU_PREFIX/usr/sbin/criu" ]; then
    write_criu_wrapper
    criu_works && { say "criu: wrapper restored for $CRIU_PREFIX"; return; }
  fi
  install_trixie_criu
  criu_works || die "criu check still fails after the trixie install: $(criu check 2>&1 | tail -n 3)"
  say "criu: $(criu --version | head -n1) passes 'criu check'"
}

docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ensure_dockerd() {
  if docker_answers; then
    say "docker: engine $(docker version --format '{{.Server.Version}}') answers"
  else
    say "docker: no engine answers; starting dockerd --experimental (log: $DOCKERD_LOG)"
    # A pid file left by a killed dockerd would stop the new one from starting.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
      rm -f /var/run/docker.pid
    fi
    env PATH="$DAEMON_PATH" setsid dockerd --experimental </dev/null >>"$DOCKERD_LOG" 2>&1 &
    local i
    for i in $(seq 1 120); do
      docker_answers && break
      sleep 0.5
    done
    docker_answers || die "dockerd did not answer within 60 s; last log lines: $(tail -n 5 "$DOCKERD_LOG")"
    say "docker: engine $(docker version --format '{{.Server.Version}}') started"
  fi
  [ "$(docker version --format '{{.Server.Experimental}}')" = "true" ] \
    || die "the running Docker engine is not in experimental mode (checkpoint/restore needs it); restart dockerd with --experimental"
}

ensure_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "image: $BASE_IMAGE present"
    return
  fi
  say "image: building $BASE_IMAGE from Debian's busybox-static (no registry)"
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/work" "$rootfs/root"
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar --numeric-owner -C "$rootfs" -c . \
    | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' -c 'WORKDIR /work' - "$BASE_IMAGE" >/dev/null \
    || die "docker import of $BASE_IMAGE failed"
  rm -rf "$rootfs"
  say "image: $BASE_IMAGE built"
}

main() {
  require_root
  check_node
  mkdir -p "$STATE_DIR"
  npm_deps
  apt_install docker.io busybox-static iptables
  # strip: the build strips the node it puts in dist/workrs (scripts/build.mjs);
  # systemd-analyze: the install test checks the unit workrs install writes.
  apt_install binutils systemd
  # etcd: the peer `make bench-raft` and its smoke test in `make test` measure against.
  apt_install etcd-server
  # chromium: the browser tests (test/browser/) drive Debian's chromium, never a
  # downloaded one; certutil (libnss3-tools) makes it trust a test cluster's CA.
  apt_install chromium libnss3-tools
  ensure_criu
  ensure_dockerd
  ensure_base_image
  say "done in $(elapsed_ms) ms"
}

main "$@"
