/* netd's IP address management; see ipam.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipam.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#define OWNER_MAX 256

static size_t addr_len(int family) { return family == AF_INET ? 4 : 16; }

int ipam_parse_subnet(const char *cidr, int family, struct ipam_subnet *out, char *err, size_t errlen)
{
	char buf[IPAM_CIDR_MAX];
	char text[IPAM_ADDR_MAX];
	struct ipam_subnet s;
	const char *slash, *p;
	unsigned prefix = 0;

	memset(&s, 0, sizeof(s));
	if (!cidr || !*cidr)
		return errf(err, errlen, -EINVAL, "empty subnet");
	if (strlen(cidr) >= sizeof(buf))
		return errf(err, errlen, -EINVAL, "'%.60s' is too long for a subnet", cidr);
	slash = strchr(cidr, '/');
	if (!slash || slash == cidr || !slash[1] || strlen(slash + 1) > 3)
		return errf(err, errlen, -EINVAL, "'%s' is not ADDRESS/PREFIX", cidr);
	for (p = slash + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return errf(err, errlen, -EINVAL, "'%s': the prefix length is not a number", cidr);
		prefix = prefix * 10 + (unsigned)(*p - '0');
	}
	memcpy(buf, cidr, (size_t)(slash - cidr));
	buf[slash - cidr] = '\0';
	s.family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (family && family != s.family)
		return errf(err, errlen, -EINVAL, "'%s' is not an %s subnet", cidr, family == AF_INET ? "IPv4" : "IPv6");
	if (inet_pton(s.family, buf, s.net) != 1)
		return errf(err, errlen, -EINVAL, "'%s': '%s' is not an %s address", cidr, buf,
			    s.family == AF_INET ? "IPv4" : "IPv6");
	if (s.family == AF_INET && (prefix < 8 || prefix > 30))
		return errf(err, errlen, -EINVAL, "'%s': the prefix length must be 8..30", cidr);
	if (s.family == AF_INET6 && (prefix < 64 || prefix > 126))
		return errf(err, errlen, -EINVAL, "'%s': the prefix length must be 64..126", cidr);
	s.prefix = prefix;
	s.host_bits = (unsigned)addr_len(s.family) * 8 - prefix;
	for (unsigned bit = prefix; bit < addr_len(s.family) * 8; bit++)
		if (s.net[bit / 8] & (0x80 >> (bit % 8)))
			return errf(err, errlen, -EINVAL, "'%s' has host bits set (the network address is expected)", cidr);
	if (s.family == AF_INET) {
		if (s.net[0] == 0 || s.net[0] == 127 || s.net[0] >= 224)
			return errf(err, errlen, -EINVAL, "'%s' is not a unicast network (0/8, loopback, multicast or reserved)",
				    cidr);
	} else {
		static const unsigned char zero[16];
		if (memcmp(s.net, zero, 8) == 0 || s.net[0] == 0xff || (s.net[0] == 0xfe && (s.net[1] & 0xc0) == 0x80))
			return errf(err, errlen, -EINVAL, "'%s' is not a global or unique local unicast network", cidr);
	}
	if (!inet_ntop(s.family, s.net, text, sizeof(text)))
		return errf(err, errlen, -EINVAL, "'%s' cannot be formatted", cidr);
	snprintf(s.cidr, sizeof(s.cidr), "%s/%u", text, prefix);
	snprintf(s.key, sizeof(s.key), "%s-%u", text, prefix);
	s.first = 2; /* network address and gateway */
	if (s.family == AF_INET)
		s.last = (UINT64_C(1) << s.host_bits) - 2; /* not broadcast */
	else
		s.last = s.host_bits == 64 ? UINT64_MAX : (UINT64_C(1) << s.host_bits) - 1;
	*out = s;
	return 0;
}

void ipam_addr_at(const struct ipam_subnet *s, uint64_t off, unsigned char addr[16])
{
	size_t len = addr_len(s->family);

	memset(addr, 0, 16);
	memcpy(addr, s->net, len);
	for (size_t i = len; i-- > 0 && off;) {
		addr[i] |= (unsigned char)(off & 0xff);
		off >>= 8;
	}
}

int ipam_format(const struct ipam_subnet *s, uint64_t off, char *buf, size_t len)
{
	unsigned char a[16];

	ipam_addr_at(s, off, a);
	if (!inet_ntop(s->family, a, buf, (socklen_t)len))
		return -errno;
	return 0;
}

