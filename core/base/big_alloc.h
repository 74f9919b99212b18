/*
 * core/base/big_alloc.h - large buffers that the kernels stream (the
 * repacked weights, the roofline's read probe), on transparent huge pages
 * where the kernel offers them. The KV cache stays in per-layer malloc'd
 * buffers (docs/forward.md, "Model loading", says why).
 *
 * Why: decode reads every weight byte and the whole cache once per token,
 * so it runs at the read rate of the memory they sit in. On the 2-core
 * EPYC VM of docs/RESULTS.md, two threads reading a 128 MiB buffer got
 * 60-65 GB/s from one advised with MADV_HUGEPAGE against 41-58 GB/s from
 * 4 KiB pages in the same process (and 34-37 against 30-35 while the host
 * was busy). With THP in `madvise` mode, the Debian default, only advised
 * memory gets huge pages, and malloc never advises.
 */
#ifndef ST_CORE_BIG_ALLOC_H
#define ST_CORE_BIG_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* A zeroed buffer of `bytes`, 2 MiB aligned and advised for huge pages
 * when the OS has them (Linux), else from calloc; NULL when out of memory.
 * Free it with st_big_free and the same size. STRETCH_NO_HUGEPAGES=1 in the
 * environment turns the advice off (for A/B measurements). */
void *st_big_alloc(size_t bytes);
void st_big_free(void *p, size_t bytes);

/* Whether st_big_alloc's buffers are advised (the OS has the call and the
 * environment did not turn it off). */
bool st_big_alloc_huge(void);

#endif
