/* seccomp: a profile in Docker's format (the built-in RuntimeDefault one
 * or a Localhost file) converted to the OCI spec's linux.seccomp object
 * for the architecture and capabilities of the container (see oci_spec.h
 * and oci_internal.h). Every error names the field of the profile. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "caps.h"
#include "macro.h"
#include "oci_internal.h"
#include "oci_spec.h"
#include "seccomp_profile.h" /* SECCOMP_PROFILE_MAX, shared with spawnd */
#include "util.h"

#define SECCOMP_RULES_MAX 8192
#define SECCOMP_NAMES_MAX 4096

static const char *const seccomp_actions[] = {
	"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
	"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
};
static const char *const seccomp_ops[] = {
	"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
};
static const char *const seccomp_flags[] = {
	"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
};

/* libseccomp's architecture names (as profiles' includes.arches use them)
 * and the SCMP_ARCH_ names runc takes. */
static const struct {
	const char *name, *scmp;
} seccomp_arches[] = {
	{ "x86", "SCMP_ARCH_X86" },
	{ "amd64", "SCMP_ARCH_X86_64" },
	{ "x32", "SCMP_ARCH_X32" },
	{ "arm", "SCMP_ARCH_ARM" },
	{ "arm64", "SCMP_ARCH_AARCH64" },
	{ "mips", "SCMP_ARCH_MIPS" },
	{ "mips64", "SCMP_ARCH_MIPS64" },
	{ "mips64n32", "SCMP_ARCH_MIPS64N32" },
	{ "mipsel", "SCMP_ARCH_MIPSEL" },
	{ "mipsel64", "SCMP_ARCH_MIPSEL64" },
	{ "mipsel64n32", "SCMP_ARCH_MIPSEL64N32" },
	{ "ppc", "SCMP_ARCH_PPC" },
	{ "ppc64", "SCMP_ARCH_PPC64" },
	{ "ppc64le", "SCMP_ARCH_PPC64LE" },
	{ "s390", "SCMP_ARCH_S390" },
	{ "s390x", "SCMP_ARCH_S390X" },
	{ "riscv64", "SCMP_ARCH_RISCV64" },
};

static const char *host_seccomp_arch(void)
{
#if defined(__x86_64__) && defined(__ILP32__)
	return "x32";
#elif defined(__x86_64__)
	return "amd64";
#elif defined(__i386__)
	return "x86";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__arm__)
	return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__powerpc64__)
	return "ppc64";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return NULL;
#endif
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static const char *scmp_arch_of(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(seccomp_arches); i++)
		if (strcmp(name, seccomp_arches[i].name) == 0)
			return seccomp_arches[i].scmp;
	return NULL;
}

static bool scmp_arch_valid(const char *scmp)
{
	for (size_t i = 0; i < ARRAY_SIZE(seccomp_arches); i++)
		if (strcmp(scmp, seccomp_arches[i].scmp) == 0)
			return true;
	return false;
}

