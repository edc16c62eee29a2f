#!/bin/sh
# Install Debian's Chromium, a CJK font and Java for the browser tests, when missing.
# Playwright cannot download its own browser here; without a CJK font Chinese renders as boxes.
set -e
need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || need="$need fonts-wqy-microhei"
command -v java >/dev/null 2>&1 || need="$need default-jre-headless"  # runs the Nu HTML checker
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
