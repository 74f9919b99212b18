/*
 * core/loader.c - dlopen a plugin library and check it against its
 * manifest with every test the ABI promises (DESIGN.md, "Plugin ABI").
 * Each refusal is distinct, names the library path and says what was
 * expected and what was found; the library is closed again on refusal.
 */
#include "registry.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"
#include "abi_sizes.h"
#include "plugin_ops.h"

const char *st_refusal_name(st_refusal r)
{
    switch (r) {
    case ST_REFUSE_NONE: return "none";
    case ST_REFUSE_MISSING_FILE: return "missing-file";
    case ST_REFUSE_PATH_ESCAPE: return "path-escape";
    case ST_REFUSE_NOT_A_PLUGIN: return "not-a-plugin";
    case ST_REFUSE_DEPENDENCY: return "dependency-missing";
    case ST_REFUSE_MISSING_SYMBOL: return "missing-symbol";
    case ST_REFUSE_ABI: return "abi-mismatch";
    case ST_REFUSE_MISMATCH: return "manifest-mismatch";
    case ST_REFUSE_BAD_ENTRY: return "bad-entry";
    case ST_REFUSE_CREATE_FAILED: return "create-failed";
    }
    return "unknown";
}

static st_status refuse(st_refusal *out, st_refusal why, st_diag *diag,
                        st_status status, const char *lib, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static st_status refuse(st_refusal *out, st_refusal why, st_diag *diag,
                        st_status status, const char *lib, const char *fmt, ...)
{
    if (out)
        *out = why;
    char msg[ST_DIAG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_diag_set(diag, status, lib, 0, 0, "refused (%s): %s",
                       st_refusal_name(why), msg);
}

/* glibc reports a missing dependency as "<dep>: cannot open shared object
 * file: ..." where <dep> is the needed name, not the path we opened. */
static bool is_missing_dependency(const char *err, const char *opened)
{
    const char *what = strstr(err, ": cannot open shared object file");
    if (!what)
        return false;
    size_t n = (size_t)(what - err);
    return !(n == strlen(opened) && strncmp(err, opened, n) == 0);
}

/* Another symbol missing at RTLD_NOW means a library the plugin needs is
 * absent or too old: a dependency problem too, not a malformed file. */
static bool is_undefined_symbol(const char *err)
{
    return strstr(err, "undefined symbol") != NULL;
}

#if defined(__x86_64__)
#define ST_HOST_EM EM_X86_64
#elif defined(__aarch64__)
#define ST_HOST_EM EM_AARCH64
#elif defined(__i386__)
#define ST_HOST_EM EM_386
#elif defined(__arm__)
#define ST_HOST_EM EM_ARM
#elif defined(__riscv)
#define ST_HOST_EM EM_RISCV
#elif defined(__powerpc64__)
#define ST_HOST_EM EM_PPC64
#endif

static bool read_at(int fd, void *buf, size_t n, uint64_t off)
{
    return pread(fd, buf, n, (off_t)off) == (ssize_t)n;
}

/* Look at the ELF headers before dlopen does. A truncated library can map
 * fine and then fault (SIGBUS) when the loader touches a page past the end
 * of the file, so every segment and table must lie inside the file. Also
 * gives plain words for a non-ELF file or another architecture. */
static bool elf_precheck(const char *path, char *why, size_t cap)
{
    const char *not_regular = NULL;
    int fd = st_path_open_regular(path, &not_regular);
    if (fd < 0) {
        snprintf(why, cap, "cannot open: %s", not_regular ? not_regular : strerror(errno));
        return false;
    }
    bool ok = false;
    struct stat st;
    ElfW(Ehdr) eh;
    if (fstat(fd, &st) != 0) {
        snprintf(why, cap, "cannot stat: %s", strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < EI_NIDENT || !read_at(fd, eh.e_ident, EI_NIDENT, 0) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        snprintf(why, cap, "not an ELF shared object (no ELF magic in its first bytes)");
        goto out;
    }
    if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32)) {
        snprintf(why, cap, "ELF class %s does not match this %d-bit host",
                 eh.e_ident[EI_CLASS] == ELFCLASS64 ? "64-bit" : "32-bit",
                 (int)sizeof(void *) * 8);
        goto out;
    }
    if (size < sizeof eh || !read_at(fd, &eh, sizeof eh, 0)) {
        snprintf(why, cap, "truncated ELF file: %llu bytes, shorter than its header",
                 (unsigned long long)size);
        goto out;
    }
    if (eh.e_type != ET_DYN) {
        snprintf(why, cap, "ELF file is not a shared object (e_type %u); build it "
                 "as a MODULE/SHARED library", (unsigned)eh.e_type);
        goto out;
    }
#ifdef ST_HOST_EM
    if (eh.e_machine != ST_HOST_EM) {
        snprintf(why, cap, "built for another architecture (ELF machine %u, host %u)",
                 (unsigned)eh.e_machine, (unsigned)ST_HOST_EM);
        goto out;
    }
#endif
    uint64_t ph_end = (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize;
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) || ph_end > size) {
        snprintf(why, cap, "truncated or corrupt ELF file: program headers end at "
                 "byte %llu, the file has %llu", (unsigned long long)ph_end,
                 (unsigned long long)size);
        goto out;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (!read_at(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * sizeof ph)) {
            snprintf(why, cap, "cannot read program header %u", i);
            goto out;
        }
        uint64_t end = (uint64_t)ph.p_offset + ph.p_filesz;
        if (ph.p_type != PT_NULL && (end < ph.p_offset || end > size)) {
            snprintf(why, cap, "truncated ELF file: segment %u needs bytes up to %llu, "
                     "the file has %llu", i, (unsigned long long)end,
                     (unsigned long long)size);
            goto out;
        }
    }
    uint64_t sh_end = (uint64_t)eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
    if (eh.e_shoff && sh_end > size) {
        snprintf(why, cap, "truncated ELF file: section headers end at byte %llu, "
                 "the file has %llu", (unsigned long long)sh_end,
                 (unsigned long long)size);
        goto out;
    }
    ok = true;
out:
    close(fd);
    return ok;
}

