#include "config.h"

#include "envfile.h"
#include "log.h"
#include "trust.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NODE_NAME_MAX 63 /* a DNS-SD instance name label */

static const nl_config_choice log_levels[] = {{"error", NL_LOG_ERROR},
                                              {"warn", NL_LOG_WARN},
                                              {"warning", NL_LOG_WARN},
                                              {"info", NL_LOG_INFO},
                                              {"debug", NL_LOG_DEBUG},
                                              {"trace", NL_LOG_TRACE},
                                              {NULL, 0}};
static const nl_config_choice log_formats[] = {
    {"text", NL_LOG_TEXT}, {"json", NL_LOG_JSON}, {NULL, 0}};

/* The settings. Their order is the order of --help and README, and of
 * validation: NODELUA_STATE_DIR comes before the folders derived from it.
 * A new setting is one row here and one id in config.h. */
static const nl_config_var vars[NL_CFG_COUNT] = {
    [NL_CFG_MONITORING_API_URL] =
        {.name = "MONITORING_API_URL",
         .kind = NL_KIND_URL,
         .default_value = "http://localhost:3000",
         .summary = "Base URL of the central monitoring API."},
    [NL_CFG_MONITORING_API_KEY] = {.name = "MONITORING_API_KEY",
                                   .kind = NL_KIND_TOKEN,
                                   .secret = true,
                                   .min = 1,
                                   .max = 4096,
                                   .default_value = "dev-api-key",
                                   .summary = "API key sent as X-API-Key."},
    [NL_CFG_NODE_NAME] = {.name = "NODE_NAME",
                          .kind = NL_KIND_TEXT,
                          .min = 1,
                          .max = NODE_NAME_MAX,
                          .default_text = "the host name",
                          .summary = "Friendly name of this node."},
    [NL_CFG_STATE_DIR] =
        {.name = "NODELUA_STATE_DIR",
         .kind = NL_KIND_PATH,
         .default_text =
             "root: /var/lib/nodelua (Linux), /Library/Application "
             "Support/nodelua (macOS); others: $XDG_STATE_HOME/nodelua or "
             "~/.local/state/nodelua (Linux), ~/Library/Application "
             "Support/nodelua (macOS)",
         .summary = "Directory of the agent's persistent state (spool, "
                    "identity, control socket)."},
    [NL_CFG_LOG] = {.name = "NODELUA_LOG",
                    .alias = "RUST_LOG",
                    .kind = NL_KIND_CHOICE,
                    .choices = log_levels,
                    .default_value = "info",
                    .summary = "Log level; RUST_LOG is read as an alias, and "
                               "within one source NODELUA_LOG wins."},
    [NL_CFG_LOG_FORMAT] = {.name = "NODELUA_LOG_FORMAT",
                           .kind = NL_KIND_CHOICE,
                           .choices = log_formats,
                           .default_value = "text",
                           .summary =
                               "Log line format; --log-format overrides it."},
    [NL_CFG_POLICY_DIR] =
        {.name = "NODELUA_POLICY_DIR",
         .kind = NL_KIND_DIR,
         .optional = true,
         .default_value = "",
         .default_text = "(empty: the shipped policies only)",
         .summary = "Directory whose NAME.lua files override the shipped "
                    "policies file by file (see docs/policy.md)."},
    [NL_CFG_CALLBACK_BUDGET] =
        {.name = "NODELUA_CALLBACK_BUDGET",
         .kind = NL_KIND_INTEGER,
         .min = 10000,
         .max = 2000000000LL, /* lua_sethook takes an int count */
         .unit = "Lua instructions",
         .default_value = "50000000",
         .summary = "Instructions one Lua callback may run before it is "
                    "stopped."},
    [NL_CFG_REPORT_INTERVAL] =
        {.name = "REPORT_INTERVAL",
         .kind = NL_KIND_INTEGER,
         .min = 1,
         .max = 86400,
         .unit = "seconds",
         .default_value = "5",
         .summary = "Seconds between reports to the monitoring API."},
    [NL_CFG_METRICS_LISTEN] =
        {.name = "METRICS_LISTEN",
         .kind = NL_KIND_LISTEN,
         .optional = true,
         .default_value = "127.0.0.1:9101",
         .summary = "Address of the local endpoint (/metrics, /healthz); "
                    "empty turns it off."},
    [NL_CFG_API_CA_FILE] =
        {.name = "MONITORING_API_CA_FILE",
         .kind = NL_KIND_FILE,
         .optional = true,
         .note = "PEM",
         .default_value = "",
         .default_text = "(empty: the OS's CA store)",
         .summary = "CA certificates that the API's TLS certificate must "
                    "chain to."},
    [NL_CFG_HTTP_TIMEOUT] = {.name = "NODELUA_HTTP_TIMEOUT",
                             .kind = NL_KIND_INTEGER,
                             .min = 1,
                             .max = 3600,
                             .unit = "seconds",
                             .default_value = "30",
                             .summary = "Seconds a report request may take "
                                        "in all."},
    [NL_CFG_SPOOL_MAX_BYTES] =
        {.name = "NODELUA_SPOOL_MAX_BYTES",
         .kind = NL_KIND_INTEGER,
         .min = 65536,
         .max = 1099511627776LL,
         .unit = "bytes",
         .default_value = "67108864",
         .summary = "Bytes of reports kept while the API is unreachable; "
                    "beyond, the oldest are dropped."},
    [NL_CFG_SPOOL_MAX_AGE] = {.name = "NODELUA_SPOOL_MAX_AGE",
                              .kind = NL_KIND_INTEGER,
                              .min = 1,
                              .max = 87600,
                              .unit = "hours",
                              .default_value = "168",
                              .summary = "Hours a report may wait; older "
                                         "ones are dropped."},
    [NL_CFG_TRANSFER_PORT] =
        {.name = "TRANSFER_PORT",
         .kind = NL_KIND_INTEGER,
         .min = 0,
         .max = 65535,
         .note = "0: any free port",
         .default_value = "7879",
         .summary = "TCP port of the peer protocol (liveness probes and file "
                    "transfer), advertised over mDNS."},
    [NL_CFG_PEERS] = {.name = "NODELUA_PEERS",
                      .kind = NL_KIND_PEERS,
                      .optional = true,
                      .default_value = "",
                      .default_text = "(empty)",
                      .summary = "Static peers, probed with or without "
                                 "mDNS."},
    [NL_CFG_MDNS] = {.name = "NODELUA_MDNS",
                     .kind = NL_KIND_BOOLEAN,
                     .default_value = "true",
                     .summary = "Whether the agent advertises and browses "
                                "over mDNS."},
    [NL_CFG_CLUSTER_KEY] =
        {.name = "NODELUA_CLUSTER_KEY",
         .kind = NL_KIND_TOKEN,
         .optional = true,
         .secret = true,
         .min = 16,
         .max = 4096,
         .default_value = "",
         .default_text = "(empty: no file transfer)",
         .summary = "Key shared by the cluster's nodes; file transfer and "
                    "verified peers need it."},
    [NL_CFG_CLUSTER_KEY_FILE] = {.name = "NODELUA_CLUSTER_KEY_FILE",
                                 .kind = NL_KIND_SECRET_FILE,
                                 .optional = true,
                                 .default_value = "",
                                 .default_text = "(empty)",
                                 .summary =
                                     "File holding the cluster key, instead of "
                                     "NODELUA_CLUSTER_KEY."},
    [NL_CFG_TRANSFER_DIR] =
        {.name = "TRANSFER_DIR",
         .kind = NL_KIND_PATH,
         .default_text = "$NODELUA_STATE_DIR/received",
         .summary = "Where received files land (created 0700; refused if it "
                    "is a symlink, another user's, or writable by others)."},
    [NL_CFG_TRANSFER_MAX_BYTES] = {.name = "TRANSFER_MAX_BYTES",
                                   .kind = NL_KIND_INTEGER,
                                   .min = 1,
                                   .max = 1125899906842624LL,
                                   .unit = "bytes",
                                   .default_value = "1099511627776",
                                   .summary = "Largest file this node "
                                              "accepts."},
    [NL_CFG_TRANSFER_STREAMS] = {.name = "TRANSFER_STREAMS",
                                 .kind = NL_KIND_INTEGER,
                                 .min = 1,
                                 .max = 64,
                                 .default_value = "4",
                                 .summary = "Parallel data streams of a "
                                            "transfer sent."},
    [NL_CFG_TRANSFER_ENCRYPT] =
        {.name = "TRANSFER_ENCRYPT",
         .kind = NL_KIND_BOOLEAN,
         .default_value = "true",
         .summary = "Encrypt the transfers this node sends (TLS 1.3, the "
                    "cluster key as PSK), and refuse to receive any in "
                    "clear; false only on trusted direct links."},
    [NL_CFG_TRANSFER_PARTIAL_TTL] =
        {.name = "TRANSFER_PARTIAL_TTL",
         .kind = NL_KIND_INTEGER,
         .min = 1,
         .max = 87600,
         .unit = "hours",
         .default_value = "168",
         .summary = "Hours after which a partial transfer nobody resumed is "
                    "swept (at start and daily)."},
};

