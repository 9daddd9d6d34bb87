/* Unit tests for imaged/manifest.c: every manifest kind, Content-Type
 * versus body detection, platform selection, layer media types, image
 * configs, config.User, and hostile documents (bad digests and sizes,
 * schema 1, garbage, deep nesting, huge documents) that must be errors,
 * never crashes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <cmocka.h>

#include "macro.h"
#include "manifest.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"
#define D1 "sha256:" H1
#define D2 "sha256:" H2
#define D3 "sha256:" H3

#define OCI_LAYER_GZ "application/vnd.oci.image.layer.v1.tar+gzip"
#define DOCKER_LAYER_GZ "application/vnd.docker.image.rootfs.diff.tar.gzip"

static const char oci_index[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
	"{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":100,"
	" \"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	"{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":200,"
	" \"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"},"
	" \"annotations\":{\"a\":\"b\"}},"
	"{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":0,"
	" \"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}"
	"],\"annotations\":{\"org.opencontainers.image.created\":\"now\"}}";

static const char docker_list[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_LIST "\",\"manifests\":["
	"{\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":528,"
	" \"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}},"
	"{\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":528,"
	" \"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}";

static const char oci_manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
	"\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1469},"
	"\"layers\":["
	"{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D2 "\",\"size\":2479},"
	"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D3 "\",\"size\":0}"
	"]}";

static const char docker_manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_MANIFEST "\","
	"\"config\":{\"mediaType\":\"" MT_DOCKER_CONFIG "\",\"size\":7023,\"digest\":\"" D1 "\"},"
	"\"layers\":[{\"mediaType\":\"" DOCKER_LAYER_GZ "\",\"size\":32654,\"digest\":\"" D2 "\"}]}";

/* ---- helpers ---- */

static int parse(const char *ct, const char *body, struct manifest *m, char *err, size_t errlen)
{
	return manifest_parse(ct, body, strlen(body), m, err, errlen);
}

static void parse_ok(const char *ct, const char *body, struct manifest *m)
{
	char err[512] = "unset";
	int r = parse(ct, body, m, err, sizeof(err));

	if (r != 0)
		fail_msg("unexpected error %d: %s\n  for %s", r, err, body);
	assert_string_equal(err, "");
}

/* Expect error r with a message containing want. */
static void parse_err(const char *ct, const char *body, size_t len, int want_r, const char *want)
{
	struct manifest m;
	char err[512] = "";
	int r = manifest_parse(ct, body, len, &m, err, sizeof(err));

	if (r != want_r)
		fail_msg("expected %d, got %d (%s)\n  for %.300s", want_r, r, err, body ? body : "(null)");
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
	/* The output is empty after an error. */
	assert_int_equal(m.kind, MANIFEST_UNKNOWN);
	assert_null(m.media_type);
	assert_null(m.manifests);
	assert_null(m.layers);
	assert_null(m.config.digest);
	manifest_free(&m);
}

static void parse_err_s(const char *ct, const char *body, int want_r, const char *want)
{
	parse_err(ct, body, strlen(body), want_r, want);
}

/* A manifest with one layer whose descriptor is given as JSON text. */
static char *with_layer(const char *layer)
{
	char *s;
	assert_true(asprintf(&s,
			     "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
			     "\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1},"
			     "\"layers\":[{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D2 "\",\"size\":1},%s]}",
			     layer) > 0);
	return s;
}

/* ---- the four kinds ---- */

static void test_oci_index(void **state)
{
	struct manifest m;

	parse_ok(MT_OCI_INDEX, oci_index, &m);
	assert_int_equal(m.kind, MANIFEST_INDEX);
	assert_string_equal(m.media_type, MT_OCI_INDEX);
	assert_int_equal(m.n_manifests, 3);
	assert_string_equal(m.manifests[0].media_type, MT_OCI_MANIFEST);
	assert_string_equal(m.manifests[0].digest, D1);
	assert_int_equal(m.manifests[0].size, 100);
	assert_string_equal(m.manifests[0].os, "linux");
	assert_string_equal(m.manifests[0].architecture, "amd64");
	assert_null(m.manifests[0].variant);
	assert_string_equal(m.manifests[1].variant, "v8");
	assert_int_equal(m.manifests[2].size, 0);
	assert_null(m.layers);
	assert_int_equal(m.n_layers, 0);
	manifest_free(&m);
	assert_null(m.manifests);
	manifest_free(&m); /* twice is fine */
	manifest_free(NULL);
}

static void test_docker_list(void **state)
{
	struct manifest m;

	parse_ok(MT_DOCKER_LIST, docker_list, &m);
	assert_int_equal(m.kind, MANIFEST_INDEX);
	assert_string_equal(m.media_type, MT_DOCKER_LIST);
	assert_int_equal(m.n_manifests, 2);
	assert_string_equal(m.manifests[0].architecture, "arm");
	assert_string_equal(m.manifests[0].variant, "v7");
	assert_int_equal(m.manifests[1].size, 528);
	manifest_free(&m);
}

static void test_oci_manifest(void **state)
{
	struct manifest m;

	parse_ok(MT_OCI_MANIFEST, oci_manifest, &m);
	assert_int_equal(m.kind, MANIFEST_IMAGE);
	assert_string_equal(m.media_type, MT_OCI_MANIFEST);
	assert_string_equal(m.config.media_type, MT_OCI_CONFIG);
	assert_string_equal(m.config.digest, D1);
	assert_int_equal(m.config.size, 1469);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].media_type, OCI_LAYER_GZ);
	assert_string_equal(m.layers[0].digest, D2);
	assert_int_equal(m.layers[0].size, 2479);
	assert_int_equal(layer_compression_of(m.layers[1].media_type), LAYER_ZSTD);
	assert_null(m.manifests);
	manifest_free(&m);
}

