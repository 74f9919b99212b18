/*
 * core/library_info.c - what the library says about itself and its status
 * codes (stretch.h): version, ABI, status names and texts, peak memory.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/amx_probe.h"
#include "cpu/cpu_features.h"

#include <stretch/stretch.h>

#ifndef ST_VERSION_STRING
#define ST_VERSION_STRING "0.0.0"
#endif

const char *st_version(void)
{
    return ST_VERSION_STRING;
}

uint32_t st_abi_version(void)
{
    return ST_ABI_VERSION_NUMBER(ST_ABI_MAJOR, ST_ABI_MINOR);
}

void st_free(void *p)
{
    free(p);
}

const char *st_status_name(st_status status)
{
    switch (status) {
    case ST_OK: return "ST_OK";
    case ST_E_INVALID: return "ST_E_INVALID";
    case ST_E_NOMEM: return "ST_E_NOMEM";
    case ST_E_IO: return "ST_E_IO";
    case ST_E_FORMAT: return "ST_E_FORMAT";
    case ST_E_UNAVAILABLE: return "ST_E_UNAVAILABLE";
    case ST_E_RANGE: return "ST_E_RANGE";
    case ST_E_NOT_FOUND: return "ST_E_NOT_FOUND";
    case ST_E_ABI: return "ST_E_ABI";
    case ST_E_STATE: return "ST_E_STATE";
    case ST_E_CANCELLED: return "ST_E_CANCELLED";
    case ST_E_PLUGIN: return "ST_E_PLUGIN";
    case ST_E_INTERNAL: return "ST_E_INTERNAL";
    }
    return "ST_E_UNKNOWN";
}

const char *st_strerror(st_status status)
{
    switch (status) {
    case ST_OK: return "success";
    case ST_E_INVALID: return "invalid argument";
    case ST_E_NOMEM: return "out of memory";
    case ST_E_IO: return "input/output error";
    case ST_E_FORMAT: return "malformed input";
    case ST_E_UNAVAILABLE: return "not available";
    case ST_E_RANGE: return "out of range";
    case ST_E_NOT_FOUND: return "not found";
    case ST_E_ABI: return "ABI mismatch";
    case ST_E_STATE: return "invalid state";
    case ST_E_CANCELLED: return "cancelled";
    case ST_E_PLUGIN: return "plugin failure";
    case ST_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}

uint64_t st_peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %" SCNu64 " kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static char cpu_summary[160];
static pthread_once_t cpu_summary_once = PTHREAD_ONCE_INIT;

static void cpu_summary_init(void)
{
    st_amx_probe amx;
    st_amx_probe_run(&amx);
    snprintf(cpu_summary, sizeof cpu_summary, "kernels %s; %s",
             st_cpu_isa_name(st_cpu_isa_active()), amx.reason);
}

const char *st_cpu_summary(void)
{
    pthread_once(&cpu_summary_once, cpu_summary_init);
    return cpu_summary;
}