const nl_config_var *nl_config_var_info(nl_config_id id) {
  if ((unsigned)id >= NL_CFG_COUNT)
    return NULL;
  return &vars[id];
}

int nl_config_find(const char *name) {
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    if (strcmp(vars[i].name, name) == 0 ||
        (vars[i].alias != NULL && strcmp(vars[i].alias, name) == 0))
      return i;
  }
  return -1;
}

/* Appends printf output to out at *used, never past outlen. */
static void append(char *out, size_t outlen, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *out, size_t outlen, size_t *used, const char *fmt,
                   ...) {
  if (*used >= outlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out + *used, outlen - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used += (size_t)n;
}

void nl_config_expected(nl_config_id id, char *out, size_t outlen) {
  size_t used = 0;
  if (outlen == 0)
    return;
  out[0] = '\0';
  if ((unsigned)id >= NL_CFG_COUNT)
    return;
  const nl_config_var *v = &vars[id];
  if (v->optional)
    append(out, outlen, &used, "empty, or ");
  switch (v->kind) {
  case NL_KIND_TEXT:
    append(out, outlen, &used, "%lld to %lld bytes without control characters",
           v->min, v->max);
    break;
  case NL_KIND_TOKEN:
    append(out, outlen, &used,
           "%lld to %lld printable characters without spaces", v->min, v->max);
    break;
  case NL_KIND_INTEGER:
    append(out, outlen, &used, "a whole number%s%s from %lld to %lld",
           v->unit ? " of " : "", v->unit ? v->unit : "", v->min, v->max);
    break;
  case NL_KIND_BOOLEAN:
    append(out, outlen, &used, "true or false (also 1/0, yes/no, on/off)");
    break;
  case NL_KIND_CHOICE: {
    size_t count = 0;
    for (const nl_config_choice *c = v->choices; c->word; c++)
      if (c == v->choices || c[-1].value != c->value)
        count++;
    size_t shown = 0;
    append(out, outlen, &used, count > 2 ? "one of " : "");
    for (const nl_config_choice *c = v->choices; c->word; c++) {
      if (c != v->choices && c[-1].value == c->value)
        continue; /* a synonym */
      const char *sep = shown == 0 ? "" : (count == 2 ? " or " : ", ");
      append(out, outlen, &used, "%s%s", sep, c->word);
      shown++;
    }
    break;
  }
  case NL_KIND_URL:
    append(out, outlen, &used,
           "an http:// or https:// URL: scheme://host[:port][/path], without "
           "credentials, query or fragment");
    break;
  case NL_KIND_PATH:
    append(out, outlen, &used, "an absolute path");
    break;
  case NL_KIND_DIR:
    append(out, outlen, &used, "the path of an existing directory");
    break;
  case NL_KIND_FILE:
    append(out, outlen, &used, "a readable%s%s file", v->note ? " " : "",
           v->note ? v->note : "");
    break;
  case NL_KIND_SECRET_FILE:
    append(out, outlen, &used,
           "a readable regular file of mode 0600 (or stricter), owned by the "
           "agent's user or root");
    break;
  case NL_KIND_LISTEN:
    append(out, outlen, &used,
           "host:port or [v6]:port with a port from 0 to 65535");
    break;
  case NL_KIND_PEERS:
    append(out, outlen, &used,
           "a comma-separated list of host:port or [v6]:port");
    break;
  }
  if (v->note != NULL && v->kind != NL_KIND_FILE)
    append(out, outlen, &used, " (%s)", v->note);
}

static int why_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static bool has_control(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f)
      return true;
  }
  return false;
}

