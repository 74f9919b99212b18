/* Run-time ISA detection and the STRETCH_ISA override. */
#include "cpu_features.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* F16C by cpuid leaf 1 (ECX bit 29): not every compiler's
 * __builtin_cpu_supports knows the name. */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return (c >> 29) & 1;
}
#endif

st_cpu_isa st_cpu_isa_detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("fma") && has_f16c())
        return ST_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        return ST_ISA_AVX2;
#endif
    return ST_ISA_SCALAR;
}

st_cpu_isa st_cpu_isa_active(void)
{
    st_cpu_isa best = st_cpu_isa_detect();
    const char *env = getenv("STRETCH_ISA");
    st_cpu_isa want = best;
    if (env && *env) {
        if (strcmp(env, "scalar") == 0)
            want = ST_ISA_SCALAR;
        else if (strcmp(env, "avx2") == 0)
            want = ST_ISA_AVX2;
        else if (strcmp(env, "avx512") == 0)
            want = ST_ISA_AVX512;
    }
    return want < best ? want : best;
}

const char *st_cpu_isa_name(st_cpu_isa isa)
{
    switch (isa) {
    case ST_ISA_SCALAR: return "scalar";
    case ST_ISA_AVX2: return "avx2";
    case ST_ISA_AVX512: return "avx512";
    }
    return "?";
}

static bool cpu_is_amd(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return false;
    char v[12];
    memcpy(v, &b, 4);
    memcpy(v + 4, &d, 4);
    memcpy(v + 8, &c, 4);
    return memcmp(v, "AuthenticAMD", 12) == 0;
#else
    return false;
#endif
}

bool st_cpu_weight_prefetch(void)
{
    /* -1: not decided yet; a race decides it twice, the same way. */
    static atomic_int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        const char *env = getenv("STRETCH_WEIGHT_PREFETCH");
        v = env && *env ? strcmp(env, "0") != 0 : !cpu_is_amd();
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v != 0;
}
