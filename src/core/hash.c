#include "hash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

struct nl_sha256 {
  EVP_MD_CTX *ctx;
};

nl_sha256 *nl_sha256_new(void) {
  nl_sha256 *h = malloc(sizeof *h);
  if (h == NULL)
    return NULL;
  h->ctx = EVP_MD_CTX_new();
  if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(h->ctx);
    free(h);
    return NULL;
  }
  return h;
}

int nl_sha256_update(nl_sha256 *h, const void *data, size_t len) {
  return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -1;
}

int nl_sha256_final(nl_sha256 *h, uint8_t out[NL_SHA256_SIZE]) {
  unsigned n = 0;
  if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != NL_SHA256_SIZE)
    return -1;
  return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

void nl_sha256_free(nl_sha256 *h) {
  if (h == NULL)
    return;
  EVP_MD_CTX_free(h->ctx);
  free(h);
}

int nl_sha256_buffer(const void *data, size_t len,
                     uint8_t out[NL_SHA256_SIZE]) {
  unsigned n = 0;
  return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 &&
                 n == NL_SHA256_SIZE
             ? 0
             : -1;
}

int nl_sha256_file_range(int fd, uint64_t offset, uint64_t len,
                         uint8_t out[NL_SHA256_SIZE]) {
  enum { BUF = 256 * 1024 };
  nl_sha256 *h = nl_sha256_new();
  unsigned char *buf = malloc(BUF);
  int rc = -1;
  if (h == NULL || buf == NULL) {
    errno = ENOMEM;
    goto done;
  }
  while (len > 0) {
    size_t want = len < BUF ? (size_t)len : BUF;
    ssize_t got = pread(fd, buf, want, (off_t)offset);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      goto done;
    if (got == 0) {
      errno = EIO; /* the file is shorter than the range */
      goto done;
    }
    if (nl_sha256_update(h, buf, (size_t)got) != 0) {
      errno = EIO;
      goto done;
    }
    offset += (uint64_t)got;
    len -= (uint64_t)got;
  }
  rc = nl_sha256_final(h, out);
done:
  free(buf);
  nl_sha256_free(h);
  return rc;
}

void nl_hex(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

void nl_sha256_hex(const uint8_t digest[NL_SHA256_SIZE],
                   char out[NL_SHA256_HEX_SIZE]) {
  nl_hex(digest, NL_SHA256_SIZE, out);
}