static int parse_integer(const char *s, long long lo, long long hi,
                         long long *out) {
  if (*s == '\0')
    return -EINVAL;
  for (const char *p = s; *p; p++) {
    if (!isdigit((unsigned char)*p))
      return -EINVAL;
  }
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno == ERANGE || v < lo || v > hi)
    return -EINVAL;
  *out = v;
  return 0;
}

static bool valid_host(const char *host, size_t len) {
  if (len == 0)
    return false;
  if (host[0] == '[') { /* an IPv6 literal */
    if (host[len - 1] != ']' || len < 4)
      return false;
    for (size_t i = 1; i + 1 < len; i++) {
      char c = host[i];
      if (!isxdigit((unsigned char)c) && c != ':' && c != '.')
        return false;
    }
    return true;
  }
  for (size_t i = 0; i < len; i++) {
    char c = host[i];
    if (!isalnum((unsigned char)c) && c != '-' && c != '.' && c != '_')
      return false;
  }
  return true;
}

static int validate_url(const char *v, char *why, size_t whylen) {
  char expected[256];
  nl_config_expected(NL_CFG_MONITORING_API_URL, expected, sizeof expected);
  const char *rest;
  if (strncasecmp(v, "http://", 7) == 0)
    rest = v + 7;
  else if (strncasecmp(v, "https://", 8) == 0)
    rest = v + 8;
  else
    return why_fail(why, whylen, "expected %s", expected);
  size_t authority_len = strcspn(rest, "/?#");
  const char *path = rest + authority_len;
  if (memchr(rest, '@', authority_len) != NULL)
    return why_fail(why, whylen,
                    "credentials in the URL are refused (the key goes in "
                    "MONITORING_API_KEY); expected %s",
                    expected);
  if (*path == '?' || *path == '#' || strpbrk(path, "?#") != NULL)
    return why_fail(why, whylen, "expected %s", expected);
  for (const char *p = path; *p; p++) {
    if (isspace((unsigned char)*p) || (unsigned char)*p < 0x20)
      return why_fail(why, whylen, "expected %s", expected);
  }
  /* Split host and port: the port follows the last ':' outside brackets. */
  size_t host_len = authority_len;
  const char *port = NULL;
  const char *bracket = memchr(rest, ']', authority_len);
  const char *colon = NULL;
  for (size_t i = bracket ? (size_t)(bracket - rest) : 0; i < authority_len;
       i++) {
    if (rest[i] == ':')
      colon = rest + i;
  }
  if (colon != NULL) {
    host_len = (size_t)(colon - rest);
    port = colon + 1;
  }
  if (!valid_host(rest, host_len))
    return why_fail(why, whylen, "expected %s", expected);
  if (port != NULL) {
    char digits[8];
    size_t plen = (size_t)(rest + authority_len - port);
    long long pn;
    if (plen == 0 || plen >= sizeof digits)
      return why_fail(why, whylen, "expected %s with a port from 1 to 65535",
                      expected);
    memcpy(digits, port, plen);
    digits[plen] = '\0';
    if (parse_integer(digits, 1, 65535, &pn) != 0)
      return why_fail(why, whylen, "expected %s with a port from 1 to 65535",
                      expected);
  }
  return 0;
}

