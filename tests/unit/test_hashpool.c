/* The hash pool: the tree digest is the same whatever the number of
 * workers, matches its definition computed here chunk by chunk with plain
 * SHA-256, reports every chunk once, and fails cleanly on a file shorter
 * than said or a bad chunk size. Run under ASan and TSan too. */
#include "core/hash.h"
#include "core/transfer/hashpool.h"

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

typedef struct {
  atomic_uint calls;
  atomic_uint seen[64];
} counts;

static int on_chunk(void *ud, uint64_t index) {
  counts *c = ud;
  atomic_fetch_add(&c->calls, 1);
  if (index < 64)
    atomic_fetch_add(&c->seen[index], 1);
  return 0;
}

/* Says stop at the third chunk hashed. */
static int stop_at_three(void *ud, uint64_t index) {
  (void)index;
  return atomic_fetch_add((atomic_int *)ud, 1) + 1 >= 3;
}

/* The definition, one chunk at a time on this thread. */
static void reference(const uint8_t *data, size_t size, uint8_t root[32]) {
  uint64_t chunks = nl_tree_chunks(size, CHUNK);
  uint8_t *digests = malloc(chunks * 32 + 1);
  for (uint64_t i = 0; i < chunks; i++) {
    size_t len = size - i * CHUNK < CHUNK ? size - i * CHUNK : CHUNK;
    CHECK(nl_sha256_buffer(data + i * CHUNK, len, digests + i * 32) == 0);
  }
  CHECK(nl_tree_root(size, CHUNK, digests, chunks, root) == 0);
  free(digests);
}

static void test_sizes(void) {
  const size_t sizes[] = {0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 37 * CHUNK + 5};
  uint8_t *data = malloc(sizes[5]);
  for (size_t i = 0; i < sizes[5]; i++)
    data[i] = (uint8_t)(i * 2654435761u >> 13);
  char path[] = "/tmp/nodelua-hashpool-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  CHECK(write(fd, data, sizes[5]) == (ssize_t)sizes[5]);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    uint8_t expect[32];
    reference(data, sizes[s], expect);
    uint64_t chunks = nl_tree_chunks(sizes[s], CHUNK);
    for (unsigned threads = 1; threads <= 5; threads += 2) {
      uint8_t *digests = malloc(chunks * 32 + 1);
      uint8_t root[32];
      counts c;
      memset(&c, 0, sizeof c);
      CHECK(nl_tree_hash_fd(fd, sizes[s], CHUNK, threads, digests, root,
                            on_chunk, &c) == 0);
      CHECK(memcmp(root, expect, 32) == 0);
      CHECK(atomic_load(&c.calls) == chunks);
      for (uint64_t i = 0; i < chunks && i < 64; i++)
        CHECK(atomic_load(&c.seen[i]) == 1);
      free(digests);
    }
  }
  /* The empty file's digest covers its size and chunk size: it is not the
   * SHA-256 of nothing. */
  uint8_t empty[32], nothing[32];
  CHECK(nl_tree_root(0, CHUNK, NULL, 0, empty) == 0);
  CHECK(nl_sha256_buffer("", 0, nothing) == 0);
  CHECK(memcmp(empty, nothing, 32) != 0);

  /* A file shorter than said: the first error, from whichever worker. */
  uint8_t root[32];
  uint8_t *digests = malloc(64 * 32);
  CHECK(nl_tree_hash_fd(fd, 40 * CHUNK, CHUNK, 3, digests, root, NULL, NULL) ==
        -EIO);
  CHECK(nl_tree_hash_fd(fd, CHUNK, 1000, 1, digests, root, NULL, NULL) ==
        -EINVAL);
  CHECK(nl_tree_hash_fd(-1, CHUNK, CHUNK, 2, digests, root, NULL, NULL) ==
        -EBADF);
  /* A caller that says stop (a sender whose receiver failed) gets its
   * thread back without the rest of the file being hashed. */
  atomic_int calls = 0;
  CHECK(nl_tree_hash_fd(fd, 32 * CHUNK, CHUNK, 2, digests, root, stop_at_three,
                        &calls) == -ECANCELED);
  CHECK(atomic_load(&calls) >= 3 && atomic_load(&calls) < 32);
  free(digests);

  /* Plain SHA-256 of the whole file, as sha256sum has it. */
  uint8_t whole[32], expect_whole[32];
  CHECK(nl_sha256_file_range(fd, 0, sizes[5], whole) == 0);
  CHECK(nl_sha256_buffer(data, sizes[5], expect_whole) == 0);
  CHECK(memcmp(whole, expect_whole, 32) == 0);
  close(fd);
  free(data);
}

int main(void) {
  test_sizes();
  return check_report("test_hashpool");
}