static void test_docker_manifest(void **state)
{
	struct manifest m;

	parse_ok(MT_DOCKER_MANIFEST, docker_manifest, &m);
	assert_int_equal(m.kind, MANIFEST_IMAGE);
	assert_string_equal(m.media_type, MT_DOCKER_MANIFEST);
	assert_string_equal(m.config.media_type, MT_DOCKER_CONFIG);
	assert_int_equal(m.config.size, 7023);
	assert_int_equal(m.n_layers, 1);
	assert_int_equal(layer_compression_of(m.layers[0].media_type), LAYER_GZIP);
	manifest_free(&m);

	/* No layers at all is an image too (FROM scratch with only metadata). */
	parse_ok(MT_DOCKER_MANIFEST,
		 "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_DOCKER_CONFIG "\",\"size\":1,\"digest\":\"" D1
		 "\"},\"layers\":[]}",
		 &m);
	assert_int_equal(m.n_layers, 0);
	assert_null(m.layers);
	manifest_free(&m);
}

/* ---- Content-Type versus body ---- */

static void test_detection(void **state)
{
	static const char oci_index_bare[] =
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		"\",\"size\":1}]}";
	static const char oci_manifest_bare[] =
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1
		"\",\"size\":1},\"layers\":[]}";
	static const char *const generic[] = { NULL, "", "application/json", "text/plain",
					       "application/octet-stream", "  application/json ; charset=utf-8" };
	struct manifest m;

	for (size_t i = 0; i < ARRAY_SIZE(generic); i++) {
		/* The body's mediaType decides. */
		parse_ok(generic[i], docker_list, &m);
		assert_int_equal(m.kind, MANIFEST_INDEX);
		assert_string_equal(m.media_type, MT_DOCKER_LIST);
		manifest_free(&m);
		parse_ok(generic[i], docker_manifest, &m);
		assert_int_equal(m.kind, MANIFEST_IMAGE);
		assert_string_equal(m.media_type, MT_DOCKER_MANIFEST);
		manifest_free(&m);
		/* No mediaType either: the fields decide, and it is OCI. */
		parse_ok(generic[i], oci_index_bare, &m);
		assert_int_equal(m.kind, MANIFEST_INDEX);
		assert_string_equal(m.media_type, MT_OCI_INDEX);
		manifest_free(&m);
		parse_ok(generic[i], oci_manifest_bare, &m);
		assert_int_equal(m.kind, MANIFEST_IMAGE);
		assert_string_equal(m.media_type, MT_OCI_MANIFEST);
		manifest_free(&m);
	}

	/* A specific Content-Type names a document without mediaType. */
	parse_ok(MT_DOCKER_LIST, oci_index_bare, &m);
	assert_string_equal(m.media_type, MT_DOCKER_LIST);
	manifest_free(&m);
	parse_ok(MT_DOCKER_MANIFEST, oci_manifest_bare, &m);
	assert_string_equal(m.media_type, MT_DOCKER_MANIFEST);
	manifest_free(&m);
	/* Parameters, case and blanks in the Content-Type do not matter. */
	parse_ok("Application/VND.OCI.Image.Manifest.V1+JSON ; charset=utf-8", oci_manifest, &m);
	assert_string_equal(m.media_type, MT_OCI_MANIFEST);
	manifest_free(&m);
	/* The same kind from Docker and OCI: the body's own type wins. */
	parse_ok(MT_DOCKER_MANIFEST, oci_manifest, &m);
	assert_string_equal(m.media_type, MT_OCI_MANIFEST);
	manifest_free(&m);
	parse_ok(MT_OCI_INDEX, docker_list, &m);
	assert_string_equal(m.media_type, MT_DOCKER_LIST);
	manifest_free(&m);

	/* Kinds that disagree are refused. */
	parse_err_s(MT_OCI_INDEX, oci_manifest, -EINVAL,
		    "mediaType \"" MT_OCI_MANIFEST "\" (an image manifest) does not match Content-Type \"" MT_OCI_INDEX
		    "\" (an index)");
	parse_err_s(MT_DOCKER_MANIFEST, docker_list, -EINVAL, "does not match Content-Type");
	/* An index-shaped body under an image Content-Type has no layers. */
	parse_err_s(MT_OCI_MANIFEST, oci_index_bare, -EINVAL, "an image manifest must not have \"manifests\"");
	parse_err_s(MT_OCI_INDEX, oci_manifest_bare, -EINVAL, "an index must not have \"layers\" or \"config\"");
	/* Unknown types, in the header or the body. */
	parse_err_s("application/vnd.oci.image.config.v1+json", oci_manifest, -EINVAL,
		    "unsupported manifest Content-Type \"application/vnd.oci.image.config.v1+json\"");
	parse_err_s("text/html", oci_manifest, -EINVAL, "unsupported manifest Content-Type \"text/html\"");
	parse_err_s(NULL, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\",\"layers\":[]}",
		    -EINVAL, "mediaType: unsupported manifest media type \"application/vnd.cncf.helm.config.v1+json\"");
	parse_err_s(NULL, "{\"schemaVersion\":2,\"mediaType\":\"application/json\",\"layers\":[]}", -EINVAL,
		    "mediaType: unsupported manifest media type");
	parse_err_s(NULL, "{\"schemaVersion\":2,\"mediaType\":7,\"layers\":[]}", -EINVAL, "mediaType: not a string");
	parse_err_s(NULL, "{\"schemaVersion\":2}", -EINVAL, "unknown document");
	/* Both shapes at once: never read one set of bytes two ways. */
	parse_err_s(NULL,
		    "{\"schemaVersion\":2,\"manifests\":[],\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
		    "\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}",
		    -EINVAL, "ambiguous document");
	parse_err_s(MT_OCI_INDEX, "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[],\"layers\":[]}",
		    -EINVAL, "ambiguous document");
}

