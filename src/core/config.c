/* The settings table: one row per setting (kind, range, unit, default,
 * secrecy, help), the accepted form written from a row, and the one
 * validator that reads the rows. Loading is config_load.c; the table for
 * people (--help, README) is config_doc.c. */
#include "config.h"

#include "log.h"
#include "trust.h"
#include "update/minisig.h"

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
static const nl_config_choice channels[] = {
    {"stable", 0}, {"beta", 1}, {"nightly", 2}, {NULL, 0}};
/* The values are nl_rdma_mode's (core/transfer/rdma/rdma.h). */
static const nl_config_choice rdma_modes[] = {
    {"auto", 0}, {"off", 1}, {"required", 2}, {NULL, 0}};
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
    /* Telegraf's names, node_exporter's --path.* meanings: an agent in a
     * container reads the host's trees where they are mounted. */
    [NL_CFG_HOST_PROC] =
        {.name = "HOST_PROC",
         .kind = NL_KIND_DIR,
         .optional = true,
         .default_value = "",
         .default_text = "/proc",
         .summary = "Where the host's /proc is (in a container: "
                    "/host/proc). Every machine figure is read there; the "
                    "agent's own process_* figures stay on /proc/self. "
                    "Linux."},
    [NL_CFG_HOST_SYS] = {.name = "HOST_SYS",
                         .kind = NL_KIND_DIR,
                         .optional = true,
                         .default_value = "",
                         .default_text = "/sys",
                         .summary = "Where the host's /sys is (in a "
                                    "container: /host/sys). Linux."},
    [NL_CFG_HOST_ROOT] =
        {.name = "HOST_ROOT",
         .kind = NL_KIND_DIR,
         .optional = true,
         .default_value = "",
         .default_text = "/",
         .summary = "Where the host's / is (in a container: /host). "
                    "Filesystems are measured under it and reported as the "
                    "host mounts them; os-release is read under it. Linux."},
    [NL_CFG_HOST_RUN] = {.name = "HOST_RUN",
                         .kind = NL_KIND_DIR,
                         .optional = true,
                         .default_value = "",
                         .default_text = "/run",
                         .summary = "Where the host's /run is, for udev's "
                                    "disk data (run/udev/data). Linux."},
    [NL_CFG_METRICS_TEXTFILE_DIR] =
        {.name = "METRICS_TEXTFILE_DIR",
         .kind = NL_KIND_DIR,
         .optional = true,
         .default_value = "",
         .default_text = "(empty: off)",
         .summary = "node_exporter's textfile collector: the *.prom files "
                    "here are added to /metrics. A file that is not valid "
                    "exposition text, has timestamps, is over 1 MiB, is a "
                    "symlink or is writable by others is left out "
                    "(node_textfile_scrape_error 1); so is the whole "
                    "directory if others may write to it."},
    [NL_CFG_METRICS_COLLECTOR_PROCESSES] =
        {.name = "METRICS_COLLECTOR_PROCESSES",
         .kind = NL_KIND_BOOLEAN,
         .default_value = "false",
         .summary = "node_processes_* on /metrics (threads, PIDs and their "
                    "limits, states): reads every /proc/PID/stat at each "
                    "scrape, so off by default, as in node_exporter."},
    [NL_CFG_METRICS_COLLECTOR_TCPSTAT] =
        {.name = "METRICS_COLLECTOR_TCPSTAT",
         .kind = NL_KIND_BOOLEAN,
         .default_value = "false",
         .summary = "node_tcp_connection_states on /metrics, from a "
                    "sock_diag dump: the kernel walks its whole TCP hash "
                    "table (milliseconds on a large machine), so off by "
                    "default, as in node_exporter."},
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
    [NL_CFG_TRANSFER_STREAMS] =
        {.name = "TRANSFER_STREAMS",
         .kind = NL_KIND_INTEGER,
         .min = 1,
         .max = 64,
         .unit = "streams",
         .word = "auto",
         .default_value = "auto",
         .summary = "Parallel data streams of a transfer sent; auto starts "
                    "with 4 and doubles them, up to 16, while the rate "
                    "still grows by a tenth."},
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
    [NL_CFG_TRANSFER_HASH_THREADS] =
        {.name = "TRANSFER_HASH_THREADS",
         .kind = NL_KIND_INTEGER,
         .min = 0,
         .max = 256,
         .unit = "threads",
         .note = "0: the online CPUs",
         .default_value = "0",
         .summary = "Workers that hash a file's chunks in parallel for its "
                    "tree digest (nodelua hash, nodelua send)."},
    [NL_CFG_TRANSFER_RDMA] =
        {.name = "TRANSFER_RDMA",
         .kind = NL_KIND_CHOICE,
         .choices = rdma_modes,
         .default_value = "auto",
         .summary = "RDMA for transfers: auto uses it where both nodes have "
                    "a usable device and falls back to TCP streams, with a "
                    "log line, wherever it cannot; off never; required "
                    "makes a send fail when RDMA cannot be set up."},
    [NL_CFG_AUTO_UPDATE] =
        {.name = "AUTO_UPDATE",
         .kind = NL_KIND_BOOLEAN,
         .default_value = "true",
         .summary = "Whether the agent checks for signed releases and "
                    "installs them (needs UPDATE_PUBLIC_KEY); the `nodelua "
                    "update` commands work either way."},
    [NL_CFG_UPDATE_CHANNEL] =
        {.name = "UPDATE_CHANNEL",
         .kind = NL_KIND_CHOICE,
         .choices = channels,
         .default_value = "stable",
         .summary = "Release channel this node follows (the update policy "
                    "says which channels each accepts)."},
    [NL_CFG_UPDATE_CHECK_INTERVAL] =
        {.name = "UPDATE_CHECK_INTERVAL",
         .kind = NL_KIND_INTEGER,
         .min = 1,
         .max = 10080,
         .unit = "minutes",
         .default_value = "60",
         .summary = "Minutes between checks for a release, each with up to "
                    "a tenth more at random, so that a fleet does not ask at "
                    "once."},
    [NL_CFG_UPDATE_REPOSITORY] =
        {.name = "UPDATE_REPOSITORY",
         .kind = NL_KIND_REPOSITORY,
         .default_text = "the project's own (NODELUA_UPDATE_REPOSITORY at "
                         "build time)",
         .summary = "GitHub repository whose releases are installed."},
    [NL_CFG_UPDATE_DIR] =
        {.name = "UPDATE_DIR",
         .kind = NL_KIND_PATH,
         .default_text = "$NODELUA_STATE_DIR/updates",
         .summary = "Where versions are kept side by side, with the trial "
                    "state (the agent's own: refused if others can write "
                    "it)."},
    [NL_CFG_UPDATE_API_URL] =
        {.name = "UPDATE_API_URL",
         .kind = NL_KIND_URL,
         .https_unless_loopback = true,
         .default_value = "https://api.github.com",
         .summary = "Base URL of the GitHub API (or one like it)."},
    [NL_CFG_UPDATE_PUBLIC_KEY] =
        {.name = "UPDATE_PUBLIC_KEY",
         .kind = NL_KIND_MINISIGN_KEY,
         .optional = true,
         .default_value = "",
         .default_text = "(empty: no self-update)",
         .summary = "The minisign public key releases must be signed with "
                    "(the second line of `minisign -G`'s .pub file)."},
    [NL_CFG_UPDATE_PUBLIC_KEY_FILE] =
        {.name = "UPDATE_PUBLIC_KEY_FILE",
         .kind = NL_KIND_TRUSTED_FILE,
         .optional = true,
         .default_value = "",
         .default_text = "(empty)",
         .summary = "A minisign .pub file, instead of UPDATE_PUBLIC_KEY."},
    [NL_CFG_UPDATE_GITHUB_TOKEN] =
        {.name = "UPDATE_GITHUB_TOKEN",
         .kind = NL_KIND_TOKEN,
         .optional = true,
         .secret = true,
         .min = 1,
         .max = 4096,
         .default_value = "",
         .default_text = "(empty: unauthenticated)",
         .summary = "Token sent to the API (a higher rate limit, private "
                    "repositories); never to the asset host."},
    [NL_CFG_UPDATE_HEALTH_TIMEOUT] =
        {.name = "UPDATE_HEALTH_TIMEOUT",
         .kind = NL_KIND_INTEGER,
         .min = 10,
         .max = 3600,
         .unit = "seconds",
         .default_value = "120",
         .summary = "Seconds a new version has to pass its health checks "
                    "before it is rolled back."},
    [NL_CFG_UPDATE_MAX_BYTES] = {.name = "UPDATE_MAX_BYTES",
                                 .kind = NL_KIND_INTEGER,
                                 .min = 1048576,
                                 .max = 1073741824,
                                 .unit = "bytes",
                                 .default_value = "67108864",
                                 .summary = "Largest release binary "
                                            "downloaded; a longer body is "
                                            "cut."},
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
    if (v->word != NULL)
      append(out, outlen, &used, "%s, or ", v->word);
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
           v->https_unless_loopback
               ? "an https:// URL (http:// only to a loopback host): "
                 "scheme://host[:port][/path], without credentials, query or "
                 "fragment"
               : "an http:// or https:// URL: scheme://host[:port][/path], "
                 "without credentials, query or fragment");
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
  case NL_KIND_REPOSITORY:
    append(out, outlen, &used, "owner/name: letters, digits, '-', '_' and '.'");
    break;
  case NL_KIND_MINISIGN_KEY:
    append(out, outlen, &used, "a minisign public key (base64, 56 characters)");
    break;
  case NL_KIND_TRUSTED_FILE:
    append(out, outlen, &used,
           "a readable regular file owned by the agent's user or root and "
           "not writable by group or others");
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

