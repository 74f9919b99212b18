/* The AMX probe (see amx_probe.h). */
#include "amx_probe.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ST_ARCH_REQ_XCOMP_PERM 0x1023 /* asm/prctl.h, Linux 5.16 */
#define ST_XFEATURE_XTILEDATA 18

/* XCR0 through xgetbv, which faults unless CPUID says OSXSAVE. */
__attribute__((target("xsave"))) static unsigned long long read_xcr0(void)
{
    return _xgetbv(0);
}

void st_amx_probe_run(st_amx_probe *p)
{
    memset(p, 0, sizeof *p);
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        p->cpu_tile = (d >> 24) & 1;
        p->cpu_int8 = (d >> 25) & 1;
    }
    if (!p->cpu_tile || !p->cpu_int8) {
        snprintf(p->reason, sizeof p->reason, "amx: unavailable (cpu lacks %s)",
                 !p->cpu_tile ? "amx-tile" : "amx-int8");
        return;
    }
    bool osxsave = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 27) & 1);
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    p->os_tile = ((xcr0 >> 17) & 3) == 3;
    if (!p->os_tile) {
        snprintf(p->reason, sizeof p->reason,
                 "amx: unavailable (the kernel does not enable tile state in XCR0)");
        return;
    }
    if (syscall(SYS_arch_prctl, ST_ARCH_REQ_XCOMP_PERM, ST_XFEATURE_XTILEDATA) != 0) {
        snprintf(p->reason, sizeof p->reason,
                 "amx: unavailable (arch_prctl refused tile data: %s)", strerror(errno));
        return;
    }
    p->permitted = true;
    snprintf(p->reason, sizeof p->reason,
             "amx: usable, not used (this build has no AMX kernel)");
}
#else
void st_amx_probe_run(st_amx_probe *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->reason, sizeof p->reason, "amx: unavailable (not an x86-64 Linux build)");
}
#endif
