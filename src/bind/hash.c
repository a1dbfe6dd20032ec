/* nodelua.hash: a file's digest, for `nodelua hash`.
 *   file(path, {sha256 = false, threads = 0, chunk_size = 4 MiB})
 * returns the hex tree digest (hashpool.h: every chunk hashed in parallel
 * on threads workers, 0 for the online CPUs) and the number of chunks, or
 * with sha256 = true the plain SHA-256 (sha256sum's). It blocks the
 * calling thread until the file is hashed: it is for commands that have
 * nothing else to do. On failure: nil, message, errno. */
#include "runtime.h"

#include "core/hash.h"
#include "core/transfer/hashpool.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CHUNK (4u * 1024 * 1024)

static lua_Integer opt_field(lua_State *L, const char *key, lua_Integer def) {
  if (!lua_istable(L, 2))
    return def;
  lua_getfield(L, 2, key);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static int opt_flag(lua_State *L, const char *key) {
  if (!lua_istable(L, 2))
    return 0;
  lua_getfield(L, 2, key);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer threads = opt_field(L, "threads", 0);
  lua_Integer chunk = opt_field(L, "chunk_size", DEFAULT_CHUNK);
  luaL_argcheck(L, threads >= 0 && threads <= NL_TREE_MAX_THREADS, 2,
                "threads: 0 (the online CPUs) to 256");
  luaL_argcheck(L,
                chunk >= 65536 && chunk <= 64 * 1024 * 1024 &&
                    (chunk & (chunk - 1)) == 0,
                2, "chunk_size: a power of two from 64 KiB to 64 MiB");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0)
    return nl_push_failure(L, errno, "%s: %s", path, strerror(errno));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = errno;
    close(fd);
    return nl_push_failure(L,
                           S_ISDIR(st.st_mode) ? EISDIR
                           : e                 ? e
                                               : EINVAL,
                           "%s: not a regular file", path);
  }
  uint8_t root[NL_SHA256_SIZE];
  char hex[NL_SHA256_HEX_SIZE];
  uint64_t chunks = nl_tree_chunks((uint64_t)st.st_size, (uint32_t)chunk);
  int rc;
  if (opt_flag(L, "sha256")) {
    rc = nl_sha256_file_range(fd, 0, (uint64_t)st.st_size, root) == 0 ? 0
                                                                      : -errno;
  } else {
    uint8_t *digests = malloc(chunks ? chunks * NL_SHA256_SIZE : 1);
    rc = digests == NULL
             ? -ENOMEM
             : nl_tree_hash_fd(fd, (uint64_t)st.st_size, (uint32_t)chunk,
                               (unsigned)threads, digests, root, NULL, NULL);
    free(digests);
  }
  close(fd);
  if (rc != 0)
    return nl_push_failure(L, -rc, "%s: %s", path, strerror(-rc));
  nl_sha256_hex(root, hex);
  lua_pushstring(L, hex);
  lua_pushinteger(L, (lua_Integer)chunks);
  return 2;
}

static int l_threads(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)nl_hash_threads_default());
  return 1;
}

static const luaL_Reg hash_functions[] = {
    {"file", l_file},
    {"default_threads", l_threads},
    {NULL, NULL},
};

int luaopen_nodelua_hash(lua_State *L) {
  luaL_newlib(L, hash_functions);
  return 1;
}