static void test_schema_version(void **state)
{
	/* Schema 1, however it shows itself. */
	parse_err_s("application/vnd.docker.distribution.manifest.v1+prettyjws", "{}", -ENOTSUP, "schema 1");
	parse_err_s("application/vnd.docker.distribution.manifest.v1+json", oci_manifest, -ENOTSUP, "schema 1");
	parse_err_s(NULL, "{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"y\",\"fsLayers\":[]}", -ENOTSUP, "schema 1");
	parse_err_s(MT_DOCKER_MANIFEST, "{\"schemaVersion\":1}", -ENOTSUP, "schema 1");
	parse_err_s(NULL, "{\"fsLayers\":[{\"blobSum\":\"" D1 "\"}]}", -ENOTSUP, "schema 1");
	parse_err_s(NULL, "{\"schemaVersion\":2,\"signatures\":[]}", -ENOTSUP, "schema 1");
	parse_err_s(NULL,
		    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}",
		    -ENOTSUP, "schema 1");
	/* Anything but the integer 2. */
	parse_err_s(MT_OCI_MANIFEST, "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"layers\":[]}", -EINVAL,
		    "schemaVersion: missing");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":3,\"layers\":[]}", -EINVAL, "schemaVersion: unsupported (3, want 2)");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":\"2\",\"layers\":[]}", -EINVAL,
		    "schemaVersion: unsupported (a string, want 2)");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":2.0,\"layers\":[]}", -EINVAL,
		    "schemaVersion: unsupported (a double, want 2)");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":\"a\\nb\",\"layers\":[]}", -EINVAL,
		    "schemaVersion: unsupported (a string, want 2)");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":-9223372036854775808,\"layers\":[]}", -EINVAL,
		    "schemaVersion: unsupported (-9223372036854775808, want 2)");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":null,\"layers\":[]}", -EINVAL, "schemaVersion: missing");
}

/* ---- descriptors ---- */

