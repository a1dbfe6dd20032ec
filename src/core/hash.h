/* SHA-256 through OpenSSL's EVP interface: streaming, over a buffer, and
 * over a range of a file read with pread (so that several workers can hash
 * different chunks of one open file at once). */
#ifndef NODELUA_HASH_H
#define NODELUA_HASH_H

#include <stddef.h>
#include <stdint.h>

#define NL_SHA256_SIZE 32
#define NL_SHA256_HEX_SIZE 65 /* 64 digits and a NUL */

typedef struct nl_sha256 nl_sha256;

/* NULL when out of memory. */
nl_sha256 *nl_sha256_new(void);
int nl_sha256_update(nl_sha256 *h, const void *data, size_t len);
/* Writes the digest and makes h ready for a new message. */
int nl_sha256_final(nl_sha256 *h, uint8_t out[NL_SHA256_SIZE]);
void nl_sha256_free(nl_sha256 *h);

int nl_sha256_buffer(const void *data, size_t len, uint8_t out[NL_SHA256_SIZE]);

/* Hashes len bytes of fd from offset. Returns 0, or -1 with errno set (a
 * read error, or EIO for a file shorter than offset + len). */
int nl_sha256_file_range(int fd, uint64_t offset, uint64_t len,
                         uint8_t out[NL_SHA256_SIZE]);

void nl_sha256_hex(const uint8_t digest[NL_SHA256_SIZE],
                   char out[NL_SHA256_HEX_SIZE]);

/* n bytes as 2n lower-case hex digits and a NUL, into out[2n + 1]. */
void nl_hex(const uint8_t *in, size_t n, char *out);

#endif
