/* tests/bad/libs/gone.c - the dependency of the missing-dep fixture; built
 * into a directory the loader never searches. */
__attribute__((visibility("default"))) int st_fixture_gone(void) { return 42; }