static bool syscall_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* A string member that must be one of list (required or not). */
static int seccomp_enum(json_object *o, const char *key, const char *where, const char *const *list, size_t n,
			bool required, const char **out, char *err, size_t errlen)
{
	json_object *v = member(o, key);
	const char *s;

	*out = NULL;
	if (!v) {
		if (required)
			return errf(err, errlen, -EINVAL, "%s.%s: missing", where, key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return errf(err, errlen, -EINVAL, "%s.%s: not a string", where, key);
	s = json_object_get_string(v);
	if (!in_list(s, list, n))
		return errf(err, errlen, -EINVAL, "%s.%s: unsupported value \"%.64s\"", where, key, s);
	*out = s;
	return 0;
}

static int seccomp_errno(struct jb *b, json_object *from, const char *key, const char *where, json_object *to,
			 char *err, size_t errlen)
{
	json_object *v = member(from, key);
	uint64_t n;

	if (!v)
		return 0;
	if (!get_u64(v, &n) || n > 4095)
		return errf(err, errlen, -EINVAL, "%s.%s: not an errno value", where, key);
	jadd(b, to, key, json_object_new_int64((int64_t)n));
	return 0;
}

/* Does a string array (absent = empty) hold s? Wrong types are errors. */
static int filter_list(json_object *f, const char *key, const char *where, json_object **out, char *err,
		       size_t errlen)
{
	json_object *v = member(f, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!is_string_array(v))
		return errf(err, errlen, -EINVAL, "%s.%s: not an array of strings", where, key);
	*out = v;
	return 0;
}

static bool caps_hold(uint64_t caps, const char *name)
{
	int c = cap_lookup(name);

	return c >= 0 && (caps & CAPBIT(c));
}

/* Whether a rule's includes/excludes let it apply to this container. */
static int seccomp_rule_applies(json_object *rule, const char *where, uint64_t caps, const char *arch, bool *applies,
				char *err, size_t errlen)
{
	json_object *inc = member(rule, "includes"), *exc = member(rule, "excludes");
	json_object *inc_caps, *inc_arches, *exc_caps, *exc_arches, *mk;
	char w[128];
	int r;

	*applies = true;
	if (inc && !json_object_is_type(inc, json_type_object))
		return errf(err, errlen, -EINVAL, "%s.includes: not an object", where);
	if (exc && !json_object_is_type(exc, json_type_object))
		return errf(err, errlen, -EINVAL, "%s.excludes: not an object", where);
	snprintf(w, sizeof(w), "%s.includes", where);
	if ((r = filter_list(inc, "caps", w, &inc_caps, err, errlen)) < 0 ||
	    (r = filter_list(inc, "arches", w, &inc_arches, err, errlen)) < 0)
		return r;
	mk = member(inc, "minKernel");
	if (mk && !json_object_is_type(mk, json_type_string))
		return errf(err, errlen, -EINVAL, "%s.minKernel: not a string", w);
	snprintf(w, sizeof(w), "%s.excludes", where);
	if ((r = filter_list(exc, "caps", w, &exc_caps, err, errlen)) < 0 ||
	    (r = filter_list(exc, "arches", w, &exc_arches, err, errlen)) < 0)
		return r;

	for (size_t i = 0; exc_arches && i < json_object_array_length(exc_arches); i++)
		if (strcmp(astr(exc_arches, i), arch) == 0)
			*applies = false;
	for (size_t i = 0; exc_caps && i < json_object_array_length(exc_caps); i++)
		if (caps_hold(caps, astr(exc_caps, i)))
			*applies = false;
	if (inc_arches && json_object_array_length(inc_arches) > 0) {
		bool found = false;
		for (size_t i = 0; i < json_object_array_length(inc_arches); i++)
			if (strcmp(astr(inc_arches, i), arch) == 0)
				found = true;
		if (!found)
			*applies = false;
	}
	for (size_t i = 0; inc_caps && i < json_object_array_length(inc_caps); i++)
		if (!caps_hold(caps, astr(inc_caps, i)))
			*applies = false;
	return 0;
}

static int seccomp_args(struct jb *b, json_object *args, const char *where, json_object *rule, char *err,
			size_t errlen)
{
	json_object *out;

	if (!json_object_is_type(args, json_type_array))
		return errf(err, errlen, -EINVAL, "%s.args: not an array", where);
	if (json_object_array_length(args) == 0)
		return 0;
	if (json_object_array_length(args) > 6)
		return errf(err, errlen, -EINVAL, "%s.args: more than 6 conditions", where);
	out = jadd(b, rule, "args", json_object_new_array());
	for (size_t i = 0; i < json_object_array_length(args); i++) {
		json_object *a = json_object_array_get_idx(args, i), *o;
		uint64_t index, value = 0, value2 = 0;
		const char *op;
		char w[128];
		int r;

		snprintf(w, sizeof(w), "%s.args[%zu]", where, i);
		if (!json_object_is_type(a, json_type_object))
			return errf(err, errlen, -EINVAL, "%s: not an object", w);
		if (!member(a, "index") || !get_u64(member(a, "index"), &index) || index > 5)
			return errf(err, errlen, -EINVAL, "%s.index: want 0..5", w);
		if (member(a, "value") && !get_u64(member(a, "value"), &value))
			return errf(err, errlen, -EINVAL, "%s.value: not an unsigned integer", w);
		if (member(a, "valueTwo") && !get_u64(member(a, "valueTwo"), &value2))
			return errf(err, errlen, -EINVAL, "%s.valueTwo: not an unsigned integer", w);
		r = seccomp_enum(a, "op", w, seccomp_ops, ARRAY_SIZE(seccomp_ops), true, &op, err, errlen);
		if (r < 0)
			return r;
		o = jpush(b, out, json_object_new_object());
		jadd(b, o, "index", json_object_new_int64((int64_t)index));
		jadd(b, o, "value", json_object_new_uint64(value));
		if (value2)
			jadd(b, o, "valueTwo", json_object_new_uint64(value2));
		jadd(b, o, "op", jstr(op));
	}
	return 0;
}

int oci_seccomp_build(const char *profile_json, uint64_t caps, const char *arch, json_object **out, char *err,
			 size_t errlen)
{
	_cleanup_(jputp) json_object *p = NULL;
	json_object *res = NULL, *v, *arches, *archmap, *syscalls, *rules;
	const char *native, *act;
	struct jb b = { false };
	int r = 0;

	*out = NULL;
	if (!arch)
		arch = host_seccomp_arch();
	if (!arch || !(native = scmp_arch_of(arch)))
		return errf(err, errlen, -EINVAL, "seccomp: unsupported architecture \"%s\"", str(arch));
	if (!profile_json)
		return errf(err, errlen, -EINVAL, "seccomp: no profile");
	p = parse_doc("seccomp profile", profile_json, SECCOMP_PROFILE_MAX, &r, err, errlen);
	if (!p)
		return r;
	res = json_object_new_object();
	if (!res)
		return errf(err, errlen, -ENOMEM, "seccomp: out of memory");

	r = seccomp_enum(p, "defaultAction", "seccomp profile", seccomp_actions, ARRAY_SIZE(seccomp_actions), true,
			 &act, err, errlen);
	if (r < 0)
		goto out;
	jadd(&b, res, "defaultAction", jstr(act));
	if ((r = seccomp_errno(&b, p, "defaultErrnoRet", "seccomp profile", res, err, errlen)) < 0)
		goto out;

	arches = member(p, "architectures");
	archmap = member(p, "archMap");
	if (arches && archmap && json_object_array_length(arches) > 0 && json_object_array_length(archmap) > 0) {
		r = errf(err, errlen, -EINVAL, "seccomp profile: both architectures and archMap are given");
		goto out;
	}
	if (arches) {
		json_object *a;
		if (!is_string_array(arches)) {
			r = errf(err, errlen, -EINVAL, "seccomp profile.architectures: not an array of strings");
			goto out;
		}
		a = jadd(&b, res, "architectures", json_object_new_array());
		for (size_t i = 0; i < json_object_array_length(arches); i++) {
			if (!scmp_arch_valid(astr(arches, i))) {
				r = errf(err, errlen, -EINVAL, "seccomp profile.architectures[%zu]: unknown \"%.64s\"", i,
					 astr(arches, i));
				goto out;
			}
			jpush(&b, a, jstr(astr(arches, i)));
		}
	} else if (archmap) {
		if (!json_object_is_type(archmap, json_type_array)) {
			r = errf(err, errlen, -EINVAL, "seccomp profile.archMap: not an array");
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(archmap); i++) {
			json_object *e = json_object_array_get_idx(archmap, i), *main_arch, *subs, *a;
			if (!json_object_is_type(e, json_type_object) ||
			    !json_object_is_type(main_arch = member(e, "architecture"), json_type_string) ||
			    ((subs = member(e, "subArchitectures")) && !is_string_array(subs))) {
				r = errf(err, errlen, -EINVAL, "seccomp profile.archMap[%zu]: want {architecture, subArchitectures}", i);
				goto out;
			}
			if (!scmp_arch_valid(json_object_get_string(main_arch))) {
				r = errf(err, errlen, -EINVAL, "seccomp profile.archMap[%zu].architecture: unknown \"%.64s\"", i,
					 json_object_get_string(main_arch));
				goto out;
			}
			for (size_t j = 0; subs && j < json_object_array_length(subs); j++)
				if (!scmp_arch_valid(astr(subs, j))) {
					r = errf(err, errlen, -EINVAL,
						 "seccomp profile.archMap[%zu].subArchitectures[%zu]: unknown \"%.64s\"", i, j,
						 astr(subs, j));
					goto out;
				}
			if (strcmp(json_object_get_string(main_arch), native) != 0 || member(res, "architectures"))
				continue;
			a = jadd(&b, res, "architectures", json_object_new_array());
			jpush(&b, a, jstr(native));
			for (size_t j = 0; subs && j < json_object_array_length(subs); j++)
				jpush(&b, a, jstr(astr(subs, j)));
		}
	}

	if ((v = member(p, "flags"))) {
		json_object *a;
		if (!is_string_array(v)) {
			r = errf(err, errlen, -EINVAL, "seccomp profile.flags: not an array of strings");
			goto out;
		}
		a = json_object_array_length(v) ? jadd(&b, res, "flags", json_object_new_array()) : NULL;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (!in_list(astr(v, i), seccomp_flags, ARRAY_SIZE(seccomp_flags))) {
				r = errf(err, errlen, -EINVAL, "seccomp profile.flags[%zu]: unsupported \"%.64s\"", i, astr(v, i));
				goto out;
			}
			jpush(&b, a, jstr(astr(v, i)));
		}
	}
	if ((v = member(p, "listenerPath")) &&
	    (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 0)) {
		r = errf(err, errlen, -EINVAL, "seccomp profile.listenerPath: seccomp notification is not supported");
		goto out;
	}

	syscalls = member(p, "syscalls");
	if (syscalls && !json_object_is_type(syscalls, json_type_array)) {
		r = errf(err, errlen, -EINVAL, "seccomp profile.syscalls: not an array");
		goto out;
	}
	if (syscalls && json_object_array_length(syscalls) > SECCOMP_RULES_MAX) {
		r = errf(err, errlen, -EINVAL, "seccomp profile.syscalls: more than %d rules", SECCOMP_RULES_MAX);
		goto out;
	}
	rules = jadd(&b, res, "syscalls", json_object_new_array());
	for (size_t i = 0; syscalls && i < json_object_array_length(syscalls); i++) {
		json_object *s = json_object_array_get_idx(syscalls, i), *names, *name, *rule, *a;
		bool applies;
		char w[96];

		snprintf(w, sizeof(w), "seccomp profile.syscalls[%zu]", i);
		if (!json_object_is_type(s, json_type_object)) {
			r = errf(err, errlen, -EINVAL, "%s: not an object", w);
			goto out;
		}
		names = member(s, "names");
		name = member(s, "name");
		if (names && !is_string_array(names)) {
			r = errf(err, errlen, -EINVAL, "%s.names: not an array of strings", w);
			goto out;
		}
		if (name && !json_object_is_type(name, json_type_string)) {
			r = errf(err, errlen, -EINVAL, "%s.name: not a string", w);
			goto out;
		}
		if (name && names && json_object_array_length(names) > 0) {
			r = errf(err, errlen, -EINVAL, "%s: both name and names are given", w);
			goto out;
		}
		if (!name && (!names || json_object_array_length(names) == 0)) {
			r = errf(err, errlen, -EINVAL, "%s.names: empty", w);
			goto out;
		}
		if (names && json_object_array_length(names) > SECCOMP_NAMES_MAX) {
			r = errf(err, errlen, -EINVAL, "%s.names: more than %d names", w, SECCOMP_NAMES_MAX);
			goto out;
		}
		if ((r = seccomp_enum(s, "action", w, seccomp_actions, ARRAY_SIZE(seccomp_actions), true, &act, err,
				      errlen)) < 0)
			goto out;
		if ((r = seccomp_rule_applies(s, w, caps, arch, &applies, err, errlen)) < 0)
			goto out;
		if (name && !syscall_name_valid(json_object_get_string(name))) {
			r = errf(err, errlen, -EINVAL, "%s.name: invalid syscall name \"%.64s\"", w, json_object_get_string(name));
			goto out;
		}
		for (size_t j = 0; names && j < json_object_array_length(names); j++)
			if (!syscall_name_valid(astr(names, j))) {
				r = errf(err, errlen, -EINVAL, "%s.names[%zu]: invalid syscall name \"%.64s\"", w, j,
					 astr(names, j));
				goto out;
			}
		/* Build the rule, then drop it if it does not apply: its args are
		 * validated either way. */
		rule = json_object_new_object();
		if (!rule) {
			b.oom = true;
			break;
		}
		a = jadd(&b, rule, "names", json_object_new_array());
		if (name)
			jpush(&b, a, jstr(json_object_get_string(name)));
		for (size_t j = 0; names && j < json_object_array_length(names); j++)
			jpush(&b, a, jstr(astr(names, j)));
		jadd(&b, rule, "action", jstr(act));
		if ((r = seccomp_errno(&b, s, "errnoRet", w, rule, err, errlen)) < 0 ||
		    ((v = member(s, "args")) && (r = seccomp_args(&b, v, w, rule, err, errlen)) < 0)) {
			json_object_put(rule);
			goto out;
		}
		if (applies)
			jpush(&b, rules, rule);
		else
			json_object_put(rule);
	}
	if (b.oom)
		r = errf(err, errlen, -ENOMEM, "seccomp: out of memory");
out:
	if (r < 0) {
		json_object_put(res);
		return r;
	}
	*out = res;
	return 0;
}

static int seccomp_to_string(json_object *o, char **oci_json, char *err, size_t errlen)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	*oci_json = s ? strdup(s) : NULL;
	if (!*oci_json)
		return errf(err, errlen, -ENOMEM, "seccomp: out of memory");
	return 0;
}

