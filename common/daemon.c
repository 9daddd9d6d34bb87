/* Start-up and shutdown shared by every component; see daemon.h. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_show.h"
#include "confine.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "log.h"
#include "macro.h"
#include "procstat.h"
#include "prom.h"
#include "util.h"

static _noreturn_ void usage(const char *component, int status)
{
	fprintf(status ? stderr : stdout,
		"Usage: %s [--config FILE] [--log-level LEVEL] [--seccomp-log] [--confine-probe=SYSCALL]\n"
		"       %s [--config FILE] config|check\n"
		"  config             print the configuration in force, every key with where it\n"
		"                     came from (default, or the file and line), and exit\n"
		"  check              validate the configuration file and its drop-ins and exit:\n"
		"                     0, or 1 naming the file, line and key of the first error\n"
		"  --config FILE      configuration file (default " CRIOD_DEFAULT_CONFIG
		", drop-ins in FILE.d/)\n"
		"  --log-level LEVEL  debug, info, warn or error (overrides [log] level)\n"
		"  --seccomp-log      let calls outside the seccomp allowlist through, logged by\n"
		"                     the kernel (to find what a filter lacks; never in production)\n"
		"  --confine-probe=SYSCALL\n"
		"                     confine as usual, make SYSCALL with zero arguments, log\n"
		"                     its result and exit (shows the filter refuses it)\n"
		"  --version          print the version and exit\n"
		"  --help             print this help and exit\n",
		component, component);
	exit(status);
}

static const char *self_component;

static void on_signal(evutil_socket_t sig, short what _unused_, void *arg)
{
	struct daemon *d = arg;
	log_info(NULL, "stopping", "signal=%s", strsignal((int)sig));
	event_base_loopbreak(d->base);
}

void daemon_configure(struct daemon *d, const char *component, int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"seccomp-log", no_argument, NULL, 'S'},
		{"confine-probe", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *level = NULL;
	int o;

	/* One malloc arena for the whole daemon: its worker threads do short
	 * jobs, and per-thread arenas (glibc's default) keep what a burst of
	 * work used long after it ended, where malloc_trim can release it
	 * from a single arena. */
	mallopt(M_ARENA_MAX, 1);
	memset(d, 0, sizeof(*d));
	d->component = component;
	self_component = component;
	log_init(component);
	while ((o = getopt_long(argc, argv, "c:l:Vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'V':
			printf("%s %s\n", component, PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(component, 0);
		case 'S':
			confine_log_only = true;
			break;
		case 'P':
			confine_probe = optarg;
			break;
		default:
			usage(component, 2);
		}
	}
	if (optind + 1 == argc && (strcmp(argv[optind], "config") == 0 || strcmp(argv[optind], "check") == 0))
		exit(config_command(component, argv[optind], config_path));
	if (optind < argc)
		usage(component, 2);

	_cleanup_free_ char *error = NULL;
	if (config_load(&d->cfg, config_path, &error) < 0) {
		log_error(NULL, "bad configuration", "error=\"%s\"", error ? error : "unknown");
		exit(2);
	}
	int lvl = log_level_from_string(level ? level : d->cfg.log_level);
	if (lvl < 0) {
		log_error(NULL, "bad log level", "level=%s", level ? level : d->cfg.log_level);
		exit(2);
	}
	log_set_level((enum log_level)lvl);
	d->config_path = config_path;
	d->log_level = level ? level : d->cfg.log_level;
}

void daemon_init(struct daemon *d, const char *component, int argc, char **argv)
{
	daemon_configure(d, component, argc, argv);

	signal(SIGPIPE, SIG_IGN);
	d->base = event_base_new();
	if (!d->base) {
		log_error(NULL, "cannot create event loop");
		exit(1);
	}
	d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
	if (!d->sig_term || !d->sig_int || evsignal_add(d->sig_term, NULL) < 0 || evsignal_add(d->sig_int, NULL) < 0) {
		log_error(NULL, "cannot install signal handlers");
		exit(1);
	}
}

int daemon_run(struct daemon *d)
{
	log_info(NULL, "ready", "version=%s pid=%d uid=%u", PACKAGE_VERSION, (int)getpid(), (unsigned)getuid());
	if (event_base_dispatch(d->base) < 0)
		return log_error_errno(EIO, NULL, "event loop failed");
	return 0;
}

void daemon_fini(struct daemon *d)
{
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->base)
		event_base_free(d->base);
	config_free(&d->cfg);
	log_info(NULL, "stopped");
}

int daemon_serve_root(struct daemon *d, const char *path, const struct ipc_method *methods, size_t n,
		      void *userdata, struct ipc_server **out)
{
	if (geteuid() != 0)
		return log_error_errno(EPERM, NULL, "must run as root");
	uid_t allowed[2] = {0, 0};
	gid_t gid;
	int r = lookup_user(d->cfg.criod_user, &allowed[1], &gid);
	if (r < 0)
		return log_error_errno(r, NULL, "criod user not found; create it or set [criod] user",
				       "user=%s", d->cfg.criod_user);
	r = mkdir_p(d->cfg.run_dir, 0755);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot create run directory", "path=%s", d->cfg.run_dir);
	/* World-connectable on purpose: every peer is checked with SO_PEERCRED,
	 * and a refused peer is logged rather than silently bounced by the
	 * filesystem. */
	r = ipc_server_new(d->base, path, 0666, allowed, 2, methods, n, userdata, out);
	if (r < 0)
		return r;
	ipc_server_set_frame_timeout(*out, d->cfg.rpc_frame_timeout_ms);
	ipc_server_set_max_buffered(*out, d->cfg.rpc_max_buffered);
	log_info(NULL, "listening", "path=%s criod_user=%s criod_uid=%u", path, d->cfg.criod_user,
		 (unsigned)allowed[1]);
	return 0;
}

void daemon_ping_fill(Criod__Internal__PingResponse *resp)
{
	criod__internal__ping_response__init(resp);
	resp->component = (char *)self_component;
	resp->version = (char *)PACKAGE_VERSION;
	resp->pid = getpid();
	resp->uid = getuid();
}

void daemon_handle_ping(struct ipc_call *call, const ProtobufCMessage *req _unused_, int *fds _unused_, size_t nfds _unused_, void *userdata _unused_)
{
	Criod__Internal__PingResponse resp;
	daemon_ping_fill(&resp);
	ipc_call_reply(call, &resp.base, NULL, 0);
}

void daemon_process_figures(struct Criod__Internal__ProcessFigures *pf)
{
	struct proc_figures f;
	procstat_self(&f);
	static char *missing[3];
	criod__internal__process_figures__init(pf);
	pf->cpu_ns = f.cpu_ns;
	pf->threads = f.threads;
	pf->start_time_ns = f.start_time_ns;
	pf->rss_bytes = f.rss_bytes;
	pf->open_fds = f.open_fds;
	pf->missing = missing;
	if (!f.have_stat)
		missing[pf->n_missing++] = (char *)"stat";
	if (!f.have_rss)
		missing[pf->n_missing++] = (char *)"rss";
	if (!f.have_fds)
		missing[pf->n_missing++] = (char *)"fds";
}

void daemon_hist_figures(const struct prom_hist *h, struct Criod__Internal__HistogramFigures *out)
{
	criod__internal__histogram_figures__init(out);
	out->upper_bounds = (double *)h->bounds;
	out->n_upper_bounds = h->n_bounds;
	out->counts = (uint64_t *)h->counts;
	out->n_counts = h->n_bounds + 1;
	out->sum = h->sum;
}
