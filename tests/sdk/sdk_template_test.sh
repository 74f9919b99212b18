#!/bin/sh
# tests/sdk/sdk_template_test.sh BUILD_DIR TEMPLATE_DIR CMAKE CC
# The SDK as a third party sees it: install the build tree into a temporary
# prefix, build the installed template (share/stretch/template) out of tree
# against it (find_package), load-check the result with the installed
# `stretch inspect --json`, use it from a strategy written elsewhere that
# extends a stock manifest by name, then compile the same source with plain
# cc and pkg-config and check that too.
set -eu
BUILD=$1 TEMPLATE=$2 CMAKE=$3 CC=$4
TMP=$(mktemp -d "${TMPDIR:-/tmp}/st_sdk_test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() { echo "sdk_template_test: $*" >&2; exit 1; }

"$CMAKE" --install "$BUILD" --prefix "$TMP/prefix" >"$TMP/install.log" 2>&1 ||
    { cat "$TMP/install.log" >&2; fail "cmake --install failed"; }
STRETCH=$TMP/prefix/bin/stretch
[ -x "$STRETCH" ] || fail "no stretch binary installed"
# What an author starts from is installed, not only in the source tree.
[ -f "$TMP/prefix/share/stretch/template/template_sampler.c" ] || fail "template not installed"
[ -f "$TMP/prefix/share/stretch/manifests/greedy.yaml" ] || fail "stock manifests not installed"
cmp -s "$TEMPLATE/template_sampler.c" "$TMP/prefix/share/stretch/template/template_sampler.c" ||
    fail "the installed template differs from sdk/template"
TEMPLATE=$TMP/prefix/share/stretch/template

"$CMAKE" -S "$TEMPLATE" -B "$TMP/build" -DCMAKE_PREFIX_PATH="$TMP/prefix" \
    >"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log" >&2; fail "configure failed"; }
"$CMAKE" --build "$TMP/build" >"$TMP/build.log" 2>&1 ||
    { cat "$TMP/build.log" >&2; fail "build failed"; }
YAML=$TMP/build/plugins/sampler/template-sampler/plugin.yaml
[ -f "$YAML" ] || fail "no $YAML"

# $1: JSON file from stretch inspect --json; asserts the load check passed.
check_json() {
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "template-sampler", d["name"]
assert d["kind"] == "sampler"
assert [p["name"] for p in d["params"]] == ["margin"], d["params"]
assert d["params"][0]["default"] == 0, d["params"][0]
load = d["load"]
assert load["status"] == "ok", load
assert load["loaded"] and load["created"], load
assert load["abi"] == load["host_abi"], load
assert load["ops"] == {"apply": True, "accept": False, "reset": True}, load["ops"]
conf = load["conformance"]
assert conf is None or conf["ok"], conf
print("ok:", d["library"], "conformance:", "ran" if conf else "absent")
PY
}

"$STRETCH" inspect --json "$YAML" >"$TMP/inspect.json" ||
    { cat "$TMP/inspect.json" >&2; fail "stretch inspect failed on the CMake-built plugin"; }
check_json "$TMP/inspect.json" || fail "bad inspect result (CMake build)"

# Installed where a user would put it, found by name through STRETCH_PLUGIN_PATH.
"$CMAKE" --install "$TMP/build" --prefix "$TMP/plugins" >/dev/null 2>&1 ||
    fail "installing the template failed"
DIR=$(dirname "$(dirname "$(find "$TMP/plugins" -name plugin.yaml | head -n 1)")")
STRETCH_PLUGIN_PATH=$DIR "$STRETCH" inspect --json template-sampler >"$TMP/byname.json" ||
    fail "installed template-sampler not found by name under $DIR"
check_json "$TMP/byname.json" || fail "bad inspect result (installed)"

# A strategy written anywhere extends the stock greedy by name and puts the
# new sampler first; `stretch check` resolves it and configures it against a
# tiny model.
"$BUILD/bin/st-gen-tiny-model" --out "$TMP/tiny.gguf" >/dev/null || fail "tiny model"
mkdir "$TMP/strategy"
cat >"$TMP/strategy/mine.yaml" <<EOF
format: 1
extends: greedy
model: $TMP/tiny.gguf
plugin-dirs: [$DIR]
samplers:
  - plugin: template-sampler
  - plugin: greedy
EOF
(cd / && "$STRETCH" check "$TMP/strategy/mine.yaml") >"$TMP/check.txt" 2>&1 ||
    { cat "$TMP/check.txt" >&2; fail "a strategy extending the stock 'greedy' did not check"; }
grep -q "share/stretch/manifests/greedy.yaml" "$TMP/check.txt" ||
    { cat "$TMP/check.txt" >&2; fail "extends: greedy did not resolve to the installed stock manifest"; }

# pkg-config: plain cc, no CMake.
PC=$(find "$TMP/prefix" -name stretch-plugin.pc | head -n 1)
[ -n "$PC" ] || fail "stretch-plugin.pc not installed"
CFLAGS=$(PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --cflags stretch-plugin) ||
    fail "pkg-config --cflags stretch-plugin failed"
case "$CFLAGS" in *"$TMP/prefix"*) ;; *) fail "pkg-config cflags do not point into the prefix: $CFLAGS" ;; esac
mkdir "$TMP/pc"
cp "$TEMPLATE/plugin.yaml" "$TMP/pc/"
# shellcheck disable=SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden $CFLAGS \
    "$TEMPLATE/template_sampler.c" -o "$TMP/pc/template-sampler.so" -lm ||
    fail "cc with pkg-config flags failed"
"$STRETCH" inspect --json "$TMP/pc/template-sampler.so" >"$TMP/pc.json" ||
    { cat "$TMP/pc.json" >&2; fail "stretch inspect failed on the pkg-config build"; }
check_json "$TMP/pc.json" || fail "bad inspect result (pkg-config build)"
echo "sdk_template_test: all passed"
