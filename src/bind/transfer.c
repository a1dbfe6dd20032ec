/* nodelua.transfer: sending files from one-shot commands.
 *
 *   local result, err, code = transfer.send_file({host = , port = , path = ,
 *     name = nil, key = , node_id = nil, expect_id = nil, streams = 0,
 *     chunk_size = 4 MiB, timeout = 30, encrypt = false, replace = false,
 *     sha256 = false, hash_threads = 0, rdma = "auto"},
 *     function(so_far) end)
 *   node_id: this node's id (nil: a random one for this send);
 *   expect_id: the id the receiver must prove (nil: any, for host:port);
 *   replace: replace a file of the same name (else "exists" fails it);
 *   sha256: both sides also compute and compare the plain SHA-256;
 *   streams: data streams, 1 to 64, or 0 for auto (4, doubled up to 16
 *            while the rate grows by a tenth);
 *   hash_threads: workers hashing chunks (0: the online CPUs);
 *   rdma: TRANSFER_RDMA, "auto", "off" or "required";
 *   rdma_fail_after_chunks: for tests, the queue pair is put in error
 *            after this many chunks went over RDMA (0: never).
 *   result: {size, chunks, chunks_skipped, chunks_sent, chunks_resent,
 *            bytes_sent, seconds, tree, sha256 (with sha256), peer_id,
 *            hashed_at_first_data, streams, chunks_rdma, rdma_note (why
 *            RDMA was not used, or stopped being used; absent if it was
 *            not proposed or carried the whole transfer)}
 *
 * It blocks the calling Lua thread (the transfer itself runs on worker
 * threads) and calls the progress function from it every 0.2 s while
 * chunks are being verified, and once at the end of a transfer that
 * succeeded: it is for `nodelua send`, never the agent's
 * loop. SIGINT or SIGTERM meanwhile ends the process at once with 130 or
 * 143, as scp or rsync do: the receiver keeps what it verified, and
 * sending the same file again resumes.
 *
 *   transfer.rdma() says whether this host can use RDMA (below). */
#include "runtime.h"
#include "core/portable.h"

#include "core/transfer/rdma/rdma.h"
#include "core/transfer/transfer.h"

#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  nl_transfer_config cfg;
  const char *host, *path, *name;
  int port;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int rc;
  nl_transfer_result result, so_far;
  unsigned progress_seq;
  char err[512];
} send_job;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

static void on_progress(void *ud, const nl_transfer_result *r) {
  send_job *j = ud;
  /* Called with the sender's lock held, from its threads: copy only. */
  pthread_mutex_lock(&j->lock);
  j->so_far = *r;
  j->progress_seq++;
  pthread_mutex_unlock(&j->lock);
}

static void *run(void *arg) {
  nl_thread_name("nl-send");
  send_job *j = arg;
  nl_transfer_result result;
  char err[512] = "";
  int rc = nl_transfer_send(j->host, j->port, j->path, j->name, &j->cfg,
                            on_progress, j, &result, err, sizeof err);
  pthread_mutex_lock(&j->lock);
  j->rc = rc;
  j->result = result;
  memcpy(j->err, err, sizeof err);
  j->done = true;
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->lock);
  return NULL;
}

static void push_result(lua_State *L, const nl_transfer_result *r) {
  lua_createtable(L, 0, 16);
  lua_pushinteger(L, (lua_Integer)r->size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, r->chunks);
  lua_setfield(L, -2, "chunks");
  lua_pushinteger(L, r->chunks_skipped);
  lua_setfield(L, -2, "chunks_skipped");
  lua_pushinteger(L, r->chunks_sent);
  lua_setfield(L, -2, "chunks_sent");
  lua_pushinteger(L, r->chunks_resent);
  lua_setfield(L, -2, "chunks_resent");
  lua_pushinteger(L, (lua_Integer)r->bytes_sent);
  lua_setfield(L, -2, "bytes_sent");
  lua_pushnumber(L, r->seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushstring(L, r->tree);
  lua_setfield(L, -2, "tree");
  if (r->sha256[0] != '\0') {
    lua_pushstring(L, r->sha256);
    lua_setfield(L, -2, "sha256");
  }
  lua_pushinteger(L, r->hashed_at_first_data);
  lua_setfield(L, -2, "hashed_at_first_data");
  lua_pushinteger(L, r->streams);
  lua_setfield(L, -2, "streams");
  lua_pushstring(L, r->peer_id);
  lua_setfield(L, -2, "peer_id");
  lua_pushinteger(L, r->chunks_rdma);
  lua_setfield(L, -2, "chunks_rdma");
  if (r->rdma_note[0] != '\0') {
    lua_pushstring(L, r->rdma_note);
    lua_setfield(L, -2, "rdma_note");
  }
}

static const char *opt_string(lua_State *L, const char *key, bool required) {
  lua_getfield(L, 1, key);
  const char *v =
      required ? luaL_checkstring(L, -1) : luaL_optstring(L, -1, NULL);
  lua_pop(L, 1); /* the table keeps the string alive */
  if (required && v == NULL)
    luaL_error(L, "send_file: %s is required", key);
  return v;
}

static lua_Integer opt_int(lua_State *L, const char *key, lua_Integer dflt,
                           lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, 1, key);
  lua_Integer v = luaL_optinteger(L, -1, dflt);
  lua_pop(L, 1);
  if (v < lo || v > hi)
    luaL_error(L, "send_file: %s must be from %d to %d", key, (int)lo, (int)hi);
  return v;
}