static st_status check_entry(const st_plugin_manifest *m, const st_plugin_entry *e,
                             st_refusal *refusal, st_diag *diag)
{
    const char *lib = m->library_path;
    /* abi_major/abi_minor come first in every version of the entry, so
     * they are safe to read before anything else. */
    if (e->abi_major != ST_ABI_MAJOR)
        return refuse(refusal, ST_REFUSE_ABI, diag, ST_E_ABI, lib,
                      "plugin ABI %u.%u, host ABI %u.%u: major versions differ; "
                      "rebuild the plugin against this stretch SDK",
                      e->abi_major, e->abi_minor, ST_ABI_MAJOR, ST_ABI_MINOR);
    if (e->abi_minor > ST_ABI_MINOR)
        return refuse(refusal, ST_REFUSE_ABI, diag, ST_E_ABI, lib,
                      "plugin ABI %u.%u, host ABI %u.%u: the plugin needs a newer "
                      "host; upgrade stretch or rebuild the plugin",
                      e->abi_major, e->abi_minor, ST_ABI_MAJOR, ST_ABI_MINOR);
    /* Later minors only append: every 1.x entry is at least 1.0's size. */
    if (e->struct_size < ST_ENTRY_SIZE_1_0)
        return refuse(refusal, ST_REFUSE_BAD_ENTRY, diag, ST_E_ABI, lib,
                      "entry struct_size is %u, expected at least %zu for ABI %u.%u",
                      e->struct_size, (size_t)ST_ENTRY_SIZE_1_0, e->abi_major,
                      e->abi_minor);
    if (!e->name)
        return refuse(refusal, ST_REFUSE_BAD_ENTRY, diag, ST_E_ABI, lib,
                      "entry name is NULL (plugin.yaml says '%s')", m->name);
    if (e->kind != m->kind)
        return refuse(refusal, ST_REFUSE_MISMATCH, diag, ST_E_ABI, lib,
                      "library is a %s plugin, plugin.yaml %s says kind: %s",
                      st_kind_name(e->kind), m->path, st_kind_name(m->kind));
    if (strcmp(e->name, m->name) != 0)
        return refuse(refusal, ST_REFUSE_MISMATCH, diag, ST_E_ABI, lib,
                      "library is named '%s', plugin.yaml %s says name: %s",
                      e->name, m->path, m->name);
    const char *missing = !e->create ? "create" : !e->destroy ? "destroy"
                        : !e->ops ? "ops" : NULL;
    if (missing)
        return refuse(refusal, ST_REFUSE_BAD_ENTRY, diag, ST_E_ABI, lib,
                      "entry field '%s' is NULL", missing);
    const st_ops_info *info = st_ops_info_of(e->kind);
    if (!info)
        return refuse(refusal, ST_REFUSE_BAD_ENTRY, diag, ST_E_ABI, lib,
                      "entry kind %d is not a known plugin kind", (int)e->kind);
    uint32_t ops_size;
    memcpy(&ops_size, e->ops, sizeof ops_size);
    if (ops_size < info->size)
        return refuse(refusal, ST_REFUSE_BAD_ENTRY, diag, ST_E_ABI, lib,
                      "%s ops struct_size is %u, expected at least %zu",
                      st_kind_name(e->kind), ops_size, info->size);
    for (size_t i = 0; i < info->n_ops; i++)
        if (info->ops[i].required && !st_op_present(info, e->ops, i))
            return refuse(refusal, ST_REFUSE_BAD_ENTRY, diag, ST_E_ABI, lib,
                          "%s ops '%s' is NULL but required", st_kind_name(e->kind),
                          info->ops[i].name);
    return ST_OK;
}