int ipam_parse_addr(const struct ipam_subnet *s, const char *text, uint64_t *off)
{
	unsigned char a[16];
	size_t len = addr_len(s->family);
	uint64_t v = 0;

	if (!text || strnlen(text, IPAM_ADDR_MAX) >= IPAM_ADDR_MAX || inet_pton(s->family, text, a) != 1)
		return -EINVAL;
	for (unsigned bit = 0; bit < s->prefix; bit++) {
		unsigned char m = (unsigned char)(0x80 >> (bit % 8));
		if ((a[bit / 8] & m) != (s->net[bit / 8] & m))
			return -ERANGE;
	}
	for (size_t i = len > 8 ? len - 8 : 0; i < len; i++)
		v = (v << 8) | a[i];
	if (s->host_bits < 64)
		v &= (UINT64_C(1) << s->host_bits) - 1;
	*off = v;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t ipam_sort_unique(uint64_t *v, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 1; i < n; i++)
		if (v[i] != v[k])
			v[++k] = v[i];
	return k + 1;
}

/* Index of the first element >= x. */
static size_t lower_bound(const uint64_t *v, size_t n, uint64_t x)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int ipam_next_free(const struct ipam_subnet *s, const uint64_t *used, size_t n_used, uint64_t last, uint64_t *out)
{
	uint64_t c, in_range;
	int wraps = 0;

	if (s->first > s->last)
		return -ENOSPC;
	in_range = (s->last == UINT64_MAX ? n_used : lower_bound(used, n_used, s->last + 1)) -
		   lower_bound(used, n_used, s->first);
	/* Every allocatable address is taken (there are last - first + 1). */
	if (in_range > s->last - s->first)
		return -ENOSPC;

	c = last >= s->first && last < s->last ? last + 1 : s->first;
	for (;;) {
		size_t i = lower_bound(used, n_used, c);
		while (i < n_used && used[i] == c && c < s->last) {
			c++;
			i++;
		}
		if (i < n_used && used[i] == c) { /* c == last and taken: wrap around */
			if (++wraps > 1)
				return -ENOSPC;
			c = s->first;
			continue;
		}
		*out = c;
		return 0;
	}
}

/* ---- persistent allocations ---- */

int ipam_open(struct ipam *im, const char *root)
{
	int r;

	memset(im, 0, sizeof(*im));
	r = mkdir_p(root, 0700);
	if (r < 0)
		return r;
	im->root = strdup(root);
	if (!im->root)
		return -ENOMEM;
	pthread_mutex_init(&im->lock, NULL);
	return 0;
}

void ipam_close(struct ipam *im)
{
	if (!im->root)
		return;
	free(im->root);
	im->root = NULL;
	pthread_mutex_destroy(&im->lock);
}

static bool key_is_valid(const char *key)
{
	if (!key || !*key || key[0] == '.' || strnlen(key, IPAM_CIDR_MAX) >= IPAM_CIDR_MAX)
		return false;
	for (const char *p = key; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == '.' ||
		      *p == ':' || *p == '-'))
			return false;
	return true;
}

static bool addr_text_is_valid(const char *addr)
{
	unsigned char a[16];

	if (!addr || strnlen(addr, IPAM_ADDR_MAX) >= IPAM_ADDR_MAX)
		return false;
	return inet_pton(strchr(addr, ':') ? AF_INET6 : AF_INET, addr, a) == 1;
}