/* Whether host (without brackets or port) is a loopback name or address. */
static bool loopback_host(const char *host, size_t len) {
  if (len >= 2 && host[0] == '[')
    host++, len -= 2;
  if ((len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
      (len == 3 && strncmp(host, "::1", 3) == 0))
    return true;
  /* 127.0.0.0/8, as a dotted address: never a name that starts so. */
  if (len < 7 || strncmp(host, "127.", 4) != 0)
    return false;
  int dots = 0;
  for (size_t i = 0; i < len; i++) {
    if (host[i] == '.')
      dots++;
    else if (!isdigit((unsigned char)host[i]))
      return false;
  }
  return dots == 3;
}

static int validate_url(nl_config_id id, const char *v, char *why,
                        size_t whylen) {
  char expected[256];
  nl_config_expected(id, expected, sizeof expected);
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
  if (vars[id].https_unless_loopback && strncasecmp(v, "http://", 7) == 0 &&
      !loopback_host(rest, host_len))
    return why_fail(why, whylen,
                    "plain http is allowed only to a loopback host; expected "
                    "%s",
                    expected);
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
    ok = (var->word != NULL && strcasecmp(v, var->word) == 0) ||
         parse_integer(v, var->min, var->max, number) == 0;
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
    return validate_url(id, v, why, whylen);
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
  case NL_KIND_REPOSITORY: {
    const char *slash = strchr(v, '/');
    ok = slash != NULL && slash != v && slash[1] != '\0' &&
         strchr(slash + 1, '/') == NULL && len <= 200 && v[0] != '.';
    for (const char *p = v; ok && *p; p++)
      ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' ||
           *p == '/';
    ok = ok && strstr(v, "..") == NULL;
    break;
  }
  case NL_KIND_MINISIGN_KEY: {
    nl_minisign_key key;
    char reason[256];
    if (nl_minisign_parse_key(v, len, &key, reason, sizeof reason) != 0)
      return why_fail(why, whylen, "%s; expected %s", reason, expected);
    break;
  }
  case NL_KIND_TRUSTED_FILE: {
    struct stat st;
    if (has_control(v) || stat(v, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(v, R_OK) != 0)
      return why_fail(why, whylen, "expected %s", expected);
    if (nl_trust_check(&st, 0, "the file", why, whylen) != 0)
      return -EINVAL;
    break;
  }
  }
  if (!ok)
    return why_fail(why, whylen, "expected %s", expected);
  return 0;
}
