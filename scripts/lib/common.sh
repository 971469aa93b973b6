# Shared helpers for scripts/*: idempotent Debian package installs and cleanup of child
# processes. Sourced, not executed.

# ensure_packages PKG...: installs the missing ones with apt-get (runs `apt-get update` only
# when something is missing). Needs root, as on the project's machines.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Debian's prometheus, nginx and etcd packages start system services on install; the scripts run
# their own instances on loopback ports, so the system ones are stopped if they run.
stop_system_services() {
  for s in prometheus nginx prometheus-node-exporter etcd; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$s" 2>/dev/null; then
      systemctl stop "$s" || true
    fi
  done
}