static void test_bad_descriptors(void **state)
{
	static const struct {
		const char *layer;
		const char *msg;
	} cases[] = {
		/* digests */
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"size\":1}", "layers[1].digest: missing" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"sha256:" "ABCDEF" H1 "\",\"size\":1}",
		  "layers[1].digest: " },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"sha256:" "1111111111111111111111111111111111111111111111111111111111111ABC" "\",\"size\":1}",
		  "layers[1].digest: invalid digest (want sha256:<64 lowercase hex>) \"sha256:1111" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"sha256:abc\",\"size\":1}",
		  "layers[1].digest: invalid digest (want sha256:<64 lowercase hex>) \"sha256:abc\"" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"sha512:" H1 H1 "\",\"size\":1}",
		  "layers[1].digest: " },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" H1 "\",\"size\":1}",
		  "layers[1].digest: invalid digest" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\\n\",\"size\":1}",
		  "layers[1].digest: invalid digest (want sha256:<64 lowercase hex>) \"sha256:1111" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"sha256:\\u0000" H1 "\",\"size\":1}",
		  "layers[1].digest: NUL character in string" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":7,\"size\":1}", "layers[1].digest: not a string" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":null,\"size\":1}", "layers[1].digest: missing" },
		/* sizes */
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\"}", "layers[1].size: missing" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":-1}", "layers[1].size: out of range (-1)" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":1.5}", "layers[1].size: not an integer" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":1e3}", "layers[1].size: not an integer" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":\"10\"}", "layers[1].size: not an integer" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":true}", "layers[1].size: not an integer" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":99999999999999999999}",
		  "layers[1].size: out of range" },
		{ "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D1 "\",\"size\":9223372036854775807}",
		  "layers[1].size: out of range" },
		/* media types */
		{ "{\"digest\":\"" D1 "\",\"size\":1}", "layers[1].mediaType: missing" },
		{ "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+encrypted\",\"digest\":\"" D1 "\",\"size\":1}",
		  "layers[1].mediaType: unsupported layer media type \"application/vnd.oci.image.layer.v1.tar+encrypted\"" },
		{ "{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1}",
		  "layers[1].mediaType: unsupported layer media type" },
		{ "{\"mediaType\":\"no slash\",\"digest\":\"" D1 "\",\"size\":1}",
		  "layers[1].mediaType: invalid media type \"no slash\"" },
		{ "{\"mediaType\":\"a/b/c\",\"digest\":\"" D1 "\",\"size\":1}", "layers[1].mediaType: invalid media type" },
		{ "{\"mediaType\":\"/b\",\"digest\":\"" D1 "\",\"size\":1}", "layers[1].mediaType: invalid media type" },
		{ "{\"mediaType\":\"a/\",\"digest\":\"" D1 "\",\"size\":1}", "layers[1].mediaType: invalid media type" },
		{ "{\"mediaType\":[],\"digest\":\"" D1 "\",\"size\":1}", "layers[1].mediaType: not a string" },
		/* shape */
		{ "\"" D1 "\"", "layers[1]: not an object" },
		{ "null", "layers[1]: not an object" },
		{ "[]", "layers[1]: not an object" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *doc = with_layer(cases[i].layer);
		parse_err_s(MT_OCI_MANIFEST, doc, -EINVAL, cases[i].msg);
	}

	/* The config descriptor. */
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":2,\"layers\":[]}", -EINVAL, "config: missing");
	parse_err_s(MT_OCI_MANIFEST, "{\"schemaVersion\":2,\"config\":[],\"layers\":[]}", -EINVAL, "config: not an object");
	parse_err_s(MT_OCI_MANIFEST,
		    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"sha256:x\",\"size\":1},\"layers\":[]}",
		    -EINVAL, "config.digest: invalid digest");
	parse_err_s(MT_OCI_MANIFEST,
		    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\",\"digest\":\""
		    D1 "\",\"size\":1},\"layers\":[]}",
		    -EINVAL, "config.mediaType: \"application/vnd.cncf.helm.config.v1+json\" is not a container image config");
	/* Layers must be an array. */
	parse_err_s(MT_OCI_MANIFEST,
		    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1}}",
		    -EINVAL, "layers: missing");
	parse_err_s(MT_OCI_MANIFEST,
		    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1
		    "\",\"size\":1},\"layers\":{}}",
		    -EINVAL, "layers: not an array");

	/* Index entries and their platforms. */
	parse_err_s(MT_OCI_INDEX, "{\"schemaVersion\":2,\"manifests\":{}}", -EINVAL, "manifests: not an array");
	parse_err_s(MT_OCI_INDEX, "{\"schemaVersion\":2}", -EINVAL, "manifests: missing");
	parse_err_s(MT_OCI_INDEX,
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		    "\",\"size\":-5}]}",
		    -EINVAL, "manifests[0].size: out of range (-5)");
	parse_err_s(MT_OCI_INDEX,
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		    "\",\"size\":5,\"platform\":{\"architecture\":\"amd64\"}}]}",
		    -EINVAL, "manifests[0].platform.os: missing");
	parse_err_s(MT_OCI_INDEX,
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		    "\",\"size\":5,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd 64\"}}]}",
		    -EINVAL, "manifests[0].platform.architecture: invalid platform name \"amd 64\"");
	parse_err_s(MT_OCI_INDEX,
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		    "\",\"size\":5,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"\"}}]}",
		    -EINVAL, "manifests[0].platform.variant: invalid platform name \"\"");
	parse_err_s(MT_OCI_INDEX,
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		    "\",\"size\":5,\"platform\":\"linux/amd64\"}]}",
		    -EINVAL, "manifests[0].platform: not an object");
	{
		/* A platform name longer than 64 bytes. */
		char doc[1024], arch[80];
		memset(arch, 'a', 65);
		arch[65] = '\0';
		snprintf(doc, sizeof(doc),
			 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
			 "\",\"size\":5,\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}}]}",
			 arch);
		parse_err_s(MT_OCI_INDEX, doc, -EINVAL, "manifests[0].platform.architecture: \"aaaa");
		parse_err_s(MT_OCI_INDEX, doc, -EINVAL, "is too long (max 64 bytes)");
	}
	{
		/* A media type longer than 255 bytes. */
		char doc[2048], mt[400];
		memset(mt, 'a', 300);
		mt[0] = 'x';
		mt[1] = '/';
		mt[300] = '\0';
		snprintf(doc, sizeof(doc),
			 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"" D1 "\",\"size\":5}]}", mt);
		parse_err_s(MT_OCI_INDEX, doc, -EINVAL, "manifests[0].mediaType: \"x/aaaa");
		parse_err_s(MT_OCI_INDEX, doc, -EINVAL, "is too long (max 255 bytes)");
	}
}

static char *many_entries(const char *kind, size_t n)
{
	const char *entry = strcmp(kind, "layers") == 0
				    ? "{\"mediaType\":\"" OCI_LAYER_GZ "\",\"digest\":\"" D2 "\",\"size\":1}"
				    : "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":1}";
	size_t el = strlen(entry), cap = 512 + n * (el + 1), o;
	char *s = malloc(cap);

	assert_non_null(s);
	if (strcmp(kind, "layers") == 0)
		o = (size_t)snprintf(s, cap,
				     "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1
				     "\",\"size\":1},\"layers\":[");
	else
		o = (size_t)snprintf(s, cap, "{\"schemaVersion\":2,\"manifests\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[o++] = ',';
		memcpy(s + o, entry, el);
		o += el;
	}
	memcpy(s + o, "]}", 3);
	return s;
}

static void test_counts(void **state)
{
	struct manifest m;
	char *doc;

	doc = many_entries("layers", 1000);
	parse_ok(NULL, doc, &m);
	assert_int_equal(m.n_layers, 1000);
	manifest_free(&m);
	free(doc);
	doc = many_entries("layers", 1001);
	parse_err_s(NULL, doc, -E2BIG, "layers: too many entries (1001, max 1000)");
	free(doc);

	doc = many_entries("manifests", 1000);
	parse_ok(NULL, doc, &m);
	assert_int_equal(m.n_manifests, 1000);
	manifest_free(&m);
	free(doc);
	doc = many_entries("manifests", 5000);
	parse_err_s(NULL, doc, -E2BIG, "manifests: too many entries (5000, max 1000)");
	free(doc);
}

/* ---- garbage ---- */

