#!/usr/bin/env bash
# Install everything the tests need (Debian packages of the real registry and clients when run as root),
# then run the linters and the whole test suite. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(docker-registry skopeo podman containerd docker.io umoci redis-server redis-sentinel apache2-utils
                 iproute2 uidmap fuse-overlayfs python3-venv postgresql nginx chromium)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "not root: tests that need the real registry, clients or network namespaces will be skipped"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'

.venv/bin/ruff check core upstream peer proxy supernode agent manager damselfly bench tests
.venv/bin/mypy

# Two phases: everything but the `solo` tests on several workers (the tests mostly wait on real daemons; each
# file stays on one worker so its module fixtures start once), then the `solo` tests alone, since they compare a
# storm's time against a baseline measured in the same run and the other tests' load would be in the figure.
# Ports come from the kernel, namespaces and drop-ins have random names: workers do not collide.
WORKERS="${DAMSELFLY_TEST_WORKERS:-3}"
set +e
.venv/bin/python -m pytest -n "$WORKERS" --dist loadfile -m "not solo" "$@"
parallel=$?
.venv/bin/python -m pytest -m solo "$@"
alone=$?
set -e
echo "pytest: parallel phase exited $parallel, solo phase exited $alone"
if [ "$parallel" = 5 ] && [ "$alone" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
# One phase finding nothing is fine (a selection of tests may all be solo or none); any other failure is not.
for status in "$parallel" "$alone"; do
  if [ "$status" != 0 ] && [ "$status" != 5 ]; then
    exit "$status"
  fi
done
exit 0
