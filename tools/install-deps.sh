#!/usr/bin/env bash
# Install the Debian packages stretch builds and tests with. Idempotent:
# skips apt entirely when everything is already there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git python3 python3-pip python3-venv
      libfyaml-dev libmsgpack-dev libuv1-dev libjansson-dev libcriterion-dev
      ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo valgrind
      clang-14 libclang-rt-14-dev)  # the last two: tools/fuzz.sh (libFuzzer, ASan, UBSan)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
