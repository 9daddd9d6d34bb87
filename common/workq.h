/* A small thread pool for work that must not run on an event loop
 * (network transfers, unpacking, tree walks). work() runs on a worker
 * thread; done() then runs on the loop thread, so results are handed back
 * to loop-only code (ipc replies, in-memory indexes) without locks. */
#pragma once

#include <event2/event.h>

typedef void (*workq_fn)(void *arg);

struct workq;

int workq_new(struct event_base *base, unsigned nthreads, struct workq **out);
/* Queue work; done may be NULL. Returns 0 or -ENOMEM / -ESHUTDOWN. */
int workq_submit(struct workq *q, workq_fn work, workq_fn done, void *arg);
/* Stop accepting work, wait for running and queued work to finish, run the
 * remaining done callbacks, free the pool. Call on the loop thread. */
void workq_free(struct workq *q);