/* Whether v[0..len) is host:port or [v6]:port with a port from min_port
 * to 65535. */
static bool valid_host_port(const char *v, size_t len, long long min_port) {
  char buf[300];
  if (len == 0 || len >= sizeof buf)
    return false;
  memcpy(buf, v, len);
  buf[len] = '\0';
  const char *port;
  if (buf[0] == '[') {
    const char *close = strchr(buf, ']');
    if (close == NULL || close == buf + 1 || close[1] != ':' ||
        !valid_host(buf, (size_t)(close - buf + 1)))
      return false;
    port = close + 2;
  } else {
    const char *colon = strrchr(buf, ':');
    if (colon == NULL || colon == buf ||
        !valid_host(buf, (size_t)(colon - buf)))
      return false;
    port = colon + 1;
  }
  long long n;
  return parse_integer(port, min_port, 65535, &n) == 0;
}

/* host:port,[v6]:port,... with spaces allowed around the commas. */
static int validate_peers(const char *v, const char *expected, char *why,
                          size_t whylen) {
  const char *p = v;
  while (*p != '\0') {
    while (*p == ' ' || *p == ',')
      p++;
    if (*p == '\0')
      break;
    size_t len = strcspn(p, ", ");
    if (!valid_host_port(p, len, 1))
      return why_fail(why, whylen, "'%.*s' is not host:port; expected %s",
                      (int)(len > 100 ? 100 : len), p, expected);
    p += len;
  }
  return 0;
}