static _Atomic(const char *) loading_library;

const char *st_library_loading(void)
{
    return atomic_load(&loading_library);
}

void st_library_set_loading(const char *path)
{
    atomic_store(&loading_library, path);
}

st_status st_library_open(const st_plugin_manifest *m, st_library **out,
                          st_refusal *refusal, st_diag *diag)
{
    *out = NULL;
    if (refusal)
        *refusal = ST_REFUSE_NONE;
    const char *lib = m->library_path;

    /* Re-check containment on the real paths now: a symlink swapped in
     * after the manifest was read must not take us outside the plugin dir. */
    char *real_dir = st_path_canonical(m->dir);
    if (!real_dir)
        return refuse(refusal, ST_REFUSE_MISSING_FILE, diag, ST_E_NOT_FOUND, lib,
                      "plugin directory %s: %s", m->dir, strerror(errno));
    char *real_lib = st_path_canonical(lib);
    if (!real_lib) {
        int e = errno;
        free(real_dir);
        if (e == ENOENT)
            return refuse(refusal, ST_REFUSE_MISSING_FILE, diag, ST_E_NOT_FOUND, lib,
                          "library file does not exist (plugin.yaml %s says "
                          "library: %s)", m->path, m->library);
        return refuse(refusal, ST_REFUSE_MISSING_FILE, diag, ST_E_IO, lib,
                      "cannot resolve library path: %s", strerror(e));
    }
    if (!st_path_is_inside(real_lib, real_dir)) {
        st_status st = refuse(refusal, ST_REFUSE_PATH_ESCAPE, diag, ST_E_INVALID, lib,
                              "library resolves to %s, outside the plugin "
                              "directory %s", real_lib, real_dir);
        free(real_lib);
        free(real_dir);
        return st;
    }
    free(real_dir);
    if (!st_path_is_file(real_lib)) {
        st_status st = refuse(refusal, ST_REFUSE_NOT_A_PLUGIN, diag, ST_E_FORMAT, lib,
                              "not a regular file");
        free(real_lib);
        return st;
    }

    char why[512];
    if (!elf_precheck(real_lib, why, sizeof why)) {
        st_status st = refuse(refusal, ST_REFUSE_NOT_A_PLUGIN, diag, ST_E_FORMAT, lib,
                              "%s", why);
        free(real_lib);
        return st;
    }

    dlerror();
    st_library_set_loading(lib);
    void *handle = dlopen(real_lib, RTLD_NOW | RTLD_LOCAL);
    st_library_set_loading(NULL);
    if (!handle) {
        const char *err = dlerror();
        if (!err)
            err = "dlopen failed without a message";
        st_status st;
        if (is_missing_dependency(err, real_lib) || is_undefined_symbol(err))
            st = refuse(refusal, ST_REFUSE_DEPENDENCY, diag, ST_E_NOT_FOUND, lib,
                        "a library it depends on is missing or incomplete: %s", err);
        else
            st = refuse(refusal, ST_REFUSE_NOT_A_PLUGIN, diag, ST_E_FORMAT, lib,
                        "not a loadable shared object: %s", err);
        free(real_lib);
        return st;
    }
    free(real_lib);

    dlerror();
    const st_plugin_entry *entry = dlsym(handle, ST_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        const char *err = dlerror();
        st_status st = refuse(refusal, ST_REFUSE_MISSING_SYMBOL, diag, ST_E_NOT_FOUND,
                              lib, "no exported symbol '%s' (%s); declare it with "
                              "ST_PLUGIN(...), which exports it despite "
                              "-fvisibility=hidden", ST_PLUGIN_ENTRY_SYMBOL,
                              err ? err : "symbol is NULL");
        dlclose(handle);
        return st;
    }
    st_status st = check_entry(m, entry, refusal, diag);
    if (st != ST_OK) {
        dlclose(handle);
        return st;
    }
    st_library *l = calloc(1, sizeof *l);
    if (!l) {
        dlclose(handle);
        return st_diag_set(diag, ST_E_NOMEM, lib, 0, 0, "out of memory");
    }
    l->handle = handle;
    l->entry = entry;
    l->manifest = m;
    *out = l;
    return ST_OK;
}

void st_library_close(st_library *lib)
{
    if (!lib)
        return;
    if (lib->handle)
        dlclose(lib->handle);
    free(lib);
}
