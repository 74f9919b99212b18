/*
 * tools/stretch/cmd_devices.c - `stretch devices`: every OpenCL platform
 * and device this build can run a model on, with the facts that decide
 * which to pick (memory, compute units, fp16, subgroups, integer dot).
 */
#include <stdio.h>
#include <string.h>

#include <stretch/devices.h>

#include "commands.h"
#include "json_out.h"

static void devices_usage(FILE *f)
{
    fprintf(f, "usage: stretch devices [--json]\n\n"
               "Lists every OpenCL platform and device. Choose one in a strategy with\n"
               "`backend: opencl:PLATFORM:DEVICE`, or `backend: opencl` and `device: N`\n"
               "(the index shown) or `device: NAME` (a substring of its name); on the\n"
               "command line with --backend and --device.\n\n"
               "  --json   one JSON object: {\"devices\": [...]}\n");
}

static void print_json(const st_device_info *d, size_t n)
{
    st_json j;
    st_json_init(&j, stdout, true);
    st_json_begin_object(&j);
    st_json_key(&j, "devices");
    st_json_begin_array(&j);
    for (size_t i = 0; i < n; i++) {
        st_json_begin_object(&j);
        st_json_key(&j, "index"); st_json_uint(&j, d[i].index);
        char sel[64];
        snprintf(sel, sizeof sel, "opencl:%u:%u", d[i].platform, d[i].device);
        st_json_key(&j, "backend"); st_json_string(&j, sel);
        st_json_key(&j, "platform"); st_json_string(&j, d[i].platform_name);
        st_json_key(&j, "name"); st_json_string(&j, d[i].name);
        st_json_key(&j, "vendor"); st_json_string(&j, d[i].vendor);
        st_json_key(&j, "type"); st_json_string(&j, d[i].type);
        st_json_key(&j, "driver_version"); st_json_string(&j, d[i].driver_version);
        st_json_key(&j, "opencl_version"); st_json_string(&j, d[i].opencl_version);
        st_json_key(&j, "compute_units"); st_json_uint(&j, d[i].compute_units);
        st_json_key(&j, "global_mem_bytes"); st_json_uint(&j, d[i].global_mem_bytes);
        st_json_key(&j, "local_mem_bytes"); st_json_uint(&j, d[i].local_mem_bytes);
        st_json_key(&j, "max_alloc_bytes"); st_json_uint(&j, d[i].max_alloc_bytes);
        st_json_key(&j, "fp16"); st_json_bool(&j, d[i].fp16);
        st_json_key(&j, "subgroups"); st_json_bool(&j, d[i].subgroups);
        st_json_key(&j, "integer_dot"); st_json_bool(&j, d[i].integer_dot);
        st_json_end_object(&j);
    }
    st_json_end_array(&j);
    st_json_end_object(&j);
    st_json_end(&j);
}

static void print_text(const st_device_info *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || d[i].platform != d[i - 1].platform)
            printf("platform %u: %s\n", d[i].platform, d[i].platform_name);
        printf("  [%u] opencl:%u:%u  %s (%s, %s)\n", d[i].index, d[i].platform, d[i].device,
               d[i].name, d[i].vendor, d[i].type);
        printf("      driver %s, %s\n", d[i].driver_version, d[i].opencl_version);
        printf("      %u compute units, %.2f GiB global, %llu KiB local, max alloc %.2f GiB\n",
               d[i].compute_units, d[i].global_mem_bytes / 1073741824.0,
               (unsigned long long)(d[i].local_mem_bytes / 1024),
               d[i].max_alloc_bytes / 1073741824.0);
        printf("      fp16 %s, subgroups %s, integer dot product %s\n", d[i].fp16 ? "yes" : "no",
               d[i].subgroups ? "yes" : "no", d[i].integer_dot ? "yes" : "no");
    }
}

int st_cmd_devices(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            devices_usage(stdout);
            return ST_EXIT_OK;
        } else {
            fprintf(stderr, "stretch devices: unknown option '%s'\n", argv[i]);
            devices_usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    st_device_info *d = NULL;
    size_t n = 0;
    st_error err = { ST_OK, "" };
    if (st_devices_list(&d, &n, &err) != ST_OK) {
        fprintf(stderr, "stretch devices: %s\n", err.message);
        return ST_EXIT_RUNTIME;
    }
    if (json)
        print_json(d, n);
    else
        print_text(d, n);
    st_free(d);
    return ST_EXIT_OK;
}
