#!/usr/bin/env bash
# Installs the Debian packages that headless Qt (napari under Xvfb) and OpenGL need.
# Runs only on Debian/Ubuntu; needs root (or sudo). Does nothing if they are present already.
set -euo pipefail

PACKAGES=(
  xvfb xauth
  libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-xkb1 libxcb-shape0
  libxcb-render-util0 libxcb-image0 libxcb-cursor0 libxcb-randr0 libxcb-xfixes0
  libxkbcommon-x11-0 libxkbcommon0 libdbus-1-3 libfontconfig1 libglib2.0-0
  libgl1 libgl1-mesa-dri libegl1
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: not a Debian-like system; install Xvfb and the Qt xcb libraries yourself." >&2
  exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_system_deps: need root to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "install_system_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
