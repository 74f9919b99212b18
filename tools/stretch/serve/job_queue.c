/*
 * tools/stretch/serve/job_queue.c - the first-come-first-served queue of
 * jobs a model runner or a sentence encoder takes its work from.
 */
#include "server.h"

void st_job_queue_push(st_job_queue *q, st_job *job)
{
    job->queue_next = NULL;
    if (q->tail)
        q->tail->queue_next = job;
    else
        q->head = job;
    q->tail = job;
    q->n++;
}

st_job *st_job_queue_pop(st_job_queue *q)
{
    st_job *job = q->head;
    if (!job)
        return NULL;
    q->head = job->queue_next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    atomic_store(&job->running, 1);
    return job;
}
