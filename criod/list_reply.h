/* The answer of a List* RPC and of its Stream* twin from the same items.
 *
 * Every List*Response and Stream*Response of runtime.v1 has exactly one
 * field, the repeated items (ListPodSandboxResponse.items,
 * StreamPodSandboxesResponse.pod_sandboxes, ...). A List* call is answered
 * with one message holding every item; a Stream* call (KEP-5825) with as
 * many messages as it takes to keep each under LIST_CHUNK_BYTES, then OK.
 * kubelet collects the messages into one list, so the stream is built from
 * one snapshot: every message is queued at once (the call's send limit is
 * raised to what they take), which is the memory the unary answer would
 * take too, and no item can appear twice or be freed under a later chunk. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc.h"

/* A chunk's bound: below every gRPC client's default receive limit
 * (4 MiB), and small enough that a client reads the first items early. */
#define LIST_CHUNK_BYTES ((size_t)1 << 20)

/* The encoded size an item takes inside its response message (the field's
 * tag and length prefix included). */
size_t list_item_size(const ProtobufCMessage *item);

/* The end of the chunk starting at items[start]: the most items whose
 * encoded sizes (list_item_size) stay within limit, at least one. */
size_t list_chunk_end(ProtobufCMessage *const *items, size_t start, size_t n, size_t limit);

/* Answer call with the n items, as one message of desc (a List*Response:
 * grpc_call_reply) or in chunks of desc (a Stream*Response:
 * grpc_call_send ... grpc_call_finish); which one is desc's. Completes the
 * call in every case. */
void list_reply(struct grpc_call *call, const ProtobufCMessageDescriptor *desc, ProtobufCMessage *const *items,
		size_t n);
