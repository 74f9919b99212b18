/* Fork/join thread pool: a generation counter announces a task; workers
 * spin on it for a while, then sleep on a condition variable. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ST_PAUSE() _mm_pause()
#else
#define ST_PAUSE() ((void)0)
#endif

/* Spins before a waiting thread sleeps or yields: long enough to bridge the
 * gap between two tasks of one forward step (microseconds), short enough
 * not to burn a core the machine's other processes need. */
#define ST_SPIN_LIMIT 4000

/* The pool's state word: generation in the high 16 bits, a "closed" bit,
 * and the number of workers inside the current task. A worker joins a task
 * only while it is open; the caller closes it when its own share is done
 * and waits only for the workers that joined. So a worker the OS has not
 * scheduled never holds up a step: tasks hand out work from shared
 * counters, and whoever runs takes it. */
#define ST_ACTIVE_MASK 0x7fffu
#define ST_CLOSED 0x8000u
#define ST_GEN(s) ((s) >> 16)

typedef struct st_worker {
    st_threadpool *pool;
    uint32_t ith;
    pthread_t thread;
} st_worker;

struct st_threadpool {
    uint32_t n_threads;
    st_worker *workers;      /* n_threads - 1 */
    uint32_t n_started;
    st_task_fn fn;
    void *arg;
    atomic_uint state;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* Workers asleep or about to be: changed under lock, read without it
     * by open_generation (seq_cst on both sides, with `state`, so a worker
     * either sees the new generation or is seen and woken). */
    atomic_uint n_sleeping;
};

static void *worker_main(void *p)
{
    st_worker *w = p;
    st_threadpool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned st;
        int spins = 0;
        while (ST_GEN(st = atomic_load_explicit(&pool->state, memory_order_acquire)) == seen) {
            if (++spins < ST_SPIN_LIMIT) {
                ST_PAUSE();
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (ST_GEN(atomic_load(&pool->state)) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->lock);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->lock);
            spins = 0;
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = ST_GEN(st);
        /* Join the task unless it closed (or moved on) meanwhile. */
        bool joined = false;
        while (ST_GEN(st) == seen && !(st & ST_CLOSED)) {
            if (atomic_compare_exchange_weak_explicit(&pool->state, &st, st + 1,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                joined = true;
                break;
            }
        }
        if (!joined)
            continue;
        pool->fn(pool->arg, w->ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->state, 1, memory_order_release);
    }
}

st_status st_threadpool_create(uint32_t n_threads, st_threadpool **out, st_diag *diag)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "thread pool: %u threads requested, expected 1..1024", n_threads);
    st_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "thread pool: out of memory");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    atomic_init(&pool->state, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->n_sleeping, 0);
    if (n_threads > 1) {
        pool->workers = calloc(n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            st_threadpool_destroy(pool);
            return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "thread pool: out of memory");
        }
        for (uint32_t i = 0; i + 1 < n_threads; i++) {
            st_worker *w = &pool->workers[i];
            w->pool = pool;
            w->ith = i + 1;
            int rc = pthread_create(&w->thread, NULL, worker_main, w);
            if (rc != 0) {
                st_threadpool_destroy(pool);
                return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                                   "thread pool: cannot start thread %u: %s", i + 1, strerror(rc));
            }
            pool->n_started++;
        }
    }
    *out = pool;
    return ST_OK;
}

/* Open a new generation (no workers inside, not closed) and wake sleepers.
 * Only the caller writes a new generation, so no lock is needed for that;
 * the lock is taken only when a worker sleeps. It was taken at every task
 * (151 a decoded token), which showed in profiles: the spinning worker's
 * core and this one traded the mutex's line each time. */
static void open_generation(st_threadpool *pool)
{
    unsigned gen = ST_GEN(atomic_load(&pool->state)) + 1;
    atomic_store(&pool->state, (gen & 0xffffu) << 16);
    if (atomic_load(&pool->n_sleeping)) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
}

void st_threadpool_destroy(st_threadpool *pool)
{
    if (!pool)
        return;
    if (pool->n_started) {
        atomic_store(&pool->stop, true);
        open_generation(pool);
        for (uint32_t i = 0; i < pool->n_started; i++)
            pthread_join(pool->workers[i].thread, NULL);
    }
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

uint32_t st_threadpool_size(const st_threadpool *pool)
{
    return pool ? pool->n_threads : 1;
}

void st_threadpool_run(st_threadpool *pool, st_task_fn fn, void *arg)
{
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    open_generation(pool);
    fn(arg, 0, pool->n_threads);
    /* Close: late workers skip this task; wait for those inside. */
    atomic_fetch_or_explicit(&pool->state, ST_CLOSED, memory_order_acq_rel);
    int spins = 0;
    while (atomic_load_explicit(&pool->state, memory_order_acquire) & ST_ACTIVE_MASK) {
        if (++spins < ST_SPIN_LIMIT)
            ST_PAUSE();
        else
            sched_yield();
    }
}
