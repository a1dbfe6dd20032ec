/* RDMA's parts that need no device: what detection says on this host, and
 * (in builds with RDMA) the receiver's pool sizing, the immediate that
 * names a slot and a chunk, and the sender's credits. The data path itself
 * runs only where a device exists (.github/workflows/rdma.yml). */
#include "check.h"
#include "core/transfer/rdma/rdma.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#if NL_RDMA
#include "core/transfer/rdma/slots.h"
#include "core/transfer/rdma/verbs.h"

#include <dlfcn.h>

/* Every function of the table is found in the installed rdma-core: a name
 * that is wrong would otherwise show only on a host with a device. */
static void verbs_table(void) {
  void *probe = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
  if (probe == NULL) {
    check_skip("rdma-core's table (libibverbs1 not installed here)");
    return;
  }
  dlclose(probe);
  char why[200] = "";
  const nl_verbs *v = nl_verbs_load(why, sizeof why);
  CHECK(v != NULL);
  if (v == NULL)
    fprintf(stderr, "nl_verbs_load: %s\n", why);
  else
    CHECK(v->get_device_list != NULL && v->get_src_port != NULL);
}

static void pool_sizing(void) {
  /* 4 MiB chunks: 16 slots fit the 64 MiB bound. */
  CHECK(nl_rdma_pool_slots(4u << 20, 1000) == 16);
  /* 16 MiB chunks: only 4 do. */
  CHECK(nl_rdma_pool_slots(16u << 20, 1000) == 4);
  /* Never more slots than chunks, never none. */
  CHECK(nl_rdma_pool_slots(1u << 20, 3) == 3);
  CHECK(nl_rdma_pool_slots(1u << 20, 0) == 1);
  CHECK(nl_rdma_pool_slots(128u << 20, 10) == 1);
}

static void immediates(void) {
  uint16_t slot;
  uint32_t chunk;
  CHECK(nl_rdma_imm_parse(nl_rdma_imm(5, 131071), 16, 131072, &slot, &chunk));
  CHECK(slot == 5 && chunk == 131071);
  CHECK(nl_rdma_imm_parse(nl_rdma_imm(0, 0), 1, 1, &slot, &chunk));
  CHECK(slot == 0 && chunk == 0);
  /* A slot the pool does not have, or a chunk past the file: refused. */
  CHECK(!nl_rdma_imm_parse(nl_rdma_imm(4, 0), 4, 10, &slot, &chunk));
  CHECK(!nl_rdma_imm_parse(nl_rdma_imm(0, 10), 4, 10, &slot, &chunk));
  CHECK(!nl_rdma_imm_parse(UINT32_MAX, 16, 131072, &slot, &chunk));
}

static void credits(void) {
  nl_rdma_credits c;
  nl_rdma_credits_init(&c, 3);
  CHECK(c.count == 3 && c.free_count == 3);
  int a = nl_rdma_credit_take(&c, 10);
  int b = nl_rdma_credit_take(&c, 11);
  int d = nl_rdma_credit_take(&c, 12);
  CHECK(a >= 0 && b >= 0 && d >= 0 && a != b && b != d && a != d);
  /* Every slot is in flight: the sender waits for an answer. */
  CHECK(nl_rdma_credit_take(&c, 13) == -1);
  CHECK(c.free_count == 0);
  /* The receiver's CHUNK answer for 11 frees its slot, and that one only. */
  CHECK(nl_rdma_credit_return(&c, 11));
  CHECK(c.free_count == 1);
  CHECK(nl_rdma_credit_take(&c, 13) == b);
  /* An answer for a chunk no slot holds (sent on a TCP stream, or
   * answered twice) gives nothing back. */
  CHECK(!nl_rdma_credit_return(&c, 11));
  CHECK(!nl_rdma_credit_return(&c, 99));
  CHECK(c.free_count == 0);
  /* The queue pair fails: the unanswered chunks come back, to be queued
   * for TCP, and every slot is free. */
  uint32_t back[NL_RDMA_SLOTS_MAX];
  size_t n = nl_rdma_credits_drain(&c, back);
  CHECK(n == 3);
  bool seen10 = false, seen12 = false, seen13 = false;
  for (size_t i = 0; i < n; i++) {
    seen10 |= back[i] == 10;
    seen12 |= back[i] == 12;
    seen13 |= back[i] == 13;
  }
  CHECK(seen10 && seen12 && seen13);
  CHECK(c.free_count == 3);
  CHECK(nl_rdma_credits_drain(&c, back) == 0);
  /* More slots than the most are capped. */
  nl_rdma_credits_init(&c, 1000);
  CHECK(c.count == NL_RDMA_SLOTS_MAX);
  /* The free marker is never a chunk. */
  CHECK(nl_rdma_credit_take(&c, NL_RDMA_SLOT_FREE) == -1);
}
#endif

static int not_dot(const struct dirent *e) { return e->d_name[0] != '.'; }

/* The test's own look at sysfs, not detect.c's, so that the two can
 * disagree. */
static bool sysfs_lists_a_device(void) {
  struct dirent **names = NULL;
  int n = scandir("/sys/class/infiniband", &names, not_dot, NULL);
  for (int i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return n > 0;
}

/* On a host without a device, detection says none, and why. On one with
 * a device, what it says must at least be consistent. */
static void detection(void) {
  nl_rdma_caps caps;
  int usable = nl_rdma_detect(&caps);
  CHECK(usable == caps.usable);
  if (!nl_rdma_built()) {
    CHECK(usable == 0);
    CHECK_CONTAINS(caps.why, "this build has no RDMA");
  } else if (!sysfs_lists_a_device()) {
    CHECK(usable == 0);
    CHECK_CONTAINS(caps.why, "no RDMA device");
    CHECK(caps.list[0] == '\0');
  } else if (usable > 0) {
    CHECK(caps.list[0] != '\0');
    CHECK(caps.why[0] == '\0');
  } else {
    CHECK(caps.why[0] != '\0');
  }
  printf("rdma detection here: %d usable%s%s%s%s\n", usable,
         caps.list[0] ? ": " : "", caps.list, caps.why[0] ? "; " : "",
         caps.why);
}

int main(void) {
  detection();
#if NL_RDMA
  CHECK(nl_rdma_built());
  pool_sizing();
  immediates();
  verbs_table();
  credits();
#else
  CHECK(!nl_rdma_built());
#endif
  return check_report("test_rdma");
}
