#!/usr/bin/env bash
# Runs `stretch` on every broken input under valgrind. A case passes when
# the CLI exits with one of its error codes (1-5) after printing an error
# line, and valgrind finds no invalid access and no definite or indirect
# leak (its own exit code, 99, would replace the CLI's).
#
# run_bad_inputs.sh VALGRIND STRETCH GEN_TINY BAD_MANIFEST_DIR FIXTURE_DIR WORK_DIR [PART PARTS]
# PART of PARTS (1-based): only every PARTS-th case from the PART-th, so
# that ctest runs the sweep as PARTS tests side by side (valgrind runs
# one process on one core, and alone the sweep was the plain ctest's
# longest test by far).
set -uo pipefail
valgrind=$1 stretch=$2 gen=$3 bad=$4 fixtures=$5 work=$6 part=${7:-1} parts=${8:-1}
rm -rf "$work" && mkdir -p "$work"
vg=("$valgrind" -q --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect)
failed=0 total=0 seen=0

# one case: label, then the stretch arguments (cases of other parts skipped)
check() {
  local label=$1; shift
  seen=$((seen + 1))
  [ $(((seen - 1) % parts + 1)) -eq "$part" ] || return 0
  total=$((total + 1))
  "${vg[@]}" --log-file="$work/vg.log" "$stretch" "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ $rc -lt 1 ] || [ $rc -gt 5 ] || [ ! -s "$work/err" ]; then
    failed=$((failed + 1))
    echo "FAIL $label: exit $rc (want 1-5 with an error line)"
    sed 's/^/    /' "$work/err" "$work/vg.log" | head -40
  fi
}

for f in "$bad"/p-*.yaml; do check "inspect $(basename "$f")" inspect "$f"; done
for f in "$bad"/s-*.yaml; do check "check $(basename "$f")" check "$f"; done
# The v-* strategies choose the parameter-schema fixtures as plugins.
for f in "$bad"/fixtures/*.yaml; do
  mkdir -p "$work/plugins/$(basename "$f" .yaml)"
  cp "$f" "$work/plugins/$(basename "$f" .yaml)/plugin.yaml"
done
for f in "$bad"/v-*.yaml; do
  STRETCH_PLUGIN_PATH="$work/plugins" check "check $(basename "$f")" check "$f"
done
for d in "$fixtures"/bad-*/; do
  check "inspect fixture $(basename "$d")" inspect "$d/plugin.yaml"
  lib=$(ls "$d"/*.so 2>/dev/null | head -1)
  [ -n "$lib" ] && check "inspect library $(basename "$lib")" inspect "$lib"
done

# Broken GGUF files behind a valid strategy: cut a tiny model at several
# points and corrupt its magic, version and counts.
model="$work/tiny.gguf"
"$gen" --out "$model" --type q4_1 >/dev/null || { echo "FAIL: cannot generate $model"; exit 1; }
size=$(stat -c %s "$model")
mk() { # name, then a command writing $work/$name from $model
  local name=$1; shift
  "$@" >"$work/$name"
  printf 'format: 1\nextends: %s\nmodel: %s\n' "$bad/../../../manifests/greedy.yaml" "$work/$name" \
    >"$work/$name.yaml"
  check "run on $name" run -m "$work/$name.yaml" --max-tokens 2 hello
}
for cut in 3 8 16 24 100 1000 $((size / 2)) $((size - 1)); do
  mk "cut-$cut.gguf" head -c "$cut" "$model"
done
mk bad-magic.gguf sh -c "printf 'GGUX'; tail -c +5 '$model'"
mk bad-version.gguf sh -c "head -c 4 '$model'; printf '\\x63\\x00\\x00\\x00'; tail -c +9 '$model'"
mk huge-tensor-count.gguf sh -c "head -c 8 '$model'; printf '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x7f'; tail -c +17 '$model'"
mk huge-kv-count.gguf sh -c "head -c 16 '$model'; printf '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x7f'; tail -c +25 '$model'"
mk empty.gguf true

# Broken retriever indexes and JSONL behind manifests/bm25.yaml.
bm25="$bad/../../../manifests/bm25.yaml"
printf 'the cat sat\n' >"$work/doc.txt"
printf 'dogs bark\n' >"$work/doc2.txt"
"$stretch" retrieve index -m "$bm25" --out "$work/good.idx" "$work/doc.txt" 2>/dev/null &&
  "$stretch" retrieve index -m "$bm25" --out "$work/other.idx" "$work/doc2.txt" 2>/dev/null ||
  { echo "FAIL: cannot build an index"; exit 1; }
head -c 20 "$work/good.idx" >"$work/cut.idx"
cp "$work/good.idx.texts" "$work/other.idx.texts"
printf 'not an index' >"$work/text.idx"
for idx in cut.idx good.idx.texts other.idx text.idx missing.idx; do
  check "retrieve query --index $idx" retrieve query -m "$bm25" --index "$work/$idx" cat
done
printf '{"id": "a", "text": }\n' >"$work/bad.jsonl"
check "retrieve index bad.jsonl" retrieve index -m "$bm25" --out "$work/x.idx" --jsonl "$work/bad.jsonl"

echo "$((total - failed)) / $total bad inputs (part $part of $parts) failed cleanly under valgrind"
[ $total -gt 0 ] && [ $failed -eq 0 ]