static void test_garbage(void **state)
{
	static const char *const docs[] = {
		"{", "}", "[]", "null", "true", "2", "\"x\"", "{\"schemaVersion\":2,}", "{\"schemaVersion\":2}x",
		"{\"schemaVersion\":2}{}", "{\"schemaVersion\" 2}", "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}",
		"{\"a\":\"\xc3\"}", "{\"schemaVersion\":2,\"manifests\":[", "   ", "{\"a\":NaNx}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
		struct manifest m;
		char err[256] = "";
		int r = parse(NULL, docs[i], &m, err, sizeof(err));
		if (r != -EINVAL)
			fail_msg("\"%s\": expected -EINVAL, got %d (%s)", docs[i], r, err);
		assert_true(strncmp(err, "manifest: ", 10) == 0 || strstr(err, "unknown document") ||
			    strstr(err, "schemaVersion"));
		manifest_free(&m);
	}
	parse_err(NULL, "", 0, -EINVAL, "manifest: empty document");
	parse_err(NULL, NULL, 10, -EINVAL, "manifest: empty document");
	parse_err(NULL, "{\"schemaVersion\":2}\0{}", 21, -EINVAL, "manifest: invalid JSON: NUL byte in document");
	parse_err_s(NULL, "[1,2]", -EINVAL, "manifest: not a JSON object");
	parse_err_s(NULL, "{\"schemaVersion\":2} x", -EINVAL, "manifest: invalid JSON: unexpected character");
	parse_err_s(NULL, "{\"schemaVersion\":2", -EINVAL, "manifest: invalid JSON");
	parse_err_s(NULL, "{\"a\":\"\xff\"}", -EINVAL, "manifest: invalid JSON: invalid utf-8 string");
	/* Trailing whitespace is fine. */
	{
		struct manifest m;
		char *doc;
		assert_true(asprintf(&doc, "%s \r\n\t ", oci_manifest) > 0);
		parse_ok(NULL, doc, &m);
		manifest_free(&m);
		free(doc);
	}
	/* Not NUL-terminated: only len bytes are read. */
	{
		struct manifest m;
		char err[256];
		size_t n = strlen(docker_manifest);
		char *buf = malloc(n);
		assert_non_null(buf);
		memcpy(buf, docker_manifest, n);
		assert_int_equal(manifest_parse(NULL, buf, n, &m, err, sizeof(err)), 0);
		manifest_free(&m);
		assert_int_equal(manifest_parse(NULL, buf, n - 1, &m, err, sizeof(err)), -EINVAL);
		free(buf);
	}
	/* No output structure, no error buffer. */
	assert_int_equal(manifest_parse(NULL, oci_manifest, strlen(oci_manifest), NULL, NULL, 0), -EINVAL);
	{
		struct manifest m;
		assert_int_equal(manifest_parse(NULL, "{", 1, &m, NULL, 0), -EINVAL);
		char tiny[4];
		assert_int_equal(manifest_parse(NULL, "{", 1, &m, tiny, sizeof(tiny)), -EINVAL);
		assert_string_equal(tiny, "man");
	}
}