/* TRANSFER_RDMA's text as an nl_rdma_mode; nil is auto. */
int nl_transfer_rdma_mode(lua_State *L, const char *mode) {
  static const char *const modes[] = {"auto", "off", "required"};
  for (int i = 0; mode != NULL && i < 3; i++)
    if (strcmp(mode, modes[i]) == 0)
      return i;
  if (mode != NULL)
    luaL_error(L, "rdma must be auto, off or required, not '%s'", mode);
  return 0;
}

static int l_send_file(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  bool has_progress = lua_isfunction(L, 2);
  send_job *j = lua_newuserdatauv(L, sizeof *j, 0); /* freed by Lua */
  memset(j, 0, sizeof *j);
  j->host = opt_string(L, "host", true);
  j->path = opt_string(L, "path", true);
  j->name = opt_string(L, "name", false);
  j->port = (int)opt_int(L, "port", 7879, 1, 65535);
  lua_getfield(L, 1, "key");
  size_t key_len;
  j->cfg.key = (const uint8_t *)luaL_checklstring(L, -1, &key_len);
  lua_pop(L, 1);
  j->cfg.key_len = key_len;
  j->cfg.node_id = opt_string(L, "node_id", false);
  j->cfg.expect_id = opt_string(L, "expect_id", false);
  j->cfg.streams = (int)opt_int(L, "streams", 0, 0, 64); /* 0: auto */
  j->cfg.chunk_size =
      (uint32_t)opt_int(L, "chunk_size", 4 * 1024 * 1024, 65536, 67108864);
  j->cfg.timeout_seconds = (int)opt_int(L, "timeout", 30, 1, 3600);
  lua_getfield(L, 1, "encrypt");
  j->cfg.encrypt = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "replace");
  j->cfg.replace = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "sha256");
  j->cfg.sha256 = lua_toboolean(L, -1);
  lua_pop(L, 1);
  j->cfg.hash_threads = (unsigned)opt_int(L, "hash_threads", 0, 0, 256);
  j->cfg.rdma = nl_transfer_rdma_mode(L, opt_string(L, "rdma", false));
  j->cfg.rdma_fail_after_chunks =
      (uint32_t)opt_int(L, "rdma_fail_after_chunks", 0, 0, 1 << 20);
  /* j stays on the stack (index 3) until this returns: the sending thread
   * uses it while progress callbacks run Lua, and so its collector. */
  pthread_mutex_init(&j->lock, NULL);
  pthread_cond_init(&j->cond, NULL);

  struct sigaction act = {.sa_handler = on_signal}, old_int, old_term;
  sigemptyset(&act.sa_mask);
  interrupted = 0;
  sigaction(SIGINT, &act, &old_int);
  sigaction(SIGTERM, &act, &old_term);
  pthread_t thread;
  int started = pthread_create(&thread, NULL, run, j);
  if (started != 0) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return nl_push_failure(L, started, "cannot start a thread: %s",
                           strerror(started));
  }
  unsigned seen = 0;
  for (;;) {
    pthread_mutex_lock(&j->lock);
    if (!j->done)
      nl_transfer_cond_wait(&j->cond, &j->lock, 200);
    bool done = j->done;
    nl_transfer_result so_far = j->so_far;
    unsigned seq = j->progress_seq;
    pthread_mutex_unlock(&j->lock);
    if (interrupted) {
      /* As scp does: out at once; the receiver keeps what it verified. */
      fputs("\ninterrupted; sending the same file again resumes\n", stderr);
      _exit(interrupted == SIGINT ? 130 : 143);
    }
    if (done)
      break;
    if (has_progress && seq != seen) {
      seen = seq;
      lua_pushvalue(L, 2);
      push_result(L, &so_far);
      /* Logged if it fails; a progress display must not stop the
       * transfer. */
      nl_runtime_pcall(L, 1, 0, NL_CALL_BOUNDED, "progress callback failed");
    }
  }
  pthread_join(thread, NULL);
  /* The bar ends at where the transfer ended, even one too quick for a
   * single update on the way. */
  if (has_progress && j->rc == 0) {
    lua_pushvalue(L, 2);
    push_result(L, &j->result);
    nl_runtime_pcall(L, 1, 0, NL_CALL_BOUNDED, "progress callback failed");
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  pthread_cond_destroy(&j->cond);
  pthread_mutex_destroy(&j->lock);
  /* The core says why in words; no single errno stands for a refused
   * offer or a peer that failed its proof, so the code is EIO. */
  if (j->rc != 0)
    return nl_push_failure(L, EIO, "%s", j->err);
  push_result(L, &j->result);
  return 1;
}

/* isatty(fd): whether progress can be drawn in place. */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* transfer.rdma() -> {built = , usable = , devices = , why = }: whether
 * this build has RDMA, and which of this host's devices a transfer can
 * use (devices: "rxe0 port 1 (eth0), ..."), or why none. It opens each
 * device: call it at start, not per transfer. */
static int l_rdma(lua_State *L) {
  nl_rdma_caps caps;
  nl_rdma_detect(&caps);
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, nl_rdma_built());
  lua_setfield(L, -2, "built");
  lua_pushinteger(L, caps.usable);
  lua_setfield(L, -2, "usable");
  lua_pushstring(L, caps.list);
  lua_setfield(L, -2, "devices");
  lua_pushstring(L, caps.why);
  lua_setfield(L, -2, "why");
  return 1;
}

static const luaL_Reg transfer_functions[] = {
    {"send_file", l_send_file},
    {"rdma", l_rdma},
    {"isatty", l_isatty},
    {NULL, NULL},
};

int luaopen_nodelua_transfer(lua_State *L) {
  nl_runtime_get(L);
  luaL_newlib(L, transfer_functions);
  return 1;
}
