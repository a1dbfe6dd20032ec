/* rdma-core's libibverbs and librdmacm, loaded with dlopen when RDMA is
 * first used, never at start: the agent of a node without an RDMA device
 * (nearly all) maps neither library nor the netlink ones they pull in, so
 * they cost it no memory (README, "Footprint"). The headers are rdma-core's;
 * only the functions that are symbols (not inline) go through this table.
 * Built only with NODELUA_RDMA on. */
#ifndef NODELUA_TRANSFER_RDMA_VERBS_H
#define NODELUA_TRANSFER_RDMA_VERBS_H

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
  __typeof__(&ibv_get_device_list) get_device_list;
  __typeof__(&ibv_free_device_list) free_device_list;
  __typeof__(&ibv_get_device_name) get_device_name;
  __typeof__(&ibv_open_device) open_device;
  __typeof__(&ibv_close_device) close_device;
  __typeof__(&ibv_query_device) query_device;
  __typeof__(&(ibv_query_port)) query_port_compat;
  __typeof__(&_ibv_query_gid_ex) query_gid_ex;
  __typeof__(&ibv_alloc_pd) alloc_pd;
  __typeof__(&ibv_dealloc_pd) dealloc_pd;
  __typeof__(&(ibv_reg_mr)) reg_mr;
  __typeof__(&ibv_dereg_mr) dereg_mr;
  __typeof__(&ibv_create_cq) create_cq;
  __typeof__(&ibv_destroy_cq) destroy_cq;
  __typeof__(&ibv_wc_status_str) wc_status_str;
  __typeof__(&ibv_modify_qp) modify_qp;
  __typeof__(&rdma_create_event_channel) create_event_channel;
  __typeof__(&rdma_destroy_event_channel) destroy_event_channel;
  __typeof__(&rdma_create_id) create_id;
  __typeof__(&rdma_destroy_id) destroy_id;
  __typeof__(&rdma_bind_addr) bind_addr;
  __typeof__(&rdma_listen) listen;
  __typeof__(&rdma_resolve_addr) resolve_addr;
  __typeof__(&rdma_resolve_route) resolve_route;
  __typeof__(&rdma_connect) connect;
  __typeof__(&rdma_accept) accept;
  __typeof__(&rdma_reject) reject;
  __typeof__(&rdma_disconnect) disconnect;
  __typeof__(&rdma_get_cm_event) get_cm_event;
  __typeof__(&rdma_ack_cm_event) ack_cm_event;
  __typeof__(&rdma_create_qp) create_qp;
  __typeof__(&rdma_destroy_qp) destroy_qp;
  __typeof__(&rdma_event_str) event_str;
  __typeof__(&rdma_get_src_port) get_src_port;
} nl_verbs;

/* The table, loading both libraries the first time (thread-safe). NULL
 * with why set when they cannot be loaded (rdma-core not installed). */
const nl_verbs *nl_verbs_load(char *why, size_t whylen);

/* A port's attributes, through the provider's extended call when it has
 * one (as rdma-core's own inline ibv_query_port does). */
int nl_verbs_query_port(const nl_verbs *v, struct ibv_context *ctx,
                        uint8_t port, struct ibv_port_attr *attr);

#endif
