/* List* and Stream* answers from one item array; see list_reply.h. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "list_reply.h"
#include "log.h"
#include "status.h"

static size_t varint_len(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t list_item_size(const ProtobufCMessage *item)
{
	size_t sz = protobuf_c_message_get_packed_size(item);
	return 1 + varint_len(sz) + sz; /* field 1, wire type 2: a one-byte tag */
}

size_t list_chunk_end(ProtobufCMessage *const *items, size_t start, size_t n, size_t limit)
{
	size_t end = start, bytes = 0;
	while (end < n) {
		size_t sz = list_item_size(items[end]);
		if (end > start && bytes + sz > limit)
			break;
		bytes += sz;
		end++;
	}
	return end;
}

/* The one field of every List* and Stream* response: its repeated items. */
static const ProtobufCFieldDescriptor *items_field(const ProtobufCMessageDescriptor *desc)
{
	if (desc->n_fields != 1)
		return NULL;
	const ProtobufCFieldDescriptor *f = &desc->fields[0];
	if (f->id != 1 || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	return f;
}

/* Point msg's items at items[start .. end). */
static void set_items(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *items,
		      size_t start, size_t end)
{
	*(size_t *)((char *)msg + f->quantifier_offset) = end - start;
	*(ProtobufCMessage *const **)((char *)msg + f->offset) = items + start;
}

static bool is_stream(const ProtobufCMessageDescriptor *desc)
{
	return strncmp(desc->short_name, "Stream", 6) == 0;
}

void list_reply(struct grpc_call *call, const ProtobufCMessageDescriptor *desc, ProtobufCMessage *const *items,
		size_t n)
{
	const ProtobufCFieldDescriptor *f = items_field(desc);
	/* Room for any of the response messages: one field and its count. */
	union {
		ProtobufCMessage base;
		char room[sizeof(ProtobufCMessage) + sizeof(size_t) + sizeof(void *)];
	} msg;
	if (!f || desc->sizeof_message > sizeof(msg) || (n && items[0]->descriptor != f->descriptor)) {
		log_error(grpc_call_request_id(call), "not a list response", "message=%s", desc->name);
		grpc_call_fail(call, STATUS_INTERNAL, "%s is not a list response", desc->short_name);
		return;
	}
	desc->message_init(&msg.base);
	if (!is_stream(desc)) {
		set_items(&msg.base, f, items, 0, n);
		grpc_call_reply(call, &msg.base);
		return;
	}
	/* Every chunk is queued now: room for all of them, and the first
	 * (which grpc_call_send always takes) may be an item on its own over
	 * LIST_CHUNK_BYTES. */
	size_t total = 0, chunks = 0;
	for (size_t start = 0; start < n; chunks++) {
		size_t end = list_chunk_end(items, start, n, LIST_CHUNK_BYTES);
		for (size_t i = start; i < end; i++)
			total += list_item_size(items[i]);
		start = end;
	}
	grpc_call_set_send_limit(call, total + 5 * chunks + 1);
	for (size_t start = 0, sent = 0; start < n; sent++) {
		size_t end = list_chunk_end(items, start, n, LIST_CHUNK_BYTES);
		set_items(&msg.base, f, items, start, end);
		int r = grpc_call_send(call, &msg.base);
		if (r == -EMSGSIZE) {
			log_warn(grpc_call_request_id(call), "a list item exceeds the message size limit",
				 "message=%s item=%zu", desc->name, start);
			grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED,
				       "item %zu of the list exceeds the message size limit", start);
			return;
		}
		if (r < 0) {
			log_warn_errno(r, grpc_call_request_id(call), "cannot queue a list chunk",
				       "message=%s chunk=%zu items=%zu", desc->name, sent, end - start);
			grpc_call_fail(call, r == -ECANCELED ? STATUS_CANCELLED : STATUS_INTERNAL,
				       "cannot queue chunk %zu of the list", sent);
			return;
		}
		start = end;
	}
	log_debug(grpc_call_request_id(call), "list streamed", "message=%s items=%zu chunks=%zu bytes=%zu",
		  desc->name, n, chunks, total);
	grpc_call_finish(call, STATUS_OK, "%s", "");
}
