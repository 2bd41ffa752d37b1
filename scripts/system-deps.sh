#!/usr/bin/env bash
# System packages the project needs, installed with apt-get when missing (Debian/Ubuntu):
#   libgmp-dev      builds fastecdsa, a dependency of libp2p
#   chromium        headless browser for the explorer page test
#   docker-compose  v1, validates testnet/docker-compose.yml without a Docker daemon
# Usage: scripts/system-deps.sh [PACKAGE...]   (default: all of the above)
set -u
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(libgmp-dev chromium docker-compose)
command -v dpkg >/dev/null 2>&1 || { echo "system-deps: not a Debian-like system; install ${pkgs[*]} yourself"; exit 0; }
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "system-deps: missing ${missing[*]}; run as root: apt-get install ${missing[*]}"; exit 0; fi
fi
echo "system-deps: installing ${missing[*]}"
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  || echo "system-deps: could not install ${missing[*]} (tests that need them will say so)"
exit 0