static bool printable_without_spaces(const char *v) {
  for (const char *p = v; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= 0x20 || c == 0x7f)
      return false;
  }
  return true;
}

/* A readable regular file; a secret one must also be kept from others. */
static int validate_file(const char *v, bool secret, const char *expected,
                         char *why, size_t whylen) {
  struct stat st;
  if (has_control(v) || stat(v, &st) != 0 || !S_ISREG(st.st_mode) ||
      access(v, R_OK) != 0)
    return why_fail(why, whylen, "expected %s", expected);
  /* A key others can read (or write) is no key: refuse it, and say how
   * to fix. */
  if (secret &&
      nl_trust_check(&st, NL_TRUST_SECRET, "the file", why, whylen) != 0)
    return -EINVAL;
  return 0;
}

/* The one validator: what a value must be is read from its row. */
int nl_config_validate(nl_config_id id, const char *v, long long *number,
                       char *why, size_t whylen) {
  if ((unsigned)id >= NL_CFG_COUNT)
    return why_fail(why, whylen, "unknown variable");
  const nl_config_var *var = &vars[id];
  char expected[512];
  nl_config_expected(id, expected, sizeof expected);
  *number = 0;
  if (var->optional && v[0] == '\0')
    return 0;
  size_t len = strlen(v);
  bool ok = true;
  switch (var->kind) {
  case NL_KIND_TEXT:
    ok = (long long)len >= var->min && (long long)len <= var->max &&
         !has_control(v);
    break;
  case NL_KIND_TOKEN:
    ok = (long long)len >= var->min && (long long)len <= var->max &&
         printable_without_spaces(v);
    break;
  case NL_KIND_INTEGER:
    ok = parse_integer(v, var->min, var->max, number) == 0;
    break;
  case NL_KIND_BOOLEAN: {
    static const char *const truthy[] = {"true", "1", "yes", "on"};
    static const char *const falsy[] = {"false", "0", "no", "off"};
    ok = false;
    for (size_t i = 0; i < 4 && !ok; i++) {
      if (strcasecmp(v, truthy[i]) == 0 || strcasecmp(v, falsy[i]) == 0) {
        *number = strcasecmp(v, truthy[i]) == 0;
        ok = true;
      }
    }
    break;
  }
  case NL_KIND_CHOICE:
    ok = false;
    for (const nl_config_choice *c = var->choices; c->word && !ok; c++) {
      if (strcasecmp(v, c->word) == 0) {
        *number = c->value;
        ok = true;
      }
    }
    break;
  case NL_KIND_URL:
    return validate_url(v, why, whylen);
  case NL_KIND_PATH:
    ok = v[0] == '/' && !has_control(v) && len < PATH_MAX;
    break;
  case NL_KIND_DIR: {
    struct stat st;
    ok = !has_control(v) && stat(v, &st) == 0 && S_ISDIR(st.st_mode);
    break;
  }
  case NL_KIND_FILE:
  case NL_KIND_SECRET_FILE:
    return validate_file(v, var->kind == NL_KIND_SECRET_FILE, expected, why,
                         whylen);
  case NL_KIND_LISTEN:
    ok = valid_host_port(v, len, 0);
    break;
  case NL_KIND_PEERS:
    return validate_peers(v, expected, why, whylen);
  }
  if (!ok)
    return why_fail(why, whylen, "expected %s", expected);
  return 0;
}

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