/* The owner written in an allocation file, trimmed; "" if unreadable. */
static void read_owner(int dfd, const char *name, char owner[OWNER_MAX])
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	ssize_t n;

	owner[0] = '\0';
	if (fd < 0)
		return;
	n = read(fd, owner, OWNER_MAX - 1);
	if (n < 0)
		n = 0;
	owner[n] = '\0';
	while (n > 0 && (owner[n - 1] == '\n' || owner[n - 1] == ' '))
		owner[--n] = '\0';
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int push(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		uint64_t *nv = realloc(*v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static int allocate_locked(struct ipam *im, const struct ipam_subnet *s, const char *pod_id, char addr[IPAM_ADDR_MAX])
{
	_cleanup_free_ char *dir = NULL, *last_path = NULL, *last_text = NULL;
	_cleanup_free_ uint64_t *used = NULL;
	_cleanup_close_ int dfd = -1;
	size_t n = 0, cap = 0;
	uint64_t last = 0, off;
	DIR *d;
	int r;

	if (asprintf(&dir, "%s/%s", im->root, s->key) < 0 || asprintf(&last_path, "%s/.last", dir) < 0)
		return -ENOMEM;
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	d = fdopendir(dup(dfd));
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.' || ipam_parse_addr(s, de->d_name, &off) < 0)
			continue;
		r = push(&used, &n, &cap, off);
		if (r < 0) {
			closedir(d);
			return r;
		}
	}
	closedir(d);
	if (read_file(last_path, 128, &last_text, NULL) == 0) {
		char *end;
		errno = 0;
		last = strtoull(last_text, &end, 10);
		if (errno || end == last_text || (*end && *end != '\n') || last_text[0] == '-')
			last = 0; /* only a hint */
	}
	n = ipam_sort_unique(used, n);

	for (;;) {
		_cleanup_close_ int fd = -1;
		char line[80];

		r = ipam_next_free(s, used, n, last, &off);
		if (r < 0)
			return r;
		r = ipam_format(s, off, addr, IPAM_ADDR_MAX);
		if (r < 0)
			return r;
		fd = openat(dfd, addr, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
		if (fd < 0 && errno == EEXIST) {
			/* Taken under another spelling or by someone else: skip it. */
			r = push(&used, &n, &cap, off);
			if (r < 0)
				return r;
			n = ipam_sort_unique(used, n);
			continue;
		}
		if (fd < 0)
			return -errno;
		snprintf(line, sizeof(line), "%s\n", pod_id);
		r = write_all(fd, line, strlen(line));
		if (r < 0) {
			unlinkat(dfd, addr, 0);
			return r;
		}
		break;
	}
	/* The offset, not the address: only allocation files name addresses. */
	char hint[32];
	snprintf(hint, sizeof(hint), "%llu\n", (unsigned long long)off);
	r = write_file_boot(last_path, hint, strlen(hint), 0600);
	if (r < 0)
		log_warn_errno(r, NULL, "cannot remember the last allocated address", "path=%s", last_path);
	return 0;
}

int ipam_allocate(struct ipam *im, const struct ipam_subnet *s, const char *pod_id, char addr[IPAM_ADDR_MAX])
{
	int r;

	if (!id_is_valid(pod_id))
		return -EINVAL;
	pthread_mutex_lock(&im->lock);
	r = allocate_locked(im, s, pod_id, addr);
	pthread_mutex_unlock(&im->lock);
	return r;
}

static int release_locked(struct ipam *im, const char *key, const char *addr, const char *pod_id)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1;
	char owner[OWNER_MAX];

	if (asprintf(&dir, "%s/%s", im->root, key) < 0)
		return -ENOMEM;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (faccessat(dfd, addr, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	read_owner(dfd, addr, owner);
	if (strcmp(owner, pod_id) != 0)
		return -EPERM;
	if (unlinkat(dfd, addr, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

int ipam_release(struct ipam *im, const char *key, const char *addr, const char *pod_id)
{
	int r;

	if (!key_is_valid(key) || !addr_text_is_valid(addr) || !id_is_valid(pod_id))
		return -EINVAL;
	pthread_mutex_lock(&im->lock);
	r = release_locked(im, key, addr, pod_id);
	pthread_mutex_unlock(&im->lock);
	return r;
}

static int claim_locked(struct ipam *im, const char *key, const char *addr, const char *pod_id, bool *created)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1, fd = -1;
	char owner[OWNER_MAX], line[80];
	int r;

	if (asprintf(&dir, "%s/%s", im->root, key) < 0)
		return -ENOMEM;
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, addr, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0 && errno == EEXIST) {
		read_owner(dfd, addr, owner);
		return strcmp(owner, pod_id) == 0 ? 0 : -EEXIST;
	}
	if (fd < 0)
		return -errno;
	snprintf(line, sizeof(line), "%s\n", pod_id);
	r = write_all(fd, line, strlen(line));
	if (r < 0) {
		unlinkat(dfd, addr, 0);
		return r;
	}
	*created = true;
	return 0;
}

int ipam_claim(struct ipam *im, const char *key, const char *addr, const char *pod_id, bool *created)
{
	int r;

	*created = false;
	if (!key_is_valid(key) || !addr_text_is_valid(addr) || !id_is_valid(pod_id))
		return -EINVAL;
	pthread_mutex_lock(&im->lock);
	r = claim_locked(im, key, addr, pod_id, created);
	pthread_mutex_unlock(&im->lock);
	return r;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Each entry of the subnet directory dfd but "." and "..": fn(dfd, name,
 * owner, ud), owner the one read_owner reads for an allocation file (a
 * name that is an address), NULL for any other name. Stops at fn's first
 * nonzero return and returns it; else 0. The one walk of a subnet. */
static int walk_subnet(int dfd, int (*fn)(int dfd, const char *name, const char *owner, void *ud), void *ud)
{
	DIR *d = fdopendir(dup(dfd));
	int r = 0;

	if (!d)
		return -errno;
	for (struct dirent *de; !r && (de = readdir(d));) {
		char owner[OWNER_MAX];
		const char *name = de->d_name;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		bool alloc = name[0] != '.' && addr_text_is_valid(name);
		if (alloc)
			read_owner(dfd, name, owner);
		r = fn(dfd, name, alloc ? owner : NULL, ud);
	}
	closedir(d);
	return r;
}

struct sweep {
	const char *key, *req;
	bool (*keep)(const char *, void *);
	void *ud;
	int freed;
	bool changed;
};

static int sweep_entry(int dfd, const char *name, const char *owner, void *ud)
{
	struct sweep *sw = ud;

	if (!owner) {
		if (has_suffix(name, ".tmp") && unlinkat(dfd, name, 0) == 0) /* an interrupted write_file_atomic */
			sw->changed = true;
		return 0;
	}
	if (id_is_valid(owner) && sw->keep(owner, sw->ud))
		return 0;
	if (unlinkat(dfd, name, 0) < 0) {
		log_warn_errno(errno, sw->req, "cannot free orphaned address", "subnet=%s ip=%s", sw->key, name);
		return 0;
	}
	log_info(sw->req, "freed orphaned address", "subnet=%s ip=%s pod=%s", sw->key, name,
		 id_is_valid(owner) ? owner : "-");
	sw->changed = true;
	sw->freed++;
	return 0;
}

static int sweep_dir(int rootfd, const char *key, bool (*keep)(const char *, void *), void *ud, const char *req)
{
	_cleanup_close_ int dfd = openat(rootfd, key, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct sweep sw = {.key = key, .req = req, .keep = keep, .ud = ud};

	if (dfd < 0)
		return errno == ENOTDIR ? 0 : -errno;
	int r = walk_subnet(dfd, sweep_entry, &sw);
	if (r < 0)
		return r;
	if (sw.changed && fsync(dfd) < 0)
		return -errno;
	return sw.freed;
}

struct find_owned {
	const char *pod_id;
	char *addr;
};

static int find_entry(int dfd, const char *name, const char *owner, void *ud)
{
	struct find_owned *f = ud;

	(void)dfd;
	if (!owner || strcmp(owner, f->pod_id) != 0 || strlen(name) >= IPAM_ADDR_MAX)
		return 0;
	snprintf(f->addr, IPAM_ADDR_MAX, "%s", name);
	return 1;
}

int ipam_find_owned(struct ipam *im, const struct ipam_subnet *s, const char *pod_id, char addr[IPAM_ADDR_MAX])
{
	_cleanup_free_ char *dir = NULL;
	struct find_owned f = {.pod_id = pod_id, .addr = addr};
	int found;

	if (asprintf(&dir, "%s/%s", im->root, s->key) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&im->lock);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		found = errno == ENOENT ? 0 : -errno;
	else
		found = walk_subnet(dfd, find_entry, &f);
	pthread_mutex_unlock(&im->lock);
	return found;
}

int ipam_sweep(struct ipam *im, bool (*keep)(const char *pod_id, void *ud), void *ud, const char *req)
{
	_cleanup_close_ int rootfd = -1;
	int total = 0, ret = 0;
	DIR *d;

	pthread_mutex_lock(&im->lock);
	rootfd = open(im->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		ret = -errno;
		goto out;
	}
	d = fdopendir(dup(rootfd));
	if (!d) {
		ret = -errno;
		goto out;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (!key_is_valid(de->d_name))
			continue;
		int r = sweep_dir(rootfd, de->d_name, keep, ud, req);
		if (r < 0) {
			log_warn_errno(r, req, "cannot sweep address allocations", "subnet=%s", de->d_name);
			if (ret == 0)
				ret = r;
			continue;
		}
		total += r;
	}
	closedir(d);
out:
	pthread_mutex_unlock(&im->lock);
	return ret < 0 ? ret : total;
}
