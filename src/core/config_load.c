/* Loading the configuration: the built-in defaults, then the service env
 * file, ./.env, --env-file and the environment, the later winning, each
 * value validated by its row of the settings table (config.c). */
#include "config.h"

#include "envfile.h"
#include "log.h"
#include "trust.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NODE_NAME_MAX 63 /* a DNS-SD instance name label */

/* Where each value came from, in increasing order of precedence. */
enum source_rank {
  RANK_DEFAULT,
  RANK_SERVICE,
  RANK_DOTENV,
  RANK_ENV_FILE,
  RANK_ENVIRON
};

typedef struct {
  nl_config *cfg;
  enum source_rank rank;
  const char *file;           /* NULL for the environment */
  const char *secret_in_file; /* a secret variable the file sets, or NULL */
  int rank_of[NL_CFG_COUNT];
  bool via_alias[NL_CFG_COUNT];
} loader;

static void add_warning(nl_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_warning(nl_config *cfg, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  /* Every warning is kept: an env file full of typos shows all of them. */
  char **grown =
      realloc(cfg->warnings, (cfg->warning_count + 1) * sizeof *grown);
  if (grown == NULL)
    return;
  cfg->warnings = grown;
  char *copy = strdup(buf);
  if (copy != NULL)
    cfg->warnings[cfg->warning_count++] = copy;
}

static int set_value(nl_config *cfg, int id, const char *value,
                     const char *source) {
  char *copy = strdup(value);
  if (copy == NULL)
    return -ENOMEM;
  free(cfg->value[id]);
  cfg->value[id] = copy;
  snprintf(cfg->source[id], NL_CONFIG_SOURCE_MAX, "%s", source);
  return 0;
}

static int take_pair(loader *ld, const char *key, const char *value, int line) {
  int id = nl_config_find(key);
  char source[NL_CONFIG_SOURCE_MAX];
  if (ld->file != NULL)
    snprintf(source, sizeof source, "%s line %d", ld->file, line);
  else
    snprintf(source, sizeof source, "the environment");
  if (id < 0) {
    /* Our own prefixes with an unknown name are most likely a typo. */
    if ((strncmp(key, "NODELUA_", 8) == 0 || strncmp(key, "UPDATE_", 7) == 0) &&
        strcmp(key, "NODELUA_SERVICE_ENV_FILE") != 0)
      add_warning(ld->cfg, "unknown variable %s in %s is ignored", key, source);
    return 0;
  }
  bool is_alias =
      strcmp(nl_config_var_info((nl_config_id)(id))->name, key) != 0;
  /* Within one source the primary name beats its alias, whatever the order
   * of the lines. */
  if (is_alias && ld->rank_of[id] == (int)ld->rank && !ld->via_alias[id])
    return 0;
  ld->rank_of[id] = (int)ld->rank;
  ld->via_alias[id] = is_alias;
  if (is_alias)
    snprintf(source + strlen(source), sizeof source - strlen(source),
             " (as %s)", key);
  return set_value(ld->cfg, id, value, source);
}

static int envfile_pair(void *ud, const char *key, const char *value,
                        int line) {
  loader *ld = ud;
  int id = nl_config_find(key);
  if (id >= 0 && nl_config_var_info((nl_config_id)(id))->secret &&
      value[0] != '\0')
    ld->secret_in_file = nl_config_var_info((nl_config_id)(id))->name;
  return take_pair(ud, key, value, line);
}

/* Reads an env file into the loader. An env file says where the agent
 * reports, which folders it writes and which code it runs: it is refused
 * unless it is the agent's or root's and nobody else can write it (nor the
 * folder that holds it); one that sets a secret must not be readable by
 * others either. */
static int read_file(loader *ld, const char *path, enum source_rank rank,
                     bool must_exist, char *err, size_t errlen) {
  nl_envfile_error perr;
  ld->rank = rank;
  ld->file = path;
  ld->secret_in_file = NULL;
  size_t len = 0;
  struct stat st;
  char why[1024];
  char *text =
      nl_trust_read(path, 0, NL_ENVFILE_MAX_BYTES, &len, &st, why, sizeof why);
  if (text == NULL && errno == ENOENT && !must_exist)
    return 0;
  if (text == NULL) {
    snprintf(err, errlen, "%s", why);
    return -EINVAL;
  }
  int rc = nl_envfile_parse(text, len, envfile_pair, ld, &perr);
  free(text);
  if (rc == -EINVAL) {
    snprintf(err, errlen, "%s line %d: %s", path, perr.line, perr.message);
    return rc;
  }
  if (rc < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    return -EINVAL;
  }
  if (ld->secret_in_file != NULL &&
      nl_trust_check(&st, NL_TRUST_SECRET, path, why, sizeof why) != 0) {
    snprintf(err, errlen, "%s (it sets %s)", why, ld->secret_in_file);
    return -EINVAL;
  }
  return 0;
}

static const char *environ_get(char *const *env, const char *name) {
  size_t n = strlen(name);
  if (env == NULL)
    return NULL;
  for (; *env != NULL; env++) {
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
      return *env + n + 1;
  }
  return NULL;
}

static int set_defaults(nl_config *cfg, char *const *env) {
  char buf[PATH_MAX];
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    if (nl_config_var_info((nl_config_id)(i))->default_value == NULL)
      continue; /* computed below, or derived from another setting */
    if (set_value(cfg, i, nl_config_var_info((nl_config_id)(i))->default_value,
                  "the default") != 0)
      return -ENOMEM;
  }
  char host[256] = "localhost";
  if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  host[NODE_NAME_MAX] = '\0';
  if (set_value(cfg, NL_CFG_NODE_NAME, host, "the default") != 0)
    return -ENOMEM;

  const char *home = environ_get(env, "HOME");
  if (home == NULL || home[0] != '/')
    home = "/";
#ifdef __APPLE__
  if (geteuid() == 0)
    snprintf(buf, sizeof buf, "/Library/Application Support/nodelua");
  else
    snprintf(buf, sizeof buf, "%s/Library/Application Support/nodelua", home);
#else
  const char *xdg = environ_get(env, "XDG_STATE_HOME");
  if (geteuid() == 0)
    snprintf(buf, sizeof buf, "/var/lib/nodelua");
  else if (xdg != NULL && xdg[0] == '/')
    snprintf(buf, sizeof buf, "%s/nodelua", xdg);
  else
    snprintf(buf, sizeof buf, "%s%s.local/state/nodelua", home,
             home[strlen(home) - 1] == '/' ? "" : "/");
#endif
  return set_value(cfg, NL_CFG_STATE_DIR, buf, "the default") != 0 ? -ENOMEM
                                                                   : 0;
}

