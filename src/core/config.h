/* Configuration: one table of settings (name, kind, range, default,
 * secrecy, help), loaded from the built-in defaults, the service env file,
 * ./.env,
 * --env-file and the process environment, the later winning, and validated
 * as a whole before anything starts. */
#ifndef NODELUA_CONFIG_H
#define NODELUA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
  NL_CFG_MONITORING_API_URL,
  NL_CFG_MONITORING_API_KEY,
  NL_CFG_NODE_NAME,
  /* Before UPDATE_DIR, whose default is derived from it and which is
   * validated after it (validation goes in this order). */
  NL_CFG_STATE_DIR,
  NL_CFG_LOG,
  NL_CFG_LOG_FORMAT,
  NL_CFG_POLICY_DIR,
  NL_CFG_CALLBACK_BUDGET,
  NL_CFG_REPORT_INTERVAL,
  NL_CFG_METRICS_LISTEN,
  NL_CFG_HOST_PROC,
  NL_CFG_HOST_SYS,
  NL_CFG_HOST_ROOT,
  NL_CFG_HOST_RUN,
  NL_CFG_METRICS_TEXTFILE_DIR,
  NL_CFG_METRICS_COLLECTOR_PROCESSES,
  NL_CFG_METRICS_COLLECTOR_TCPSTAT,
  NL_CFG_API_CA_FILE,
  NL_CFG_HTTP_TIMEOUT,
  NL_CFG_SPOOL_MAX_BYTES,
  NL_CFG_SPOOL_MAX_AGE,
  NL_CFG_TRANSFER_PORT,
  NL_CFG_PEERS,
  NL_CFG_MDNS,
  NL_CFG_CLUSTER_KEY,
  NL_CFG_CLUSTER_KEY_FILE,
  NL_CFG_TRANSFER_DIR,
  NL_CFG_TRANSFER_MAX_BYTES,
  NL_CFG_TRANSFER_STREAMS,
  NL_CFG_TRANSFER_ENCRYPT,
  NL_CFG_TRANSFER_PARTIAL_TTL,
  NL_CFG_TRANSFER_HASH_THREADS,
  NL_CFG_TRANSFER_RDMA,
  NL_CFG_AUTO_UPDATE,
  NL_CFG_UPDATE_CHANNEL,
  NL_CFG_UPDATE_CHECK_INTERVAL,
  NL_CFG_UPDATE_REPOSITORY,
  NL_CFG_UPDATE_DIR,
  NL_CFG_UPDATE_API_URL,
  NL_CFG_UPDATE_PUBLIC_KEY,
  NL_CFG_UPDATE_PUBLIC_KEY_FILE,
  NL_CFG_UPDATE_GITHUB_TOKEN,
  NL_CFG_UPDATE_HEALTH_TIMEOUT,
  NL_CFG_UPDATE_MAX_BYTES,
  NL_CFG_COUNT
} nl_config_id;

/* What a setting holds, which decides how it is validated, how the Lua side
 * sees it, and how --help and README describe it. */
typedef enum {
  NL_KIND_TEXT,         /* min..max bytes, no control characters */
  NL_KIND_TOKEN,        /* min..max printable characters, no spaces */
  NL_KIND_INTEGER,      /* a whole number from min to max, in unit */
  NL_KIND_BOOLEAN,      /* true/false, 1/0, yes/no, on/off */
  NL_KIND_CHOICE,       /* one of choices; number is the choice's value */
  NL_KIND_URL,          /* http:// or https:// URL */
  NL_KIND_PATH,         /* an absolute path */
  NL_KIND_DIR,          /* an existing directory */
  NL_KIND_FILE,         /* a readable regular file */
  NL_KIND_SECRET_FILE,  /* a readable regular file nobody else may read */
  NL_KIND_LISTEN,       /* host:port or [v6]:port, port 0 to 65535 */
  NL_KIND_PEERS,        /* comma-separated host:port or [v6]:port */
  NL_KIND_REPOSITORY,   /* a GitHub owner/name */
  NL_KIND_MINISIGN_KEY, /* a minisign public key (its base64 line) */
  NL_KIND_TRUSTED_FILE, /* a readable file nobody else could have written */
} nl_config_kind;