static void test_deep_nesting(void **state)
{
	size_t depth = 100000, o = 0;
	char *doc = malloc(depth * 2 + 64);
	struct manifest m;
	char err[256];

	assert_non_null(doc);
	o = (size_t)sprintf(doc, "{\"schemaVersion\":2,\"x\":");
	for (size_t i = 0; i < depth; i++)
		doc[o++] = '[';
	for (size_t i = 0; i < depth; i++)
		doc[o++] = ']';
	doc[o++] = '}';
	doc[o] = '\0';
	assert_int_equal(manifest_parse(NULL, doc, o, &m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "manifest: invalid JSON: nesting too deep");
	free(doc);

	/* Moderate nesting in fields we ignore is fine. */
	parse_ok(NULL,
		 "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"annotations\":{\"a\":[[[[{\"b\":[1]}]]]]},"
		 "\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}",
		 &m);
	manifest_free(&m);
}

static void test_huge_document(void **state)
{
	size_t n = (4u << 20) + 1;
	char *doc = malloc(n + 1);
	struct manifest m;
	char err[256];

	assert_non_null(doc);
	/* Valid JSON, just too big: refused before parsing. */
	memset(doc, ' ', n);
	doc[0] = '{';
	doc[n - 1] = '}';
	doc[n] = '\0';
	assert_int_equal(manifest_parse(NULL, doc, n, &m, err, sizeof(err)), -EFBIG);
	assert_string_equal(err, "manifest: document too large (4194305 bytes, max 4194304)");
	/* 4 MiB exactly is parsed (and is no manifest). */
	doc[n - 2] = '}';
	assert_int_equal(manifest_parse(NULL, doc, n - 1, &m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "schemaVersion: missing");
	free(doc);

	/* A huge string value within the limit. */
	{
		size_t len = 3u << 20;
		char *big = malloc(len + 128);
		size_t o;
		assert_non_null(big);
		o = (size_t)sprintf(big, "{\"schemaVersion\":2,\"mediaType\":\"");
		memset(big + o, 'a', len);
		o += len;
		o += (size_t)sprintf(big + o, "\"}");
		assert_int_equal(manifest_parse(NULL, big, o, &m, err, sizeof(err)), -EINVAL);
		assert_true(strlen(err) < 200);
		assert_non_null(strstr(err, "mediaType: unsupported manifest media type \"aaaa"));
		free(big);
	}
}

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

/* Mutations of valid documents: every outcome is a clean result or a clean error. */
static void test_mutations_never_crash(void **state)
{
	static const char *const seeds[] = { oci_index, docker_list, oci_manifest, docker_manifest };
	static const char junk[] = "{}[]\":,0123456789-.eE \\u\x00\xff" "abcdefnulltrue";
	char buf[4096];

	for (int iter = 0; iter < 20000; iter++) {
		const char *seed = seeds[rnd() % ARRAY_SIZE(seeds)];
		size_t n = strlen(seed), muts = 1 + rnd() % 4;
		struct manifest m;
		struct image_config c;
		char err[256];
		int r;

		memcpy(buf, seed, n);
		for (size_t k = 0; k < muts; k++) {
			size_t pos = rnd() % n;
			switch (rnd() % 3) {
			case 0: /* replace a byte */
				buf[pos] = junk[rnd() % (sizeof(junk) - 1)];
				break;
			case 1: /* cut */
				n = pos + 1;
				break;
			default: /* duplicate a span */
				if (n + 64 < sizeof(buf)) {
					size_t span = rnd() % 64;
					if (pos + span > n)
						span = n - pos;
					memmove(buf + pos + span, buf + pos, n - pos);
					n += span;
				}
				break;
			}
		}
		r = manifest_parse(rnd() % 2 ? NULL : MT_OCI_MANIFEST, buf, n, &m, err, sizeof(err));
		if (r == 0) {
			assert_true(m.kind == MANIFEST_INDEX || m.kind == MANIFEST_IMAGE);
			for (size_t i = 0; i < m.n_layers; i++)
				assert_true(m.layers[i].size >= 0 && strlen(m.layers[i].digest) == 71);
			for (size_t i = 0; i < m.n_manifests; i++)
				assert_true(m.manifests[i].size >= 0 && strlen(m.manifests[i].digest) == 71);
		} else {
			assert_true(r < 0);
			assert_true(err[0] != '\0');
		}
		/* Hostile bytes never reach a message unescaped. */
		for (const char *p = err; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
		manifest_free(&m);
		r = image_config_parse(buf, n, &c, err, sizeof(err));
		assert_true(r <= 0);
		for (const char *p = err; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
		image_config_free(&c);
	}
}

/* ---- platforms ---- */

static const char platforms_index[] =
	"{\"schemaVersion\":2,\"manifests\":["
	/* 0 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}},"
	/* 1 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}},"
	/* 2 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	/* 3 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v9\"}},"
	/* 4 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
	/* 5 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v5\"}},"
	/* 6 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
	/* 7 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"386\"}},"
	/* 8 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v3\"}},"
	/* 9 */ "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1}"
	"]}";

static void test_select_platform(void **state)
{
	struct manifest m;

	parse_ok(NULL, platforms_index, &m);
	assert_int_equal(m.n_manifests, 10);
	assert_null(m.manifests[9].os);

	/* amd64: no variant wanted prefers the plain (v1) image. */
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", NULL), 2);
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", "v1"), 2);
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", "v3"), 8);
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", "v4"), 8); /* best older */
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", "v2"), 2);
	assert_int_equal(manifest_select_platform(&m, "windows", "amd64", NULL), 1);
	/* arm64: v8 preferred over other variants. */
	assert_int_equal(manifest_select_platform(&m, "linux", "arm64", NULL), 4);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm64", "v8"), 4);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm64", "v9"), 3);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm64", "v10"), -ENOENT);
	/* arm v7 runs v6 (and v5), preferring the newest. */
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", "v7"), 6);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", "v6"), 6);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", "v5"), 5);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", NULL), 5); /* any; first of equals */
	assert_int_equal(manifest_select_platform(&m, "linux", "386", NULL), 7);
	/* No match. */
	assert_int_equal(manifest_select_platform(&m, "linux", "s390x", NULL), -ENOENT);
	assert_int_equal(manifest_select_platform(&m, "linux", "riscv64", "v1"), -ENOENT);
	assert_int_equal(manifest_select_platform(&m, "freebsd", "amd64", NULL), -ENOENT);
	assert_int_equal(manifest_select_platform(&m, "Linux", "amd64", NULL), -ENOENT);
	/* Bad arguments. */
	assert_int_equal(manifest_select_platform(&m, NULL, "amd64", NULL), -EINVAL);
	assert_int_equal(manifest_select_platform(&m, "linux", NULL, NULL), -EINVAL);
	assert_int_equal(manifest_select_platform(NULL, "linux", "amd64", NULL), -EINVAL);
	manifest_free(&m);

	/* Not an index. */
	parse_ok(NULL, oci_manifest, &m);
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", NULL), -EINVAL);
	manifest_free(&m);

	/* Entries without a variant stand for the default variant. */
	parse_ok(NULL,
		 "{\"schemaVersion\":2,\"manifests\":["
		 "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
		 "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\"}},"
		 "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}"
		 "]}",
		 &m);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", "v7"), 1);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", NULL), 1);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm64", "v8"), 2);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm64", NULL), 2);
	assert_int_equal(manifest_select_platform(&m, "linux", "arm", "v8"), 1);
	manifest_free(&m);

	/* An index of one entry without a platform is that image... */
	parse_ok(NULL,
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1
		 "\",\"size\":1}]}",
		 &m);
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", NULL), 0);
	manifest_free(&m);
	/* ...but an empty index has nothing. */
	parse_ok(NULL, "{\"schemaVersion\":2,\"manifests\":[]}", &m);
	assert_int_equal(m.n_manifests, 0);
	assert_int_equal(manifest_select_platform(&m, "linux", "amd64", NULL), -ENOENT);
	manifest_free(&m);
}

static void test_host_platform(void **state)
{
	const char *os = NULL, *arch = NULL, *variant = "unset";
	struct utsname u;

	host_platform(&os, &arch, &variant);
	assert_string_equal(os, "linux");
	assert_non_null(arch);
	assert_int_equal(uname(&u), 0);
	if (strcmp(u.machine, "x86_64") == 0) {
		assert_string_equal(arch, "amd64");
		assert_null(variant);
	} else if (strcmp(u.machine, "aarch64") == 0) {
		assert_string_equal(arch, "arm64");
		assert_string_equal(variant, "v8");
	} else if (strcmp(u.machine, "armv7l") == 0) {
		assert_string_equal(arch, "arm");
		assert_string_equal(variant, "v7");
	}
	/* NULL outputs are allowed. */
	host_platform(NULL, NULL, NULL);
	host_platform(NULL, &arch, NULL);
	assert_non_null(arch);
}

