#!/usr/bin/env bash
# Make a local Debian bookworm base image for images/*/Dockerfile (PYTHON_IMAGE) where no registry of
# base images can be reached: mmdebstrap --variant=minbase, plus what python:3.11-slim-bookworm gives
# the Dockerfiles (python3 with venv and pip's wheels, `python` on PATH, CA certificates, useradd).
# Cached: does nothing when the image exists. Usage: images/base.sh [TAG] (default localhost/adacot/base:bookworm)
set -euo pipefail
tag=${1:-localhost/adacot/base:bookworm}
engine=${ENGINE:-podman}
if "$engine" image exists "$tag" 2>/dev/null; then
  echo "base image $tag: present (cached)"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "images/base.sh: mmdebstrap is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
  --include=python3,python3-venv,python-is-python3,ca-certificates,passwd,libgomp1,libnuma1,bubblewrap \
  --aptopt='APT::Install-Recommends "false"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$work/base.tar" http://deb.debian.org/debian
"$engine" import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$work/base.tar" "$tag" >/dev/null
echo "base image $tag: built in $((SECONDS - started)) s ($(du -m "$work/base.tar" | cut -f1) MiB tar)"
