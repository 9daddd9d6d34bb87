/* A standby conmon: one the launcher starts ahead of the next request, so
 * that CreateContainer does not wait for two forks, an exec and the
 * dynamic loader (docs/PERFORMANCE.md, issue 20).
 *
 * The launcher (spawnd_launch.c) starts `conmon --standby <padding>`
 * detached, exactly as it starts a conmon for a request, with stdin,
 * stdout and stderr on /dev/null and fd 3 its end of a SOCK_SEQPACKET
 * socketpair whose other end only the launcher holds. The standby does
 * nothing but wait on fd 3 for one message:
 *
 *   payload  the command line the launcher would have executed, argv[0]
 *            included, as NUL-terminated strings back to back, at most
 *            STANDBY_ARGV_MAX bytes (launch_argv_build made and checked it);
 *   rights   exactly two descriptors: the log (its stdout and stderr) and
 *            the sync pipe (its fd 3, --sync-fd 3).
 *
 * It then writes that command line over its own (the padding makes room:
 * /proc/<pid>/cmdline, ps and spawnd's tests see `--id <id>`) and runs as
 * that conmon. EOF on fd 3 (the launcher stopped or replaced it) ends it
 * with status 0. Nothing else can reach it: the socket is not bound to a
 * path, and the standby holds no container's anything until the message. */
#pragma once

#include <stddef.h>

#define STANDBY_ARG "--standby"
#define STANDBY_FD 3
#define STANDBY_ARGV_MAX 8192 /* bytes: a log path of LAUNCH_PATH_MAX and the rest fit */
#define STANDBY_ARGC_MAX 32   /* LAUNCH_ARGV_MAX */

/* argv (NULL-terminated) packed into buf as the payload; its length, or
 * -E2BIG when it does not fit in size (or has more than STANDBY_ARGC_MAX
 * strings), -EINVAL for an empty argv. */
int standby_pack(const char *const *argv, char *buf, size_t size);

/* The payload buf[0..n) split into argv (NULL-terminated, pointing into
 * buf, at most max - 1 strings); the count, or -EINVAL for a payload that
 * is empty, not NUL-terminated or has an empty string, -E2BIG for too
 * many strings. */
int standby_unpack(char *buf, size_t n, char **argv, size_t max);

/* conmon's side, called when argv[1] is STANDBY_ARG: waits for the
 * message on STANDBY_FD, moves the two descriptors to 1, 2 and 3, writes
 * the new command line over argv's strings and stores a copy of it
 * (static: conmon's argv from then on) in *nargc and *nargv. 0, -ECONNRESET
 * when the launcher closed the socket first, another negative errno when
 * the message is not one. */
int standby_receive(int argc, char **argv, int *nargc, char ***nargv);
