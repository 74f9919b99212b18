/*
 * tools/stretch/cmd_bench.c - `stretch bench`: model load time, prefill
 * tokens/s on an N-token prompt, decode tokens/s over M tokens and peak RSS,
 * repeated; tools/bench.py sets these beside llama.cpp's in the same run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include <stretch/devices.h>
#include "engine_cli.h"
#include "json_out.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static st_status prompt_out_of_memory(st_error *err)
{
    snprintf(err->message, sizeof err->message, "out of memory for the prompt");
    return ST_E_NOMEM;
}

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: stretch bench [-m MANIFEST] [--prompt-tokens N] [--gen-tokens N]\n"
               "                     [--threads N] [--reps N] [--context N] [--model FILE]\n"
               "                     [--warmup] [--roofline] [--json]\n\n"
               "  Each rep opens the engine (load time), prefills N pseudo-random tokens\n"
               "  (seeded, ids 256 and up) in one request and generates M more with\n"
               "  end-of-text ignored. Defaults: 512 prompt tokens, 128 generated, 3 reps.\n"
               "  llama-bench's spellings work too: -p N, -n N, -r N, -t N, and -m MODEL.gguf\n"
               "  (that model with the default strategy).\n"
               "  --warmup runs the same prompt and one generated token on each rep's\n"
               "  engine before the timed request, untimed, as llama-bench does by default;\n"
               "  the timed request then starts from an empty cache. Without it the timed\n"
               "  prefill is the engine's first (its buffers and cache touched for the\n"
               "  first time), as in a one-shot `stretch run`.\n"
               "  --roofline also measures the machine's read bandwidth and dot-product rate\n"
               "  with the engine's threads and kernels, and prints the fraction of each\n"
               "  ceiling that prefill and decode reached, with the costs it assumed. The\n"
               "  probes run after every rep, so each rep's speed is set against the\n"
               "  bandwidth read beside it (a shared machine's moves from minute to minute);\n"
               "  the fractions printed are the medians of the reps'.\n"
               "  On OpenCL the first rep's load includes the kernel build when the binary\n"
               "  cache is cold (`kernels` says which), and device memory is reported.\n\n");
    fputs(st_cli_backend_usage, f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_stat(const char *name, double *v, int n)
{
    double s[64];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    printf("%-16s min %10.2f  median %10.2f  max %10.2f\n", name, s[0], s[n / 2], s[n - 1]);
}

static double median(const double *v, int n)
{
    double s[64];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return s[n / 2];
}

static void json_list(st_json *j, const char *key, const double *v, int n)
{
    st_json_key(j, key);
    st_json_begin_array(j);
    for (int i = 0; i < n; i++)
        st_json_double(j, v[i]);
    st_json_end_array(j);
}

int st_cmd_bench(int argc, char **argv)
{
    const char *manifest = NULL;
    long long n_prompt = 512, n_gen = 128, reps = 3, v;
    bool json = false, roofline = false, warmup = false;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--prompt-tokens") || !strcmp(a, "-p")) {
            if ((n_prompt = st_cli_parse_range(a, next, 1, 1 << 22)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--gen-tokens") || !strcmp(a, "-n")) {
            if ((n_gen = st_cli_parse_count(a, next, 1 << 22)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--reps") || !strcmp(a, "-r")) {
            if ((reps = st_cli_parse_range(a, next, 1, 64)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--roofline")) {
            roofline = true;
        } else if (!strcmp(a, "--warmup")) {
            warmup = true;
        } else if ((v = st_cli_engine_option("bench", argc, argv, &i, &opts)) != 0) {
            if (v < 0)
                return ST_EXIT_USAGE;
        } else {
            fprintf(stderr, "stretch bench: unknown or incomplete option '%s'\n", a);
            bench_usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    if (!opts.context && n_prompt + n_gen + 16 > ST_CONTEXT_MAX) {
        fprintf(stderr, "stretch bench: --prompt-tokens + --gen-tokens + 16 = %lld exceeds the "
                        "largest context, %d\n", n_prompt + n_gen + 16, ST_CONTEXT_MAX);
        return ST_EXIT_USAGE;
    }
    if (!opts.context)
        opts.context = (uint32_t)(n_prompt + n_gen + 16);

    double load[64], prefill[64], decode[64], compile_ms[64], cached[64];
    /* Per rep with --roofline: the probes' ceilings read after that rep. */
    double read_bw[64], read_med[64], dot_rate[64], dec_frac[64], dec_frac_of_median[64];
    double pre_frac[64];
    bool cache_hit[64];
    char backend[16] = "cpu", device[ST_DEVICE_TEXT_MAX] = "";
    uint64_t device_bytes = 0;
    uint32_t threads = 0;
    char kv_type[16] = "?"; /* copied: the engine's string goes with it */
    uint64_t kv_bytes = 0;
    int rc = 0;
    st_roofline rl = {.struct_size = sizeof rl};
    for (int r = 0; r < reps && !rc; r++) {
        double t0 = now_s();
        st_engine *e = NULL;
        if ((rc = st_cli_open_engine(manifest, &opts, &e)))
            break;
        load[r] = now_s() - t0;
        st_engine_info info = {.struct_size = sizeof info};
        st_engine_get_info(e, &info);
        threads = info.n_threads;
        snprintf(kv_type, sizeof kv_type, "%s", info.kv_type ? info.kv_type : "?");
        kv_bytes = info.kv_bytes_per_token;
        snprintf(backend, sizeof backend, "%s", info.backend ? info.backend : "cpu");
        snprintf(device, sizeof device, "%s", info.device_name ? info.device_name : "");
        compile_ms[r] = info.kernel_compile_ms;
        cache_hit[r] = info.kernel_cache_hit;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_prompt);
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (long long i = 0; ids && i < n_prompt; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ids[i] = 256 + (int32_t)(x % (info.n_vocab > 512 ? info.n_vocab - 256 : 1));
        }
        /* fresh_cache: a warm-up's prompt is this one, and the timed
         * request must compute all of it, as llama-bench's clears its
         * cache between its warm-up and its timed runs. */
        st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = (uint32_t)n_gen + 1,
                                 .seed = 1, .ignore_eos = true, .fresh_cache = true};
        st_generate_stats stats = {.struct_size = sizeof stats};
        st_error err;
        memset(&err, 0, sizeof err);
        st_cli_cancel_on_sigint(e);
        st_status st = ids ? ST_OK : prompt_out_of_memory(&err);
        if (st == ST_OK && warmup) {
            st_generate_params wp = gp;
            wp.max_tokens = 2; /* the prefill and one decode step */
            st = st_engine_generate(e, ids, (size_t)n_prompt, &wp, NULL, NULL, NULL, &err);
        }
        if (st == ST_OK)
            st = st_engine_generate(e, ids, (size_t)n_prompt, &gp, NULL, NULL, &stats, &err);
        st_cli_cancel_on_sigint(NULL);
        free(ids);
        if (st != ST_OK) {
            fprintf(stderr, "stretch: %s\n", st == ST_E_CANCELLED ? "cancelled" : err.message);
            rc = ST_EXIT_RUNTIME;
        } else {
            prefill[r] = stats.prefill_s > 0 ? n_prompt / stats.prefill_s : 0;
            cached[r] = stats.n_cached; /* 0: the timed prefill computed every token */
            decode[r] = stats.decode_s > 0 ? n_gen / stats.decode_s : 0;
            st_engine_get_info(e, &info);
            device_bytes = info.device_bytes;   /* weights and buffers after a run */
        }
        /* After each timed run, with the same engine: its threads, its
         * kernels, and the machine as it was during that run. */
        if (!rc && roofline) {
            if (st_engine_roofline(e, &rl, &err) != ST_OK) {
                fprintf(stderr, "stretch: roofline: %s\n", err.message);
                rc = ST_EXIT_RUNTIME;
            } else {
                read_bw[r] = rl.read_bytes_per_s;
                read_med[r] = rl.read_median_bytes_per_s;
                dot_rate[r] = rl.dot_ops_per_s;
            }
        }
        st_engine_close(e);
    }
    if (rc)
        return rc;
    double rss = st_peak_rss_bytes() / 1048576.0;
    /* Decode reads the weights and the cache of every token before it; on
     * average n_prompt + n_gen / 2 are cached during the timed decode. */
    double ctx = (double)n_prompt + (double)n_gen / 2.0;
    double dec_bytes = roofline ? rl.weight_bytes + ctx * rl.kv_bytes_per_token : 0;
    for (int r = 0; roofline && r < reps; r++) {
        dec_frac[r] = dec_bytes > 0 && read_bw[r] > 0 ? decode[r] * dec_bytes / read_bw[r] : 0;
        dec_frac_of_median[r] =
            dec_bytes > 0 && read_med[r] > 0 ? decode[r] * dec_bytes / read_med[r] : 0;
        pre_frac[r] = rl.ops_per_token > 0 && dot_rate[r] > 0
                          ? prefill[r] * rl.ops_per_token / dot_rate[r] : 0;
    }
    /* The ceilings of the median probe readings; the fractions are the
     * medians of each rep's own. */
    double bw_med = roofline ? median(read_bw, (int)reps) : 0;
    double bw_median_pass = roofline ? median(read_med, (int)reps) : 0;
    double dot_med = roofline ? median(dot_rate, (int)reps) : 0;
    double dec_ceiling = dec_bytes > 0 ? bw_med / dec_bytes : 0;
    double pre_ceiling = roofline && rl.ops_per_token > 0 ? dot_med / rl.ops_per_token : 0;
    double dec_frac_med = roofline ? median(dec_frac, (int)reps) : 0;
    double dec_frac_of_median_med = roofline ? median(dec_frac_of_median, (int)reps) : 0;
    double pre_frac_med = roofline ? median(pre_frac, (int)reps) : 0;
    double pre_med = median(prefill, (int)reps), dec_med = median(decode, (int)reps);
    if (json) {
        st_json j;
        st_json_init(&j, stdout, false);
        st_json_begin_object(&j);
        st_json_key(&j, "manifest");
        st_json_string(&j, manifest);
        st_json_key(&j, "threads");
        st_json_uint(&j, threads);
        st_json_key(&j, "prompt_tokens");
        st_json_int(&j, n_prompt);
        st_json_key(&j, "gen_tokens");
        st_json_int(&j, n_gen);
        st_json_key(&j, "warmup");
        st_json_bool(&j, warmup);
        json_list(&j, "load_s", load, (int)reps);
        json_list(&j, "prefill_tok_s", prefill, (int)reps);
        json_list(&j, "decode_tok_s", decode, (int)reps);
        json_list(&j, "prompt_cached_tokens", cached, (int)reps);
        st_json_key(&j, "peak_rss_mb");
        st_json_double(&j, rss);
        st_json_key(&j, "cpu");
        st_json_string(&j, st_cpu_summary());
        st_json_key(&j, "kv_type");
        st_json_string(&j, kv_type);
        st_json_key(&j, "kv_bytes_per_token");
        st_json_uint(&j, kv_bytes);
        st_json_key(&j, "roofline");
        if (roofline) {
            st_json_begin_object(&j);
            st_json_key(&j, "read_bytes_per_s");
            st_json_double(&j, bw_med);
            st_json_key(&j, "dot_ops_per_s");
            st_json_double(&j, dot_med);
            st_json_key(&j, "read_median_bytes_per_s");
            st_json_double(&j, bw_median_pass);
            json_list(&j, "read_bytes_per_s_reps", read_bw, (int)reps);
            json_list(&j, "read_median_bytes_per_s_reps", read_med, (int)reps);
            json_list(&j, "dot_ops_per_s_reps", dot_rate, (int)reps);
            json_list(&j, "decode_fraction_reps", dec_frac, (int)reps);
            json_list(&j, "decode_fraction_of_median_reps", dec_frac_of_median, (int)reps);
            json_list(&j, "prefill_fraction_reps", pre_frac, (int)reps);
            st_json_key(&j, "weight_type");
            st_json_string(&j, rl.weight_type);
            st_json_key(&j, "weight_bytes");
            st_json_double(&j, rl.weight_bytes);
            st_json_key(&j, "kv_bytes_per_token");
            st_json_double(&j, rl.kv_bytes_per_token);
            st_json_key(&j, "ops_per_token");
            st_json_double(&j, rl.ops_per_token);
            st_json_key(&j, "decode_context");
            st_json_double(&j, ctx);
            st_json_key(&j, "decode_ceiling_tok_s");
            st_json_double(&j, dec_ceiling);
            st_json_key(&j, "decode_fraction");
            st_json_double(&j, dec_frac_med);
            st_json_key(&j, "decode_fraction_of_median");
            st_json_double(&j, dec_frac_of_median_med);
            st_json_key(&j, "prefill_ceiling_tok_s");
            st_json_double(&j, pre_ceiling);
            st_json_key(&j, "prefill_fraction");
            st_json_double(&j, pre_frac_med);
            st_json_end_object(&j);
        } else {
            st_json_null(&j);
        }
        st_json_key(&j, "backend");
        st_json_string(&j, backend);
        st_json_key(&j, "device");
        st_json_string(&j, device[0] ? device : NULL);
        st_json_key(&j, "device_bytes");
        st_json_uint(&j, device_bytes);
        json_list(&j, "kernel_compile_ms", compile_ms, (int)reps);
        st_json_key(&j, "kernel_cache_hit");
        st_json_begin_array(&j);
        for (int r = 0; r < reps; r++)
            st_json_bool(&j, cache_hit[r]);
        st_json_end_array(&j);
        st_json_end_object(&j);
        st_json_end(&j);
    } else {
        printf("stretch bench: %s, %u threads, %lld prompt + %lld generated tokens, %lld reps%s\n",
               manifest, threads, n_prompt, n_gen, reps, warmup ? ", each after a warm-up" : "");
        print_stat("load s", load, (int)reps);
        print_stat("prefill tok/s", prefill, (int)reps);
        print_stat("decode tok/s", decode, (int)reps);
        printf("%-16s %.1f MB\n", "peak RSS", rss);
        printf("%-16s %s, %" PRIu64 " bytes per token\n", "kv cache", kv_type, kv_bytes);
        printf("%-16s %s\n", "cpu", st_cpu_summary());
        if (roofline) {
            printf("%-16s read %.1f GB/s (median pass %.1f), dot products %.1f Gop/s (%s prefill "
                   "kernel), %u threads (medians of the reps' probes)\n",
                   "roofline", bw_med / 1e9, bw_median_pass / 1e9, dot_med / 1e9,
                   rl.weight_type ? rl.weight_type : "?", threads);
            printf("%-16s ceiling %.1f tok/s at %.0f cached tokens (%.1f MB of weights + "
                   "%.0f x %.0f bytes of cache per token); median %.1f tok/s\n",
                   "  decode", dec_ceiling, ctx, rl.weight_bytes / 1e6, ctx,
                   rl.kv_bytes_per_token, dec_med);
            printf("%-16s ceiling %.1f tok/s (%.1f Mop per token); median %.1f tok/s\n",
                   "  prefill", pre_ceiling, rl.ops_per_token / 1e6, pre_med);
            for (int r = 0; r < reps; r++)
                printf("%-16s rep %d: read %.1f GB/s (median pass %.1f), decode %.1f tok/s = "
                       "%.1f%% (%.1f%% of the median pass), prefill %.1f%%\n", "  per rep", r + 1,
                       read_bw[r] / 1e9, read_med[r] / 1e9, decode[r], 100 * dec_frac[r],
                       100 * dec_frac_of_median[r], 100 * pre_frac[r]);
            printf("%-16s decode %.1f%%, prefill %.1f%% of the ceiling (medians of the reps); "
                   "decode %.1f%% of the median pass's\n", "  fraction", 100 * dec_frac_med,
                   100 * pre_frac_med, 100 * dec_frac_of_median_med);
        }
        if (strcmp(backend, "cpu") != 0) {
            printf("%-16s %s on '%s', %.1f MB of device memory\n", "backend", backend, device,
                   device_bytes / 1048576.0);
            for (int r = 0; r < reps; r++)
                printf("%-16s rep %d: %.1f ms (%s)\n", "kernels", r + 1, compile_ms[r],
                       cache_hit[r] ? "binary cache" : "built from source");
        }
    }
    return 0;
}
