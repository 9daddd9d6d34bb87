/* The request list of imaged's fetch helper, shared by both ends. */
#include "fetch_api.h"
#include "internal/fetch.pb-c.h"

#define M(id, name, req, resp, nfds) {id, name, &criod__internal__##req##__descriptor, \
				      &criod__internal__##resp##__descriptor, nfds, NULL, 0}

const struct ipc_method fetch_methods[FETCH_N_METHODS] = {
	M(FETCH_START, "FetchStart", fetch_start_request, fetch_start_response, 0),
	M(FETCH_MANIFEST, "FetchManifest", fetch_manifest_request, fetch_manifest_response, 0),
	M(FETCH_BLOB, "FetchBlob", fetch_blob_request, fetch_blob_response, 0),
	M(FETCH_LAYER, "FetchLayer", fetch_layer_request, fetch_layer_response, 1),
	M(FETCH_CONNECT, "FetchConnect", fetch_connect_request, fetch_connect_response, 0),
};

const struct ipc_method *fetch_method(uint32_t id)
{
	return id >= 1 && id <= FETCH_N_METHODS ? &fetch_methods[id - 1] : NULL;
}
