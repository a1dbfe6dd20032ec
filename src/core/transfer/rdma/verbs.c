/* Loading rdma-core's libraries on first use (see verbs.h). */
#include "verbs.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static nl_verbs table;
static const nl_verbs *loaded;
static char load_error[200];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Every entry of the table, in its order, with the library it is in. */
static const struct {
  const char *name;
  bool cm; /* librdmacm; otherwise libibverbs */
} symbols[] = {
    {"ibv_get_device_list", false},
    {"ibv_free_device_list", false},
    {"ibv_get_device_name", false},
    {"ibv_open_device", false},
    {"ibv_close_device", false},
    {"ibv_query_device", false},
    {"ibv_query_port", false},
    {"_ibv_query_gid_ex", false},
    {"ibv_alloc_pd", false},
    {"ibv_dealloc_pd", false},
    {"ibv_reg_mr", false},
    {"ibv_dereg_mr", false},
    {"ibv_create_cq", false},
    {"ibv_destroy_cq", false},
    {"ibv_wc_status_str", false},
    {"ibv_modify_qp", false},
    {"rdma_create_event_channel", true},
    {"rdma_destroy_event_channel", true},
    {"rdma_create_id", true},
    {"rdma_destroy_id", true},
    {"rdma_bind_addr", true},
    {"rdma_listen", true},
    {"rdma_resolve_addr", true},
    {"rdma_resolve_route", true},
    {"rdma_connect", true},
    {"rdma_accept", true},
    {"rdma_reject", true},
    {"rdma_disconnect", true},
    {"rdma_get_cm_event", true},
    {"rdma_ack_cm_event", true},
    {"rdma_create_qp", true},
    {"rdma_destroy_qp", true},
    {"rdma_event_str", true},
    {"rdma_get_src_port", true},
};

_Static_assert(sizeof(nl_verbs) ==
                   sizeof symbols / sizeof symbols[0] * sizeof(void (*)(void)),
               "one symbol per entry of nl_verbs, in its order");

static void load(void) {
  /* The libraries stay loaded once loaded: their providers keep threads
   * and state that do not survive a dlclose. */
  void *verbs = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
  void *cm = verbs ? dlopen("librdmacm.so.1", RTLD_NOW | RTLD_LOCAL) : NULL;
  if (verbs == NULL || cm == NULL) {
    const char *e = dlerror();
    snprintf(load_error, sizeof load_error,
             "rdma-core's libraries cannot be loaded (%s): install "
             "libibverbs1 and librdmacm1",
             e ? e : "?");
    return;
  }
  void (**slot)(void) = (void (**)(void)) & table;
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    void *f = dlsym(symbols[i].cm ? cm : verbs, symbols[i].name);
    if (f == NULL) {
      snprintf(load_error, sizeof load_error,
               "rdma-core's libraries lack %s: too old a version",
               symbols[i].name);
      return;
    }
    /* POSIX guarantees a data pointer from dlsym converts to a function
     * pointer; memcpy keeps ISO C quiet about it. */
    memcpy(&slot[i], &f, sizeof f);
  }
  loaded = &table;
}

const nl_verbs *nl_verbs_load(char *why, size_t whylen) {
  pthread_once(&once, load);
  if (loaded == NULL)
    snprintf(why, whylen, "%s", load_error);
  return loaded;
}

int nl_verbs_query_port(const nl_verbs *v, struct ibv_context *ctx,
                        uint8_t port, struct ibv_port_attr *attr) {
  struct verbs_context *vctx = verbs_get_ctx_op(ctx, query_port);
  if (vctx != NULL)
    return vctx->query_port(ctx, port, attr, sizeof *attr);
  memset(attr, 0, sizeof *attr);
  return v->query_port_compat(ctx, port,
                              (struct _compat_ibv_port_attr *)(void *)attr);
}