int oci_seccomp_convert(const char *profile_json, const char *const *caps, size_t n_caps, const char *arch,
			char **oci_json, char *err, size_t errlen)
{
	json_object *o;
	uint64_t mask = 0;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!oci_json)
		return errf(err, errlen, -EINVAL, "seccomp: no output");
	*oci_json = NULL;
	for (size_t i = 0; i < n_caps; i++) {
		int c = caps[i] ? cap_lookup(caps[i]) : -1;
		if (c < 0)
			return errf(err, errlen, -EINVAL, "seccomp: unknown capability \"%.64s\"", str(caps[i]));
		mask |= CAPBIT(c);
	}
	r = oci_seccomp_build(profile_json, mask, arch, &o, err, errlen);
	if (r < 0)
		return r;
	r = seccomp_to_string(o, oci_json, err, errlen);
	json_object_put(o);
	return r;
}

int oci_seccomp_from_profile(const char *profile_json, char **oci_json, char *err, size_t errlen)
{
	json_object *o;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!oci_json)
		return errf(err, errlen, -EINVAL, "seccomp: no output");
	*oci_json = NULL;
	r = oci_seccomp_build(profile_json, CAP_DEFAULT_MASK, NULL, &o, err, errlen);
	if (r < 0)
		return r;
	r = seccomp_to_string(o, oci_json, err, errlen);
	json_object_put(o);
	return r;
}
