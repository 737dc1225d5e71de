#!/usr/bin/env bash
# Build the operator and worker-cpu images (`make images`) with podman, or docker where podman is absent.
#
#   images/build.sh [IMAGE...]        default: operator worker-cpu
#
# Environment (all optional):
#   ENGINE        podman | docker (default: podman if installed, else docker)
#   PYTHON_IMAGE  base image of both stages (default: localhost/adacot/base:bookworm, which
#                 images/base.sh bootstraps with mmdebstrap, cached; give python:3.11.14-slim-bookworm
#                 where a registry can be reached)
#   REGISTRY      repository prefix of the release tags (default: ghcr.io/adacot)
#   PIP_HOST_CONFIG=0  build without this machine's pip configuration (see below)
#   DRY_RUN=1     print the build commands, run nothing
#   OUT_DIR       where pip.conf, build logs and reports go (default build/images)
#
# Tags: $REGISTRY/<image>:<version>, $REGISTRY/<image>:<version>-<git short rev>[-dirty] and
# localhost/adacot/<image>:dev (the tag tests and the emulator's podman kubelet use). The version and
# revision labels are also given with --label: buildah 1.28 reuses a cached LABEL step whose ARG changed.
#
# Build inputs that never enter an image: this machine's pip configuration (`pip config list`: extra CA
# certificates, find-links folders, file:// package indexes) is rewritten into build/images/pip.conf and
# handed to the build as the secret `pip.conf`, the CA bundle it names as the secret `ca.crt`; the local
# folders it names are bind-mounted read-only into the build's RUN steps (podman `--volume`; docker
# builds get the secrets only). Report per image: build/images/<image>.txt (tags, size, `pip list`).
set -euo pipefail
cd "$(dirname "$0")/.."
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(operator worker-cpu)

engine=${ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null; then engine=docker
  else echo "images/build.sh: neither podman nor docker is installed" >&2; exit 1
  fi
fi
if [ "$engine" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF=$PWD/images/containers.conf
fi
python_image=${PYTHON_IMAGE:-localhost/adacot/base:bookworm}
registry=${REGISTRY:-ghcr.io/adacot}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' adacot/__init__.py)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- adacot operator pyproject.toml README.md images 2>/dev/null)" ]; then
  revision=$revision-dirty
fi
out=${OUT_DIR:-build/images}
mkdir -p "$out"

dry=${DRY_RUN:-}
if [[ $python_image == localhost/adacot/base:* ]]; then
  if [ -n "$dry" ]; then echo "images/base.sh $python_image"; else ENGINE=$engine images/base.sh "$python_image"; fi
fi

# This machine's pip configuration, rewritten for the build (paths inside the build = paths here).
args=()
pip_conf=$out/pip.conf
torch_index=https://download.pytorch.org/whl/cpu
if [ "${PIP_HOST_CONFIG:-1}" != 0 ] && command -v python3 >/dev/null; then
  config=$(python3 -m pip config list 2>/dev/null || true)
  value() { sed -n "s/^[^ ]*\.$1='\(.*\)'$/\1/p" <<<"$config" | tail -1; }
  cert=$(value cert); find_links=$(value find-links); extra_index=$(value extra-index-url)
  index=$(value index-url)
  {
    echo "# adacot build-time pip configuration (images/build.sh): a build secret, never in an image"
    echo "[global]"
    [ -n "$cert" ] && [ -f "$cert" ] && echo "cert = /run/secrets/ca.crt"
    [ -n "$index" ] && echo "index-url = $index"
    [ -n "$find_links" ] && echo "find-links = $find_links"
    [ -n "$extra_index" ] && echo "extra-index-url = $extra_index"
  } >"$pip_conf"
  args+=(--secret "id=pip.conf,src=$pip_conf")
  [ -n "$cert" ] && [ -f "$cert" ] && args+=(--secret "id=ca.crt,src=$cert")
  for location in $find_links $extra_index; do
    dir=${location#file://}
    [[ $dir == /* ]] || continue
    [ -d "$dir" ] || continue
    [[ $location == file://* ]] && dir=$(dirname "$dir")  # an index's files lie beside simple/
    if [ "$engine" = podman ]; then args+=(--volume "$dir:$dir:ro"); fi
  done
  # torch's CPU wheel in a local folder: take it from there, the default index (PyPI) has no +cpu build.
  for dir in $find_links; do
    if compgen -G "${dir#file://}/torch-*+cpu-*.whl" >/dev/null; then torch_index=https://pypi.org/simple; fi
  done
fi

for image in "${images[@]}"; do
  tags=("$registry/$image:$version" "$registry/$image:$version-$revision" "localhost/adacot/$image:dev")
  tag_args=()
  for tag in "${tags[@]}"; do tag_args+=(--tag "$tag"); done
  build=("$engine" build --file "images/$image/Dockerfile" "${tag_args[@]}" "${args[@]}"
    --build-arg "PYTHON_IMAGE=$python_image" --build-arg "TORCH_INDEX_URL=$torch_index"
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
    --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.revision=$revision" .)
  if [ -n "$dry" ]; then echo "${build[*]}"; continue; fi
  started=$SECONDS
  "${build[@]}" >"$out/$image.build.log" 2>&1 \
    || { tail -40 "$out/$image.build.log" >&2; echo "images/build.sh: $image failed (log: $out/$image.build.log)" >&2; exit 1; }
  seconds=$((SECONDS - started))
  size=$("$engine" image inspect --format '{{.Size}}' "${tags[0]}")
  {
    echo "image: $image"
    echo "tags: ${tags[*]}"
    echo "base: $python_image"
    echo "build_seconds: $seconds"
    echo "size_bytes: $size"
    echo "size_mib: $((size / 1048576))"
    echo "packages (pip list --format=freeze):"
    "$engine" run --rm --network none --entrypoint /opt/adacot/bin/python "${tags[0]}" \
      -m pip list --format=freeze --disable-pip-version-check 2>/dev/null | sed 's/^/  /'
  } >"$out/$image.txt"
  echo "$image: ${tags[*]} ($((size / 1048576)) MiB, built in ${seconds} s; report $out/$image.txt)"
done