/* Sets id to $NODELUA_STATE_DIR/name unless it was set. 0 or -ENOMEM. */
static int default_under_state(nl_config *cfg, nl_config_id id,
                               const char *name) {
  if (cfg->value[id] != NULL)
    return 0;
  char buf[PATH_MAX + 16];
  snprintf(buf, sizeof buf, "%s/%s", cfg->value[NL_CFG_STATE_DIR], name);
  return set_value(cfg, id, buf, "the default") != 0 ? -ENOMEM : 0;
}

static void describe_value(char *out, size_t outlen, const char *value) {
  /* Values are quoted, control bytes escaped and long ones cut, so that the
   * error stays one readable line. */
  size_t o = 0;
  if (outlen < 8)
    return;
  out[o++] = '"';
  for (size_t i = 0; value[i] && o + 6 < outlen; i++) {
    unsigned char c = (unsigned char)value[i];
    if (i >= 80) {
      o += (size_t)snprintf(out + o, outlen - o, "...");
      break;
    }
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    else
      out[o++] = (char)c;
  }
  out[o++] = '"';
  out[o] = '\0';
}

int nl_config_load(nl_config *cfg, const nl_config_sources *src, char *err,
                   size_t errlen) {
  loader ld;
  int rc;
  memset(cfg, 0, sizeof *cfg);
  memset(&ld, 0, sizeof ld);
  ld.cfg = cfg;
  err[0] = '\0';
  if (set_defaults(cfg, src->environ) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
    goto fail;
  }
  const char *service = src->service_env_file;
  if (service == NULL)
    service = environ_get(src->environ, "NODELUA_SERVICE_ENV_FILE");
  if (service == NULL)
    service = NL_CONFIG_SERVICE_ENV_FILE;
  if (service[0] != '\0' &&
      (rc = read_file(&ld, service, RANK_SERVICE, false, err, errlen)) != 0)
    goto fail;
  if (src->dotenv_file != NULL &&
      (rc = read_file(&ld, src->dotenv_file, RANK_DOTENV, false, err,
                      errlen)) != 0)
    goto fail;
  if (src->env_file != NULL &&
      (rc = read_file(&ld, src->env_file, RANK_ENV_FILE, true, err, errlen)) !=
          0)
    goto fail;
  ld.rank = RANK_ENVIRON;
  ld.file = NULL;
  for (char *const *e = src->environ; e != NULL && *e != NULL; e++) {
    const char *eq = strchr(*e, '=');
    char key[NL_ENVFILE_MAX_KEY + 1];
    if (eq == NULL || (size_t)(eq - *e) > NL_ENVFILE_MAX_KEY)
      continue;
    memcpy(key, *e, (size_t)(eq - *e));
    key[eq - *e] = '\0';
    if ((rc = take_pair(&ld, key, eq + 1, 0)) != 0) {
      snprintf(err, errlen, "out of memory");
      goto fail;
    }
  }
  /* TRANSFER_DIR follows the state directory unless set itself. The
   * receive folder is the agent's own: never a shared place like /tmp,
   * where another user could make the folder (or a symlink in its place)
   * before the agent does. (On macOS, as a user, the state directory is
   * ~/Library/Application Support/nodelua.) */
  if (default_under_state(cfg, NL_CFG_TRANSFER_DIR, "received") != 0 ||
      default_under_state(cfg, NL_CFG_UPDATE_DIR, "updates") != 0 ||
      (cfg->value[NL_CFG_UPDATE_REPOSITORY] == NULL &&
       set_value(cfg, NL_CFG_UPDATE_REPOSITORY,
                 src->update_repository ? src->update_repository
                                        : "nodelua/nodelua",
                 "the default") != 0)) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
    goto fail;
  }
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    char why[512];
    long long number = 0;
    if (nl_config_validate((nl_config_id)i, cfg->value[i], &number, why,
                           sizeof why) != 0) {
      if (nl_config_var_info((nl_config_id)(i))->secret) {
        snprintf(err, errlen, "invalid %s (from %s): %s",
                 nl_config_var_info((nl_config_id)(i))->name, cfg->source[i],
                 why);
      } else {
        char shown[128];
        describe_value(shown, sizeof shown, cfg->value[i]);
        snprintf(err, errlen, "invalid %s=%s (from %s): %s",
                 nl_config_var_info((nl_config_id)(i))->name, shown,
                 cfg->source[i], why);
      }
      rc = -EINVAL;
      goto fail;
    }
    cfg->number[i] = number;
  }
  return 0;
fail:
  nl_config_free(cfg);
  return rc < 0 ? rc : -EINVAL;
}

void nl_config_free(nl_config *cfg) {
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    if (cfg->value[i] != NULL &&
        nl_config_var_info((nl_config_id)(i))->secret) {
      volatile char *p = cfg->value[i];
      while (*p)
        *p++ = 0;
    }
    free(cfg->value[i]);
    cfg->value[i] = NULL;
  }
  for (size_t i = 0; i < cfg->warning_count; i++)
    free(cfg->warnings[i]);
  free(cfg->warnings);
  cfg->warnings = NULL;
  cfg->warning_count = 0;
}

const char *nl_config_str(const nl_config *cfg, nl_config_id id) {
  return cfg->value[id];
}

long long nl_config_num(const nl_config *cfg, nl_config_id id) {
  return cfg->number[id];
}

void nl_config_register_secrets(const nl_config *cfg) {
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    if (nl_config_var_info((nl_config_id)(i))->secret && cfg->value[i] != NULL)
      nl_log_add_secret(cfg->value[i]);
  }
}
