#!/usr/bin/env bash
# Makes sure the Debian packages the tests (or the printed client commands)
# need are installed: installs them with apt when running as root, otherwise
# says exactly what is missing.
# Usage: hack/ensure-packages.sh [--soft] <command:package>...
# (a "command" starting with / is a path that must exist, for packages
# without a command, e.g. fonts)
set -euo pipefail

soft=0
if [[ "${1:-}" == "--soft" ]]; then soft=1; shift; fi

missing_pkgs=()
for pair in "$@"; do
  cmd="${pair%%:*}"; pkg="${pair##*:}"
  if [[ "$cmd" == /* ]]; then
    [[ -e "$cmd" ]] || missing_pkgs+=("$pkg")
  elif ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" ]]; then
    missing_pkgs+=("$pkg")
  fi
done
[[ ${#missing_pkgs[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing_pkgs[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >&2; then
    exit 0
  fi
  echo "apt-get could not install: ${missing_pkgs[*]}" >&2
else
  echo "missing Debian packages: ${missing_pkgs[*]} (run as root to have them installed, or: sudo apt-get install ${missing_pkgs[*]})" >&2
fi
[[ $soft -eq 1 ]] && exit 0
exit 1