/* ---- layers ---- */

static void test_layer_compression(void **state)
{
	static const struct {
		const char *mt;
		enum layer_compression c;
	} cases[] = {
		{ "application/vnd.oci.image.layer.v1.tar", LAYER_PLAIN },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", LAYER_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", LAYER_ZSTD },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", LAYER_PLAIN },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LAYER_GZIP },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LAYER_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", LAYER_GZIP },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LAYER_GZIP },
		{ "application/vnd.docker.image.rootfs.diff.tar", LAYER_PLAIN },
		{ "application/vnd.docker.image.rootfs.diff.tar.zstd", LAYER_ZSTD },
		{ "application/vnd.oci.image.layer.v1.tar+encrypted", LAYER_UNSUPPORTED },
		{ "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", LAYER_UNSUPPORTED },
		{ "application/vnd.oci.image.layer.v1.tar+bzip2", LAYER_UNSUPPORTED },
		{ "Application/vnd.oci.image.layer.v1.tar+gzip", LAYER_UNSUPPORTED },
		{ "application/vnd.oci.image.layer.v1.tar+gzip ", LAYER_UNSUPPORTED },
		{ MT_OCI_CONFIG, LAYER_UNSUPPORTED },
		{ MT_DOCKER_CONFIG, LAYER_UNSUPPORTED },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip\n", LAYER_UNSUPPORTED },
		{ "", LAYER_UNSUPPORTED },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (layer_compression_of(cases[i].mt) != cases[i].c)
			fail_msg("layer_compression_of(\"%s\") = %d, expected %d", cases[i].mt,
				 layer_compression_of(cases[i].mt), cases[i].c);
	assert_int_equal(layer_compression_of(NULL), LAYER_UNSUPPORTED);

	/* Every supported type is accepted in a manifest. */
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *layer = NULL, *doc = NULL;
		struct manifest m;
		char err[256];
		int r;

		if (cases[i].c == LAYER_UNSUPPORTED || strchr(cases[i].mt, '\n'))
			continue;
		assert_true(asprintf(&layer, "{\"mediaType\":\"%s\",\"digest\":\"" D3 "\",\"size\":3}", cases[i].mt) > 0);
		doc = with_layer(layer);
		r = manifest_parse(NULL, doc, strlen(doc), &m, err, sizeof(err));
		if (r != 0)
			fail_msg("%s: %s", cases[i].mt, err);
		assert_int_equal(layer_compression_of(m.layers[1].media_type), cases[i].c);
		manifest_free(&m);
	}
}

/* ---- image configs ---- */

static const char good_config[] =
	"{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2024-01-01T00:00:00Z\","
	"\"config\":{\"User\":\"1000:50\",\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"],\"StopSignal\":\"SIGQUIT\","
	"\"Labels\":{\"a\":\"b\"}},"
	"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]},"
	"\"history\":[{\"created_by\":\"x\"},{\"empty_layer\":true}]}";

static void config_err(const char *body, int want_r, const char *want)
{
	struct image_config c;
	char err[512] = "";
	int r = image_config_parse(body, strlen(body), &c, err, sizeof(err));

	if (r != want_r)
		fail_msg("expected %d, got %d (%s) for %s", want_r, r, err, body);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
	assert_null(c.os);
	assert_null(c.diff_ids);
	assert_null(c.user);
	image_config_free(&c);
}

