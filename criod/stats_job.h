/* A stats job of stats_service.c: the figures sampled for one call, as
 * they come in (cgroup files at once; imaged's and netd's replies later),
 * shared with stats_metrics.c (ListPodSandboxMetrics answers from the
 * same samples). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgroup_stats.h"
#include "cri.h"

#define MAX_IFACES 32

struct stats_job;

struct iface {
	char name[16];
	uint64_t rx_bytes, rx_errors, tx_bytes, tx_errors;
};

/* One container's figures, as they come in. */
struct cstat {
	struct stats_job *job;
	char id[65];
	int64_t ts;
	struct cg_stats cg;
	bool have_cores;
	uint64_t cores;
	bool have_fs;
	uint64_t fs_bytes, fs_inodes;
	int64_t fs_ts;
	char fs_mount[256];
};

/* One pod's; its containers are job->cs[first .. first + n). */
struct pstat {
	struct stats_job *job;
	char id[65];
	int64_t ts;
	struct cg_stats cg;
	bool have_cores;
	uint64_t cores;
	bool have_net;
	int64_t net_ts;
	char net_default[16];
	struct iface ifs[MAX_IFACES];
	size_t n_ifs;
	size_t first, n;
};

enum job_kind { JOB_CONTAINER, JOB_CONTAINERS, JOB_POD, JOB_PODS, JOB_METRICS };

struct stats_job {
	struct criod *c;
	struct grpc_call *call;
	enum job_kind kind;
	char req[72];
	struct cstat *cs;
	size_t n_cs;
	struct pstat *ps;
	size_t n_ps;
	int pending;
	bool issued; /* every call is out: the last reply may finish */
	/* JOB_CONTAINERS, JOB_PODS, JOB_METRICS: the List* or Stream*
	 * response the items are answered with (list_reply.h) */
	const ProtobufCMessageDescriptor *list;
};

/* Sample every pod selected (one, or all that pass f; NULL: all) and
 * their containers; the reply is built when every figure is in. */
void stats_pods_job(struct criod *c, struct grpc_call *call, enum job_kind kind, struct pod *one,
		    const Runtime__V1__PodSandboxStatsFilter *f, const ProtobufCMessageDescriptor *list);
/* Drop the CPU samples of ids that are gone. */
void stats_samples_prune(struct criod *c);

/* stats_metrics.c: the JOB_METRICS reply (ListPodSandboxMetrics). */
void stats_metrics_reply(struct stats_job *job);
/* The descriptors, for ListMetricDescriptors. */
void stats_metric_descriptors(struct grpc_call *call, const ProtobufCMessage *msg, void *ud);
void stats_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *msg, void *ud);
void stats_stream_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *msg, void *ud);
