/*
 * core/cpu/amx_probe.h - may this process use AMX? Asked without ever
 * executing an AMX instruction: CPUID for the tile and int8 units, XCR0
 * for the kernel's tile state support, then arch_prctl(ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA) for this process's permission (Linux 5.16+ refuses
 * tile data to a process that did not ask; llama.cpp skips the question
 * and dies of SIGILL under some hypervisors). The decision is logged by
 * the callers (`stretch bench`); no kernel of this build uses AMX yet, so
 * an "available" answer still runs the AVX-512 VNNI or AVX2 path.
 */
#ifndef ST_CORE_CPU_AMX_PROBE_H
#define ST_CORE_CPU_AMX_PROBE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct st_amx_probe {
    bool cpu_tile;      /* CPUID.(7,0):EDX[24] AMX-TILE */
    bool cpu_int8;      /* CPUID.(7,0):EDX[25] AMX-INT8 */
    bool os_tile;       /* XCR0 bits 17 and 18: the kernel saves tile state */
    bool permitted;     /* arch_prctl granted XTILEDATA to this process */
    char reason[96];    /* "amx: unavailable (cpu lacks amx-int8)" and so on */
} st_amx_probe;

/* Probe once per call (cheap: CPUID, XGETBV, at most one syscall). */
void st_amx_probe_run(st_amx_probe *out);

#endif