static void test_image_config(void **state)
{
	struct image_config c;
	char err[256] = "unset";

	assert_int_equal(image_config_parse(good_config, strlen(good_config), &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(c.os, "linux");
	assert_string_equal(c.architecture, "amd64");
	assert_string_equal(c.user, "1000:50");
	assert_string_equal(c.stop_signal, "SIGQUIT");
	assert_int_equal(c.n_diff_ids, 2);
	assert_string_equal(c.diff_ids[0], D1);
	assert_string_equal(c.diff_ids[1], D2);
	image_config_free(&c);
	assert_null(c.os);
	image_config_free(&c);
	image_config_free(NULL);

	/* Minimal: no config at all, or a null one; no layers. */
	{
		static const char *const minimal[] = {
			"{\"architecture\":\"arm64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
			"{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":null,\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
			"{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":{\"User\":\"\",\"StopSignal\":\"\"},"
			"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		};
		for (size_t i = 0; i < ARRAY_SIZE(minimal); i++) {
			assert_int_equal(image_config_parse(minimal[i], strlen(minimal[i]), &c, err, sizeof(err)), 0);
			assert_string_equal(c.architecture, "arm64");
			assert_true(c.user == NULL || strcmp(c.user, "") == 0);
			assert_null(c.stop_signal);
			assert_int_equal(c.n_diff_ids, 0);
			image_config_free(&c);
		}
	}
	/* Numeric and real-time stop signals. */
	{
		const char *doc = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"StopSignal\":\"SIGRTMIN+3\"},"
				  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
		assert_int_equal(image_config_parse(doc, strlen(doc), &c, err, sizeof(err)), 0);
		assert_string_equal(c.stop_signal, "SIGRTMIN+3");
		image_config_free(&c);
	}

	config_err("{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EINVAL, "architecture: missing");
	config_err("{\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EINVAL, "os: missing");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\"}", -EINVAL, "rootfs: missing");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":[]}", -EINVAL, "rootfs: not an object");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"diff_ids\":[]}}", -EINVAL,
		   "rootfs.type: missing");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layer\",\"diff_ids\":[]}}", -EINVAL,
		   "rootfs.type: \"layer\" is not \"layers\"");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\"}}", -EINVAL,
		   "rootfs.diff_ids: missing");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":\"" D1 "\"}}",
		   -EINVAL, "rootfs.diff_ids: not an array");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1
		   "\",\"sha256:nothex\"]}}",
		   -EINVAL, "rootfs.diff_ids[1]: invalid digest \"sha256:nothex\"");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",1]}}",
		   -EINVAL, "rootfs.diff_ids[1]: not a string");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:\\u0000\"]}}",
		   -EINVAL, "rootfs.diff_ids[0]: invalid digest");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":[],\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		   -EINVAL, "config: not an object");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":5},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		   -EINVAL, "config.User: not a string");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"a\\nb\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		   -EINVAL, "config.User: invalid characters \"a\\x0ab\"");
	config_err("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"StopSignal\":\"kill -9\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		   -EINVAL, "config.StopSignal: invalid signal name \"kill -9\"");
	config_err("{\"architecture\":\"amd64\",\"os\":\"lin/ux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", -EINVAL,
		   "os: invalid platform name \"lin/ux\"");
	config_err("[]", -EINVAL, "image config: not a JSON object");
	config_err("{", -EINVAL, "image config: invalid JSON");
	config_err("", -EINVAL, "image config: empty document");
	/* A user name longer than 256 bytes. */
	{
		char doc[1024], user[300];
		memset(user, 'u', 257);
		user[257] = '\0';
		snprintf(doc, sizeof(doc),
			 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"%s\"},"
			 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
			 user);
		config_err(doc, -EINVAL, "is too long (max 256 bytes)");
	}
	/* More than 1000 diff_ids. */
	{
		size_t n = 1001, o;
		char *doc = malloc(n * 80 + 256);
		assert_non_null(doc);
		o = (size_t)sprintf(doc, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
		for (size_t i = 0; i < n; i++)
			o += (size_t)sprintf(doc + o, "%s\"" D1 "\"", i ? "," : "");
		strcpy(doc + o, "]}}");
		config_err(doc, -E2BIG, "rootfs.diff_ids: too many entries (1001, max 1000)");
		free(doc);
	}
	/* Larger than 8 MiB. */
	{
		size_t n = (8u << 20) + 1;
		char *doc = malloc(n);
		assert_non_null(doc);
		memset(doc, ' ', n);
		doc[0] = '{';
		doc[n - 1] = '}';
		assert_int_equal(image_config_parse(doc, n, &c, err, sizeof(err)), -EFBIG);
		assert_non_null(strstr(err, "image config: document too large"));
		free(doc);
	}
	assert_int_equal(image_config_parse(good_config, strlen(good_config), NULL, err, sizeof(err)), -EINVAL);
}

/* ---- config.User ---- */

static void test_image_user(void **state)
{
	static const struct {
		const char *in;
		int r;
		int64_t uid;
		const char *name;
	} cases[] = {
		{ NULL, 0, -1, NULL },
		{ "", 0, -1, NULL },
		{ "0", 0, 0, NULL },
		{ "1000", 0, 1000, NULL },
		{ "1000:50", 0, 1000, NULL },
		{ "1000:", 0, 1000, NULL },
		{ "007", 0, 7, NULL },
		{ "4294967294", 0, 4294967294ll, NULL },
		{ "4294967295", -ERANGE, -1, NULL },
		{ "99999999999999999999999", -ERANGE, -1, NULL },
		{ "nginx", 0, -1, "nginx" },
		{ "nginx:grp", 0, -1, "nginx" },
		{ "nginx:1000", 0, -1, "nginx" },
		{ "www-data", 0, -1, "www-data" },
		{ "1000a", 0, -1, "1000a" },
		{ "-1", 0, -1, "-1" },
		{ ":50", 0, -1, NULL },
		{ ":", 0, -1, NULL },
		{ "a\nb", -EINVAL, -1, NULL },
		{ "../etc", -EINVAL, -1, NULL },
		{ "a/b:c", -EINVAL, -1, NULL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t uid = 12345;
		char *name = (char *)"unset";
		int r = image_user(cases[i].in, &uid, &name);

		if (r != cases[i].r)
			fail_msg("image_user(\"%s\") = %d, expected %d", cases[i].in ? cases[i].in : "(null)", r, cases[i].r);
		assert_true(uid == cases[i].uid);
		if (cases[i].name)
			assert_string_equal(name, cases[i].name);
		else
			assert_null(name);
		free(name);
	}
	{
		char user[300];
		int64_t uid;
		char *name;
		memset(user, 'x', 257);
		user[257] = '\0';
		assert_int_equal(image_user(user, &uid, &name), -EINVAL);
		user[256] = '\0';
		assert_int_equal(image_user(user, &uid, &name), 0);
		assert_int_equal(strlen(name), 256);
		free(name);
		assert_int_equal(image_user("1", NULL, &name), -EINVAL);
		assert_int_equal(image_user("1", &uid, NULL), -EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_index),
		cmocka_unit_test(test_docker_list),
		cmocka_unit_test(test_oci_manifest),
		cmocka_unit_test(test_docker_manifest),
		cmocka_unit_test(test_detection),
		cmocka_unit_test(test_schema_version),
		cmocka_unit_test(test_bad_descriptors),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_huge_document),
		cmocka_unit_test(test_mutations_never_crash),
		cmocka_unit_test(test_select_platform),
		cmocka_unit_test(test_host_platform),
		cmocka_unit_test(test_layer_compression),
		cmocka_unit_test(test_image_config),
		cmocka_unit_test(test_image_user),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
