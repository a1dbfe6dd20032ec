/* The tree digest of a file, hashed on every core: protocol v3's identity
 * of a file's contents (docs/protocol.md, "The tree digest").
 *
 * The tree digest is the SHA-256 of: the label "nodelua-tree-v1" and a NUL
 * byte, the file's size (8 bytes, big-endian), the chunk size (4 bytes,
 * big-endian), then the SHA-256 of each chunk of the file, in order (the
 * last chunk may be short; an empty file has none). The chunk digests are
 * independent, so workers hash them in parallel, one chunk each at a time,
 * each reading its chunk with pread into a buffer of its own: memory is
 * threads x chunk size, whatever the file's size. Precedent: the tree
 * hashes of Amazon S3 Glacier and S3's multipart checksums. */
#ifndef NODELUA_TRANSFER_HASHPOOL_H
#define NODELUA_TRANSFER_HASHPOOL_H

#include "core/hash.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NL_TREE_LABEL "nodelua-tree-v1"
#define NL_TREE_MAX_THREADS 256

/* The number of chunks of a file of size bytes. */
uint64_t nl_tree_chunks(uint64_t size, uint32_t chunk_size);

/* The tree digest from the chunk digests (chunks x NL_SHA256_SIZE bytes).
 * Returns 0 or -1. */
int nl_tree_root(uint64_t size, uint32_t chunk_size, const uint8_t *digests,
                 uint64_t chunks, uint8_t root[NL_SHA256_SIZE]);

/* Called from a worker as each chunk is hashed, in no particular order, with
 * its digest already in place. A non-zero answer stops the hashing: the
 * workers take no new chunk, and nl_tree_hash_fd returns -ECANCELED. */
typedef int (*nl_tree_chunk_cb)(void *ud, uint64_t index);

/* The online CPUs: the default number of workers. */
unsigned nl_hash_threads_default(void);

/* Hashes the size bytes of fd in chunks of chunk_size (a power of two from
 * 64 KiB to 64 MiB) on threads workers (0: the online CPUs; at most
 * NL_TREE_MAX_THREADS): digests receives chunks x NL_SHA256_SIZE bytes,
 * root the tree digest. chunk_done may be NULL. Returns 0, or -errno: the
 * first read error any worker met (EIO for a file shorter than size), or
 * -ENOMEM, -EINVAL for a bad chunk size, -ECANCELED when chunk_done said
 * stop. */
int nl_tree_hash_fd(int fd, uint64_t size, uint32_t chunk_size,
                    unsigned threads, uint8_t *digests,
                    uint8_t root[NL_SHA256_SIZE], nl_tree_chunk_cb chunk_done,
                    void *ud);

#endif
