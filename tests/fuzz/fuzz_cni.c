/* CNI (netd/cni.c): a plugin's result (its stdout, untrusted: a plugin is
 * a third-party binary) and network configurations. Input parts (FUZZ_SEP):
 * the result, then a configuration. Oracle beyond the sanitizers: the
 * addresses taken from a result keep the documented shape. */
#include <stdio.h>

#include "cni_internal.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_cni");
	return 0;
}

static void check_result(const struct pod_net_result *res)
{
	if (res->n_ips > NETD_MAX_IPS)
		abort();
	for (size_t i = 0; i < res->n_ips; i++) {
		size_t n = strnlen(res->ips[i], sizeof(res->ips[i]));
		if (n == 0 || n == sizeof(res->ips[i]) || strchr(res->ips[i], '/')) {
			fprintf(stderr, "cni_result_ips gave address %zu \"%.64s\"\n", i, res->ips[i]);
			abort();
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(res->ips[i], res->ips[j]) == 0)
				abort(); /* documented: deduplicated */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rp, *cp;
	size_t rn, cn;
	char err[512];

	if (size > CNI_MAX_OUTPUT)
		return -1;
	fuzz_part(data, size, 0, &rp, &rn);
	fuzz_part(data, size, 1, &cp, &cn);

	char *out = fuzz_strndup(rp, rn);
	json_object *result = NULL;
	if (cni_json_parse(out, rn, &result) == 0) {
		struct pod_net_result res;
		memset(&res, 0, sizeof(res));
		if (cni_result_ips(result, &res) == 0)
			check_result(&res);
	}
	/* the same bytes as a failed plugin's stdout and stderr */
	struct cni_exec_out o = {.status = 1 << 8, .out = out, .out_len = rn, .err = out, .err_len = rn};
	cni_plugin_error("bridge", &o, err, sizeof(err));

	char *conf = fuzz_strndup(cp, cn);
	for (int list = 0; list < 2; list++) {
		struct cni_netconf nc;
		if (cni_conf_parse(conf, cn, list, list ? "fuzz.conflist" : "fuzz.conf", &nc, err, sizeof(err)) < 0)
			continue;
		struct port_mapping pm = {.protocol = 6, .container_port = 80, .host_port = 8080};
		json_object *ports = cni_port_mappings(&pm, 1);
		for (size_t i = 0; i < nc.n_plugins; i++) {
			if (!cni_type_is_valid(cni_plugin_type(&nc, i))) {
				fprintf(stderr, "plugin %zu of an accepted configuration has type \"%s\"\n", i,
					cni_plugin_type(&nc, i) ? cni_plugin_type(&nc, i) : "(null)");
				abort();
			}
			json_object *in = cni_plugin_config(&nc, i, result, ports, "/kubepods/pod1");
			if (in)
				(void)json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN);
			json_object_put(in);
		}
		json_object_put(ports);
		cni_conf_free(&nc);
	}
	json_object_put(result);
	free(conf);
	free(out);
	return 0;
}