/* One accepted word of a CHOICE and the number it stands for; words with
 * the same number are synonyms (only the first is shown). */
typedef struct {
  const char *word;
  int value;
} nl_config_choice;

/* One row of the settings table: everything about a setting in one place. */
typedef struct {
  const char *name;
  const char *alias; /* an older name read too, e.g. RUST_LOG; or NULL */
  nl_config_kind kind;
  bool optional; /* empty is accepted (and means "none" or "off") */
  bool secret;   /* never shown, redacted from every log line */
  bool https_unless_loopback; /* URL: plain http only to a loopback host */
  long long min;    /* INTEGER: smallest value; TEXT, TOKEN: shortest */
  long long max;    /* INTEGER: largest value; TEXT, TOKEN: longest */
  const char *unit; /* INTEGER: "seconds", "hours", "bytes"...; or NULL */
  const char *note; /* appended to the form, e.g. "0: any free port" */
  const char *word; /* INTEGER: a word also taken, read as 0 ("auto") */
  const nl_config_choice *choices; /* CHOICE: ended by {NULL, 0} */
  const char *default_value; /* NULL when computed at load (host name...) */
  const char *default_text;  /* as README and --help show it */
  const char *summary;       /* what it does, for --help and README */
} nl_config_var;

#define NL_CONFIG_SOURCE_MAX 320

typedef struct {
  char *value[NL_CFG_COUNT];
  long long number[NL_CFG_COUNT]; /* parsed integer, boolean or choice */
  char source[NL_CFG_COUNT][NL_CONFIG_SOURCE_MAX];
  char **warnings; /* every warning, in the order they were found */
  size_t warning_count;
} nl_config;

typedef struct {
  /* The service env file; NULL means NODELUA_SERVICE_ENV_FILE from environ,
   * else NL_CONFIG_SERVICE_ENV_FILE. Read only if it exists. */
  const char *service_env_file;
  /* Normally "./.env"; read only if it exists; NULL skips it. */
  const char *dotenv_file;
  /* --env-file: must exist. NULL when not given. */
  const char *env_file;
  /* The process environment (NULL-terminated "NAME=value" strings). */
  char *const *environ;
  /* UPDATE_REPOSITORY's default (the build's); NULL: "nodelua/nodelua". */
  const char *update_repository;
} nl_config_sources;

#define NL_CONFIG_SERVICE_ENV_FILE "/etc/nodelua/nodelua.env"

const nl_config_var *nl_config_var_info(nl_config_id id);
/* Finds a variable by its name or alias. Returns -1 when unknown. */
int nl_config_find(const char *name);

/* The accepted form of a setting, as errors, --help and README say it:
 * written from its row (kind, range, unit, note), never by hand. */
void nl_config_expected(nl_config_id id, char *out, size_t outlen);

/* The settings for `nodelua --help`, and README's table as Markdown
 * (`nodelua config --markdown`); both from the one table. */
void nl_config_print_help(FILE *out);
void nl_config_print_markdown(FILE *out);

/* Loads and validates. Returns 0, or -EINVAL with one line in err naming the
 * variable (or file and line) and the expected form; never a secret's value.
 * On error cfg is left freed. */
int nl_config_load(nl_config *cfg, const nl_config_sources *sources, char *err,
                   size_t errlen);
void nl_config_free(nl_config *cfg);

const char *nl_config_str(const nl_config *cfg, nl_config_id id);
long long nl_config_num(const nl_config *cfg, nl_config_id id);

/* Hands every secret value to the logger's redaction list. */
void nl_config_register_secrets(const nl_config *cfg);

/* Validates one value of one variable: 0, or -EINVAL with the reason (never
 * containing the value of a secret) in why. On success *number holds the
 * parsed integer, boolean or level where the type has one. */
int nl_config_validate(nl_config_id id, const char *value, long long *number,
                       char *why, size_t whylen);

#endif
