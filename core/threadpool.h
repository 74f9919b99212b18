/*
 * core/threadpool.h - a persistent set of worker threads that run one task
 * at a time on every thread (the caller is thread 0) and return when all
 * are done: the fork/join of every matmul and attention step. Workers spin
 * briefly between tasks (a decode step is ~150 tasks of tens of
 * microseconds, too short for a futex round trip) and then sleep.
 */
#ifndef ST_CORE_THREADPOOL_H
#define ST_CORE_THREADPOOL_H

#include <stdint.h>
#include <stretch/common.h>

#include "diag.h"

typedef struct st_threadpool st_threadpool;

/* A task body: thread `ith` of `nth` does its share of `arg`. */
typedef void (*st_task_fn)(void *arg, uint32_t ith, uint32_t nth);

/* n_threads >= 1 (1 = no workers; the caller does everything). */
st_status st_threadpool_create(uint32_t n_threads, st_threadpool **out, st_diag *diag);
void st_threadpool_destroy(st_threadpool *pool);
uint32_t st_threadpool_size(const st_threadpool *pool);

/* Run fn(arg, ith, nth) on every thread and wait for all of them. Only one
 * thread may call this at a time; a NULL pool runs fn(arg, 0, 1). */
void st_threadpool_run(st_threadpool *pool, st_task_fn fn, void *arg);

#endif