/* The predecessor's self-update settings: they come back with the
 * feature; until then, setting one is said to do nothing. */
static bool is_update_setting(const char *key) {
  static const char *const names[] = {"AUTO_UPDATE", "UPDATE_CHANNEL",
                                      "UPDATE_CHECK_INTERVAL",
                                      "UPDATE_REPOSITORY", "UPDATE_DIR"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strcmp(key, names[i]) == 0)
      return true;
  return false;
}

static int take_pair(loader *ld, const char *key, const char *value, int line) {
  int id = nl_config_find(key);
  char source[NL_CONFIG_SOURCE_MAX];
  if (ld->file != NULL)
    snprintf(source, sizeof source, "%s line %d", ld->file, line);
  else
    snprintf(source, sizeof source, "the environment");
  if (id < 0) {
    /* Our own prefix with an unknown name is most likely a typo; the
     * predecessor's update settings are known, and do nothing yet. */
    if (is_update_setting(key))
      add_warning(ld->cfg,
                  "%s in %s is ignored: this version does not update "
                  "itself yet",
                  key, source);
    else if (strncmp(key, "NODELUA_", 8) == 0 &&
             strcmp(key, "NODELUA_SERVICE_ENV_FILE") != 0)
      add_warning(ld->cfg, "unknown variable %s in %s is ignored", key, source);
    return 0;
  }
  bool is_alias = strcmp(vars[id].name, key) != 0;
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
  if (id >= 0 && vars[id].secret && value[0] != '\0')
    ld->secret_in_file = vars[id].name;
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
    if (vars[i].default_value == NULL)
      continue; /* computed below, or derived from another setting */
    if (set_value(cfg, i, vars[i].default_value, "the default") != 0)
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
  if (default_under_state(cfg, NL_CFG_TRANSFER_DIR, "received") != 0) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
    goto fail;
  }
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    char why[512];
    long long number = 0;
    if (nl_config_validate((nl_config_id)i, cfg->value[i], &number, why,
                           sizeof why) != 0) {
      if (vars[i].secret) {
        snprintf(err, errlen, "invalid %s (from %s): %s", vars[i].name,
                 cfg->source[i], why);
      } else {
        char shown[128];
        describe_value(shown, sizeof shown, cfg->value[i]);
        snprintf(err, errlen, "invalid %s=%s (from %s): %s", vars[i].name,
                 shown, cfg->source[i], why);
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
    if (cfg->value[i] != NULL && vars[i].secret) {
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
    if (vars[i].secret && cfg->value[i] != NULL)
      nl_log_add_secret(cfg->value[i]);
  }
}
