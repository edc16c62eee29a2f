#!/bin/sh
# Install Debian's nginx when missing, for tests/test_deploy.py (`nginx -t` on deploy/booking.conf).
# The test runs nginx on a configuration and ports of its own; Debian's package may also start
# its default server on port 80 (not in containers, where policy-rc.d stops it).
set -e
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: nginx"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null
