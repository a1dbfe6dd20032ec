/* Shared by link.c (the sender's side) and link_recv.c (the receiver's). */
#ifndef NODELUA_TRANSFER_RDMA_LINK_INTERNAL_H
#define NODELUA_TRANSFER_RDMA_LINK_INTERNAL_H

#include "link.h"
#include "slots.h"
#include "verbs.h"

/* Waits up to timeout_ms for the next rdma_cm event, which must be want:
 * 0 (the event in *out to acknowledge, or acknowledged if out is NULL),
 * or -1 with why (another event, its name and status; or none in time). */
int nl_rdma_cm_wait(const nl_verbs *v, struct rdma_event_channel *ch,
                    enum rdma_cm_event_type want, int timeout_ms,
                    struct rdma_cm_event **out, char *why, size_t whylen);
bool nl_rdma_cm_down(const nl_verbs *v, struct rdma_event_channel *ch);
/* An event channel whose fd poll can wait on. */
struct rdma_event_channel *nl_rdma_channel(const nl_verbs *v);
void *nl_rdma_pool_alloc(size_t bytes);

#endif
