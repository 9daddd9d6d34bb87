/* Thread pool with completions delivered on a libevent loop; see workq.h. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "workq.h"

struct job {
	struct job *next;
	workq_fn work, done;
	void *arg;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo_head, *todo_tail; /* waiting for a worker */
	struct job *done_head, *done_tail; /* finished, waiting for the loop */
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
	int efd;
	struct event *ev;
};

static void push(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *worker(void *arg)
{
	struct workq *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->todo_head && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		struct job *j = q->todo_head;
		if (!j)
			break; /* stopping and nothing left */
		q->todo_head = j->next;
		if (!q->todo_head)
			q->todo_tail = NULL;
		pthread_mutex_unlock(&q->lock);
		j->work(j->arg);
		pthread_mutex_lock(&q->lock);
		push(&q->done_head, &q->done_tail, j);
		uint64_t one = 1;
		(void)!write(q->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void run_done(struct workq *q)
{
	pthread_mutex_lock(&q->lock);
	struct job *j = q->done_head;
	q->done_head = q->done_tail = NULL;
	pthread_mutex_unlock(&q->lock);
	while (j) {
		struct job *n = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
		j = n;
	}
}

static void on_event(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct workq *q = arg;
	uint64_t n;
	(void)!read(q->efd, &n, sizeof(n));
	run_done(q);
}

int workq_new(struct event_base *base, unsigned nthreads, struct workq **out)
{
	struct workq *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->threads = calloc(nthreads, sizeof(pthread_t));
	q->ev = q->efd >= 0 ? event_new(base, q->efd, EV_READ | EV_PERSIST, on_event, q) : NULL;
	if (q->efd < 0 || !q->threads || !q->ev || event_add(q->ev, NULL) < 0) {
		workq_free(q);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		int r = pthread_create(&q->threads[i], NULL, worker, q);
		if (r != 0) {
			workq_free(q);
			return log_error_errno(r, NULL, "cannot start worker thread");
		}
		q->nthreads++;
	}
	*out = q;
	return 0;
}

int workq_submit(struct workq *q, workq_fn work, workq_fn done, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		free(j);
		return -ESHUTDOWN;
	}
	push(&q->todo_head, &q->todo_tail, j);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void workq_free(struct workq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	run_done(q);
	if (q->ev)
		event_free(q->ev);
	if (q->efd >= 0)
		close(q->efd);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->threads);
	free(q);
}
