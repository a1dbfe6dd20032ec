/* SHA-256: the standard test vectors, streaming equals one-shot, and file
 * ranges read with pread equal the same bytes hashed from memory. */
#include "check.h"
#include "core/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static const char *hex_of(const void *data, size_t len) {
  static char hex[NL_SHA256_HEX_SIZE];
  uint8_t d[NL_SHA256_SIZE];
  CHECK(nl_sha256_buffer(data, len, d) == 0);
  nl_sha256_hex(d, hex);
  return hex;
}

static void vectors(void) {
  /* FIPS 180-2 examples and the empty message. */
  CHECK_STR(hex_of("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK_STR(hex_of("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK_STR(hex_of(two, strlen(two)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  char *million = malloc(1000000);
  memset(million, 'a', 1000000);
  CHECK_STR(hex_of(million, 1000000),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  /* The same million in uneven pieces, and the context reused after. */
  nl_sha256 *h = nl_sha256_new();
  size_t at = 0, step = 1;
  while (at < 1000000) {
    size_t n = step < 1000000 - at ? step : 1000000 - at;
    CHECK(nl_sha256_update(h, million + at, n) == 0);
    at += n;
    step = step * 3 + 1;
  }
  uint8_t d[NL_SHA256_SIZE];
  char hex[NL_SHA256_HEX_SIZE];
  CHECK(nl_sha256_final(h, d) == 0);
  nl_sha256_hex(d, hex);
  CHECK_STR(hex,
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  CHECK(nl_sha256_update(h, "abc", 3) == 0 && nl_sha256_final(h, d) == 0);
  nl_sha256_hex(d, hex);
  CHECK_STR(hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  nl_sha256_free(h);
  free(million);
}

static void file_ranges(void) {
  char path[] = "/tmp/nodelua-hash-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  size_t size = 3 * 256 * 1024 + 12345; /* past the read buffer, unevenly */
  unsigned char *data = malloc(size);
  for (size_t i = 0; i < size; i++)
    data[i] = (unsigned char)(i * 2654435761u >> 13);
  CHECK(write(fd, data, size) == (ssize_t)size);
  uint8_t from_file[NL_SHA256_SIZE], from_memory[NL_SHA256_SIZE];
  CHECK(nl_sha256_file_range(fd, 0, size, from_file) == 0);
  CHECK(nl_sha256_buffer(data, size, from_memory) == 0);
  CHECK(memcmp(from_file, from_memory, NL_SHA256_SIZE) == 0);
  CHECK(nl_sha256_file_range(fd, 1000, 300000, from_file) == 0);
  CHECK(nl_sha256_buffer(data + 1000, 300000, from_memory) == 0);
  CHECK(memcmp(from_file, from_memory, NL_SHA256_SIZE) == 0);
  CHECK(nl_sha256_file_range(fd, size, 0, from_file) == 0); /* empty */
  CHECK(nl_sha256_buffer("", 0, from_memory) == 0);
  CHECK(memcmp(from_file, from_memory, NL_SHA256_SIZE) == 0);
  /* A range past the end of the file is an error, not a short hash. */
  errno = 0;
  CHECK(nl_sha256_file_range(fd, size - 10, 11, from_file) == -1);
  CHECK(errno == EIO);
  close(fd);
  CHECK(nl_sha256_file_range(fd, 0, 1, from_file) == -1); /* closed */
  unlink(path);
  free(data);
}

int main(void) {
  vectors();
  file_ranges();
  return check_report("test_hash");
}
