/*
 * core/threadpool.h - a persistent set of worker threads that run one task
 * at a time with the caller (thread 0): the fork/join of every matmul and
 * attention step. Workers spin briefly between tasks (a decode step is
 * ~150 tasks of tens of microseconds, too short for a futex round trip)
 * and then sleep. A worker the OS has not scheduled does not hold a step
 * up: the caller waits only for workers that joined the task.
 */
#ifndef ST_CORE_THREADPOOL_H
#define ST_CORE_THREADPOOL_H

#include <stdint.h>
#include <stretch/common.h>

#include "diag.h"

typedef struct st_threadpool st_threadpool;

/* A task body, called by thread `ith` (unique, < nth) for `arg`. The
 * caller (ith 0) always runs it; a worker runs it only if it wakes while
 * the task is open, so a body must take its work from shared counters
 * (whoever runs takes what is left), never a fixed share per ith
 * (work_split.h: a range per ith first, then the others' leftovers). */
typedef void (*st_task_fn)(void *arg, uint32_t ith, uint32_t nth);

/* n_threads >= 1 (1 = no workers; the caller does everything). */
st_status st_threadpool_create(uint32_t n_threads, st_threadpool **out, st_diag *diag);
void st_threadpool_destroy(st_threadpool *pool);
uint32_t st_threadpool_size(const st_threadpool *pool);

/* Run fn(arg, 0, nth) on the caller and fn(arg, ith, nth) on every worker
 * that joins in time; return when all who joined are done. Only one thread
 * may call this at a time; a NULL pool runs fn(arg, 0, 1). */
void st_threadpool_run(st_threadpool *pool, st_task_fn fn, void *arg);

#endif
