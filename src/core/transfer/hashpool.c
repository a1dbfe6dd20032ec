/* The workers that hash a file's chunks in parallel, and the tree digest
 * over their digests (hashpool.h says what it is). A run starts its
 * workers and joins them before it returns: nothing outlives it, and a
 * worker's only shared state is the next chunk to take (an atomic), the
 * digest array (each worker writes its own chunks' slots) and the first
 * error (under a lock). */
#include "hashpool.h"
#include "core/portable.h"

#include "frame.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Our threads do little on their stacks: a small one keeps the footprint
 * down (glibc's default is 8 MiB of address space each). */
#define WORKER_STACK (256 * 1024)

uint64_t nl_tree_chunks(uint64_t size, uint32_t chunk_size) {
  return nl_frame_chunks(size, chunk_size);
}

int nl_tree_root(uint64_t size, uint32_t chunk_size, const uint8_t *digests,
                 uint64_t chunks, uint8_t root[NL_SHA256_SIZE]) {
  uint8_t head[sizeof NL_TREE_LABEL + 12];
  memcpy(head, NL_TREE_LABEL, sizeof NL_TREE_LABEL); /* with its NUL */
  nl_put_be64(head + sizeof NL_TREE_LABEL, size);
  nl_put_be32(head + sizeof NL_TREE_LABEL + 8, chunk_size);
  nl_sha256 *h = nl_sha256_new();
  if (h == NULL)
    return -1;
  int rc = nl_sha256_update(h, head, sizeof head);
  if (rc == 0 && chunks > 0)
    rc = nl_sha256_update(h, digests, (size_t)chunks * NL_SHA256_SIZE);
  if (rc == 0)
    rc = nl_sha256_final(h, root);
  nl_sha256_free(h);
  return rc;
}

unsigned nl_hash_threads_default(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    return 1;
  return n > NL_TREE_MAX_THREADS ? NL_TREE_MAX_THREADS : (unsigned)n;
}

typedef struct {
  int fd;
  uint64_t size;
  uint32_t chunk_size;
  uint64_t chunks;
  uint8_t *digests;
  nl_tree_chunk_cb chunk_done;
  void *ud;
  atomic_uint_fast64_t next;
  pthread_mutex_t lock;
  int error; /* the first -errno, under lock */
} tree_job;

static void fail(tree_job *job, int error) {
  pthread_mutex_lock(&job->lock);
  if (job->error == 0)
    job->error = error;
  pthread_mutex_unlock(&job->lock);
}

static bool failed(tree_job *job) {
  pthread_mutex_lock(&job->lock);
  bool f = job->error != 0;
  pthread_mutex_unlock(&job->lock);
  return f;
}

/* Reads chunk index whole into buf. Returns its length or -errno. */
static ssize_t read_chunk(const tree_job *job, uint64_t index, uint8_t *buf) {
  uint64_t offset = index * job->chunk_size;
  size_t want = nl_frame_chunk_len(job->size, job->chunk_size, index);
  size_t got = 0;
  while (got < want) {
    ssize_t n = pread(job->fd, buf + got, want - got, (off_t)(offset + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO; /* the file is shorter than it was said to be */
    got += (size_t)n;
  }
  return (ssize_t)got;
}

static void *worker(void *arg) {
  nl_thread_name("nl-hash");
  tree_job *job = arg;
  uint8_t *buf = malloc(job->chunk_size);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (buf == NULL || ctx == NULL) {
    fail(job, -ENOMEM);
    goto done;
  }
  for (;;) {
    uint64_t index = atomic_fetch_add(&job->next, 1);
    if (index >= job->chunks || failed(job))
      break;
    ssize_t n = read_chunk(job, index, buf);
    if (n < 0) {
      fail(job, (int)n);
      break;
    }
    unsigned len = 0;
    uint8_t *slot = job->digests + index * NL_SHA256_SIZE;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, buf, (size_t)n) != 1 ||
        EVP_DigestFinal_ex(ctx, slot, &len) != 1 || len != NL_SHA256_SIZE) {
      fail(job, -EIO);
      break;
    }
    if (job->chunk_done != NULL && job->chunk_done(job->ud, index) != 0) {
      fail(job, -ECANCELED);
      break;
    }
  }
done:
  EVP_MD_CTX_free(ctx);
  free(buf);
  return NULL;
}

static bool chunk_size_ok(uint32_t cs) {
  return cs >= 64 * 1024 && cs <= 64u * 1024 * 1024 && (cs & (cs - 1)) == 0;
}

int nl_tree_hash_fd(int fd, uint64_t size, uint32_t chunk_size,
                    unsigned threads, uint8_t *digests,
                    uint8_t root[NL_SHA256_SIZE], nl_tree_chunk_cb chunk_done,
                    void *ud) {
  if (!chunk_size_ok(chunk_size))
    return -EINVAL;
  tree_job job = {.fd = fd,
                  .size = size,
                  .chunk_size = chunk_size,
                  .chunks = nl_tree_chunks(size, chunk_size),
                  .digests = digests,
                  .chunk_done = chunk_done,
                  .ud = ud};
  atomic_init(&job.next, 0);
  pthread_mutex_init(&job.lock, NULL);
  if (threads == 0)
    threads = nl_hash_threads_default();
  if (threads > NL_TREE_MAX_THREADS)
    threads = NL_TREE_MAX_THREADS;
  if (job.chunks < threads)
    threads = job.chunks > 0 ? (unsigned)job.chunks : 1;
  pthread_t ids[NL_TREE_MAX_THREADS];
  unsigned started = 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, WORKER_STACK);
  /* The calling thread works too: a pool of one starts no thread. */
  for (; started + 1 < threads; started++) {
    if (pthread_create(&ids[started], &attr, worker, &job) != 0)
      break; /* fewer workers, same result */
  }
  pthread_attr_destroy(&attr);
  worker(&job);
  for (unsigned i = 0; i < started; i++)
    pthread_join(ids[i], NULL);
  pthread_mutex_destroy(&job.lock);
  if (job.error != 0)
    return job.error;
  return nl_tree_root(size, chunk_size, digests, job.chunks, root) == 0 ? 0
                                                                        : -EIO;
}
