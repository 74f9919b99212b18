/* Run-time ISA detection and the STRETCH_ISA override. */
#include "cpu_features.h"

#include <stdlib.h>
#include <string.h>

st_cpu_isa st_cpu_isa_detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return ST_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
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
