#include "core/config.h"
#include "core/log.h"

#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f != NULL) {
    fputs(text, f);
    fclose(f);
  }
}

static char *path_in_tmp(const char *name) {
  static char buf[4][128];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 128, "%s/%s", tmpdir, name);
  return p;
}

/* Loads with only the given environment and files; no ./.env and no
 * machine-wide service file, so the test sees nothing of the host. */
static int load(nl_config *cfg, char **env, const char *service,
                const char *dotenv, const char *env_file, char *err,
                size_t errlen) {
  nl_config_sources src = {.service_env_file = service ? service : "",
                           .dotenv_file = dotenv,
                           .env_file = env_file,
                           .environ = env};
  return nl_config_load(cfg, &src, err, errlen);
}

static void test_defaults(void) {
  nl_config cfg;
  char err[1024];
  char *env[] = {"HOME=/home/op", "XDG_STATE_HOME=", NULL};
  CHECK(load(&cfg, env, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK_STR(nl_config_str(&cfg, NL_CFG_MONITORING_API_URL),
            "http://localhost:3000");
  CHECK_STR(nl_config_str(&cfg, NL_CFG_MONITORING_API_KEY), "dev-api-key");
  CHECK(nl_config_num(&cfg, NL_CFG_LOG) == NL_LOG_INFO);
  CHECK(nl_config_num(&cfg, NL_CFG_MDNS) == 1);
  CHECK(nl_config_num(&cfg, NL_CFG_REPORT_INTERVAL) == 5);
  CHECK(nl_config_num(&cfg, NL_CFG_CALLBACK_BUDGET) == 50000000);
  CHECK_STR(nl_config_str(&cfg, NL_CFG_POLICY_DIR), "");
  char host[256] = "";
  gethostname(host, sizeof host);
  host[63] = '\0';
  CHECK_STR(nl_config_str(&cfg, NL_CFG_NODE_NAME), host);
  if (geteuid() == 0) {
    CHECK_STR(nl_config_str(&cfg, NL_CFG_STATE_DIR), "/var/lib/nodelua");
    CHECK_STR(nl_config_str(&cfg, NL_CFG_TRANSFER_DIR),
              "/var/lib/nodelua/received");
  } else {
    CHECK_STR(nl_config_str(&cfg, NL_CFG_STATE_DIR),
              "/home/op/.local/state/nodelua");
  }
  CHECK_STR(cfg.source[NL_CFG_MONITORING_API_URL], "the default");
  nl_config_free(&cfg);

  /* TRANSFER_DIR follows NODELUA_STATE_DIR unless set itself. */
  char *env2[] = {"NODELUA_STATE_DIR=/srv/nl", NULL};
  CHECK(load(&cfg, env2, NULL, NULL, NULL, err, sizeof err) == 0);
  /* So does TRANSFER_DIR: the agent's own folder, never one in /tmp that
   * another user could make first. Transfers are encrypted by default. */
  CHECK_STR(nl_config_str(&cfg, NL_CFG_TRANSFER_DIR), "/srv/nl/received");
  CHECK(nl_config_num(&cfg, NL_CFG_TRANSFER_ENCRYPT) == 1);
  CHECK(nl_config_num(&cfg, NL_CFG_TRANSFER_PARTIAL_TTL) == 168);
  nl_config_free(&cfg);
  char *env3[] = {"NODELUA_STATE_DIR=/srv/nl", "TRANSFER_DIR=/data/in", NULL};
  CHECK(load(&cfg, env3, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK_STR(nl_config_str(&cfg, NL_CFG_TRANSFER_DIR), "/data/in");
  nl_config_free(&cfg);
}

static void test_precedence(void) {
  nl_config cfg;
  char err[1024];
  char *service = path_in_tmp("service.env");
  char *dotenv = path_in_tmp("dot.env");
  char *envfile = path_in_tmp("extra.env");
  write_file(service, "NODE_NAME=from-service\nNODELUA_LOG=warn\n"
                      "REPORT_INTERVAL=5\nNODELUA_MDNS=no\n");
  write_file(dotenv, "NODE_NAME=from-dotenv\nNODELUA_LOG=debug\n"
                     "REPORT_INTERVAL=6\n");
  write_file(envfile, "NODE_NAME=from-env-file\nREPORT_INTERVAL=7\n");
  char *env[] = {"NODE_NAME=from-environment", NULL};
  CHECK(load(&cfg, env, service, dotenv, envfile, err, sizeof err) == 0);
  CHECK_STR(nl_config_str(&cfg, NL_CFG_NODE_NAME), "from-environment");
  CHECK_STR(cfg.source[NL_CFG_NODE_NAME], "the environment");
  CHECK(nl_config_num(&cfg, NL_CFG_REPORT_INTERVAL) == 7);
  CHECK_CONTAINS(cfg.source[NL_CFG_REPORT_INTERVAL], "extra.env line 2");
  CHECK(nl_config_num(&cfg, NL_CFG_LOG) == NL_LOG_DEBUG);
  CHECK(nl_config_num(&cfg, NL_CFG_MDNS) == 0);
  nl_config_free(&cfg);

  /* A missing service file or ./.env is fine; a missing --env-file is not. */
  CHECK(load(&cfg, env, path_in_tmp("none.env"), path_in_tmp("none2.env"), NULL,
             err, sizeof err) == 0);
  nl_config_free(&cfg);
  CHECK(load(&cfg, env, NULL, NULL, path_in_tmp("missing.env"), err,
             sizeof err) == -EINVAL);
  CHECK_CONTAINS(err, "missing.env: No such file");
}

static void test_alias(void) {
  nl_config cfg;
  char err[1024];
  char *rust_only[] = {"RUST_LOG=debug", NULL};
  CHECK(load(&cfg, rust_only, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK(nl_config_num(&cfg, NL_CFG_LOG) == NL_LOG_DEBUG);
  CHECK_CONTAINS(cfg.source[NL_CFG_LOG], "as RUST_LOG");
  nl_config_free(&cfg);
  /* NODELUA_LOG beats RUST_LOG in the same source, in either order. */
  char *both[] = {"NODELUA_LOG=trace", "RUST_LOG=warn", NULL};
  CHECK(load(&cfg, both, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK(nl_config_num(&cfg, NL_CFG_LOG) == NL_LOG_TRACE);
  nl_config_free(&cfg);
  char *file = path_in_tmp("alias.env");
  write_file(file, "NODELUA_LOG=error\nRUST_LOG=debug\n");
  char *none[] = {NULL};
  CHECK(load(&cfg, none, NULL, file, NULL, err, sizeof err) == 0);
  CHECK(nl_config_num(&cfg, NL_CFG_LOG) == NL_LOG_ERROR);
  nl_config_free(&cfg);
  /* A later source's RUST_LOG still beats an earlier NODELUA_LOG. */
  CHECK(load(&cfg, rust_only, NULL, file, NULL, err, sizeof err) == 0);
  CHECK(nl_config_num(&cfg, NL_CFG_LOG) == NL_LOG_DEBUG);
  nl_config_free(&cfg);
}

/* Each bad value: start-up fails with one line that names the variable, the
 * expected form and where the value came from. */
static void expect_bad(const char *assignment, const char *name,
                       const char *expected_fragment) {
  nl_config cfg;
  char err[1024];
  char *env[] = {(char *)assignment, NULL};
  int rc = load(&cfg, env, NULL, NULL, NULL, err, sizeof err);
  CHECK(rc == -EINVAL);
  if (rc != -EINVAL) {
    fprintf(stderr, "  accepted: %s\n", assignment);
    nl_config_free(&cfg);
    return;
  }
  CHECK_CONTAINS(err, name);
  CHECK_CONTAINS(err, expected_fragment);
  CHECK_CONTAINS(err, "the environment");
  CHECK(strchr(err, '\n') == NULL);
}

static void expect_good(const char *assignment) {
  nl_config cfg;
  char err[1024];
  char *env[] = {(char *)assignment, NULL};
  int rc = load(&cfg, env, NULL, NULL, NULL, err, sizeof err);
  CHECK(rc == 0);
  if (rc != 0)
    fprintf(stderr, "  refused: %s: %s\n", assignment, err);
  else
    nl_config_free(&cfg);
}

static void test_validation(void) {
  const char *url = "http:// or https:// URL";
  expect_bad("MONITORING_API_URL=localhost:3000", "MONITORING_API_URL", url);
  expect_bad("MONITORING_API_URL=ftp://host", "MONITORING_API_URL", url);
  expect_bad("MONITORING_API_URL=http://", "MONITORING_API_URL", url);
  expect_bad("MONITORING_API_URL=http://host:0", "MONITORING_API_URL", "port");
  expect_bad("MONITORING_API_URL=http://host:70000", "MONITORING_API_URL",
             "port");
  expect_bad("MONITORING_API_URL=http://host:", "MONITORING_API_URL", "port");
  expect_bad("MONITORING_API_URL=http://ho st", "MONITORING_API_URL", url);
  expect_bad("MONITORING_API_URL=http://host/a b", "MONITORING_API_URL", url);
  expect_bad("MONITORING_API_URL=http://host/?q=1", "MONITORING_API_URL", url);
  expect_bad("MONITORING_API_URL=http://u:p@host", "MONITORING_API_URL",
             "credentials");
  expect_bad("MONITORING_API_URL=", "MONITORING_API_URL", url);
  expect_good("MONITORING_API_URL=https://api.example.org:8443/base");
  expect_good("MONITORING_API_URL=http://[::1]:3000");
  expect_good("MONITORING_API_URL=HTTP://10.0.0.5");

  expect_bad("MONITORING_API_KEY=", "MONITORING_API_KEY", "printable");
  expect_bad("MONITORING_API_KEY=has space", "MONITORING_API_KEY", "printable");
  expect_bad("MONITORING_API_KEY=line\nbreak", "MONITORING_API_KEY",
             "printable");

  expect_bad("NODELUA_LOG=verbose", "NODELUA_LOG",
             "error, warn, info, debug, trace");
  expect_bad("RUST_LOG=node_controller=debug", "NODELUA_LOG",
             "error, warn, info, debug, trace");
  expect_good("RUST_LOG=WARN");
  expect_bad("NODELUA_LOG_FORMAT=xml", "NODELUA_LOG_FORMAT", "text or json");

  expect_bad("NODELUA_MDNS=maybe", "NODELUA_MDNS", "true or false");
  expect_good("NODELUA_MDNS=OFF");

  const char *seconds = "whole number of seconds";
  expect_bad("REPORT_INTERVAL=-5", "REPORT_INTERVAL", seconds);
  expect_bad("REPORT_INTERVAL=ten", "REPORT_INTERVAL", seconds);
  expect_bad("REPORT_INTERVAL=0", "REPORT_INTERVAL", seconds);
  expect_bad("REPORT_INTERVAL=1.5", "REPORT_INTERVAL", seconds);
  expect_bad("REPORT_INTERVAL=", "REPORT_INTERVAL", seconds);
  expect_bad("REPORT_INTERVAL=99999999999999999999", "REPORT_INTERVAL",
             seconds);
  expect_bad("REPORT_INTERVAL=86401", "REPORT_INTERVAL", seconds);
  expect_good("REPORT_INTERVAL=86400");

  expect_bad("NODELUA_STATE_DIR=state", "NODELUA_STATE_DIR", "absolute path");
  expect_bad("NODE_NAME=", "NODE_NAME", "1 to 63 bytes");
  expect_bad(
      "NODE_NAME=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaa",
      "NODE_NAME", "1 to 63 bytes");
  expect_bad("NODE_NAME=tab\there", "NODE_NAME", "control characters");
  expect_good("NODE_NAME=Render Mac 3");

  expect_bad("NODELUA_POLICY_DIR=/nonexistent/policies", "NODELUA_POLICY_DIR",
             "existing directory");
  expect_bad("NODELUA_POLICY_DIR=/etc/hostname", "NODELUA_POLICY_DIR",
             "existing directory");
  expect_good("NODELUA_POLICY_DIR=/tmp");

  expect_bad("REPORT_INTERVAL=0", "REPORT_INTERVAL", "seconds from 1");
  expect_bad("REPORT_INTERVAL=5s", "REPORT_INTERVAL", "seconds from 1");
  expect_good("REPORT_INTERVAL=60");
  expect_bad("METRICS_LISTEN=9101", "METRICS_LISTEN", "host:port");
  expect_bad("METRICS_LISTEN=127.0.0.1:99999", "METRICS_LISTEN", "host:port");
  expect_bad("METRICS_LISTEN=:9101", "METRICS_LISTEN", "host:port");
  expect_bad("METRICS_LISTEN=[::1]9101", "METRICS_LISTEN", "host:port");
  expect_good("METRICS_LISTEN=");
  expect_good("METRICS_LISTEN=[::1]:9101");
  expect_good("METRICS_LISTEN=0.0.0.0:9101");
  expect_bad("MONITORING_API_CA_FILE=/nonexistent.pem",
             "MONITORING_API_CA_FILE", "readable PEM file");
  expect_bad("MONITORING_API_CA_FILE=/tmp", "MONITORING_API_CA_FILE",
             "readable PEM file");
  expect_bad("NODELUA_HTTP_TIMEOUT=0", "NODELUA_HTTP_TIMEOUT", "seconds");
  expect_bad("NODELUA_SPOOL_MAX_BYTES=1000", "NODELUA_SPOOL_MAX_BYTES",
             "bytes from 65536");
  expect_bad("NODELUA_SPOOL_MAX_AGE=-1", "NODELUA_SPOOL_MAX_AGE", "hours");
  expect_bad("NODELUA_CALLBACK_BUDGET=10", "NODELUA_CALLBACK_BUDGET",
             "10000 to 2000000000");
  expect_bad("NODELUA_CALLBACK_BUDGET=3000000000", "NODELUA_CALLBACK_BUDGET",
             "10000 to 2000000000");
}

static void test_file_errors(void) {
  nl_config cfg;
  char err[1024];
  char *none[] = {NULL};
  char *file = path_in_tmp("bad.env");
  write_file(file, "GOOD=1\n\nthis is not an assignment\n");
  CHECK(load(&cfg, none, NULL, file, NULL, err, sizeof err) == -EINVAL);
  CHECK_CONTAINS(err, "bad.env line 3");
  CHECK_CONTAINS(err, "expected '='");
  /* A bad value from a file names the file and line. */
  write_file(file, "# interval\nREPORT_INTERVAL=-1\n");
  CHECK(load(&cfg, none, NULL, NULL, file, err, sizeof err) == -EINVAL);
  CHECK_CONTAINS(err, "REPORT_INTERVAL=\"-1\"");
  CHECK_CONTAINS(err, "bad.env line 2");
  /* The service file is checked as strictly as the others. */
  write_file(file, "A='unterminated\n");
  CHECK(load(&cfg, none, file, NULL, NULL, err, sizeof err) == -EINVAL);
  CHECK_CONTAINS(err, "unterminated");
}

static void test_secret_never_shown(void) {
  nl_config cfg;
  char err[1024];
  const char *secret = "sk_live_DO_NOT_LEAK\x01";
  char assignment[64];
  snprintf(assignment, sizeof assignment, "MONITORING_API_KEY=%s", secret);
  char *env[] = {assignment, NULL};
  CHECK(load(&cfg, env, NULL, NULL, NULL, err, sizeof err) == -EINVAL);
  CHECK_CONTAINS(err, "MONITORING_API_KEY");
  CHECK(strstr(err, "sk_live") == NULL);
  /* A valid key is handed to the logger for redaction. */
  char *good[] = {"MONITORING_API_KEY=sk_live_DO_NOT_LEAK", NULL};
  CHECK(load(&cfg, good, NULL, NULL, NULL, err, sizeof err) == 0);
  nl_config_register_secrets(&cfg);
  char out[256];
  nl_log_redact("key is sk_live_DO_NOT_LEAK!", out, sizeof out);
  CHECK_STR(out, "key is " NL_LOG_REDACTED "!");
  nl_config_free(&cfg);
  nl_log_clear_secrets();
}

static void test_unknown_warns(void) {
  nl_config cfg;
  char err[1024];
  char *env[] = {"NODELUA_POLCY_DIR=/tmp", "UNRELATED=1",
                 "NODELUA_SERVICE_ENV_FILE=", NULL};
  CHECK(load(&cfg, env, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK(cfg.warning_count == 1);
  if (cfg.warning_count == 1)
    CHECK_CONTAINS(cfg.warnings[0], "NODELUA_POLCY_DIR");
  nl_config_free(&cfg);
  /* The update settings are known; a typo in their prefix is not. */
  char *update[] = {"AUTO_UPDATE=true", "UPDATE_CHANNEL=beta",
                    "UPDATE_CHANEL=beta", NULL};
  CHECK(load(&cfg, update, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK(cfg.warning_count == 1);
  if (cfg.warning_count == 1)
    CHECK_CONTAINS(cfg.warnings[0], "UPDATE_CHANEL");
  CHECK(nl_config_num(&cfg, NL_CFG_UPDATE_CHANNEL) == 1);
  nl_config_free(&cfg);
}

/* More than eight warnings: none is dropped. */
/* The update settings: defaults, and what is refused. */
static void test_update_settings(void) {
  nl_config cfg;
  char err[1024];
  char *env[] = {"NODELUA_STATE_DIR=/srv/nl", NULL};
  nl_config_sources src = {.service_env_file = "",
                           .environ = env,
                           .update_repository = "acme/agent"};
  CHECK(nl_config_load(&cfg, &src, err, sizeof err) == 0);
  CHECK_STR(nl_config_str(&cfg, NL_CFG_UPDATE_DIR), "/srv/nl/updates");
  CHECK_STR(nl_config_str(&cfg, NL_CFG_UPDATE_REPOSITORY), "acme/agent");
  CHECK_STR(nl_config_str(&cfg, NL_CFG_UPDATE_API_URL),
            "https://api.github.com");
  CHECK(nl_config_num(&cfg, NL_CFG_AUTO_UPDATE) == 1);
  CHECK(nl_config_num(&cfg, NL_CFG_UPDATE_HEALTH_TIMEOUT) == 120);
  CHECK(nl_config_num(&cfg, NL_CFG_UPDATE_MAX_BYTES) == 64 * 1024 * 1024);
  nl_config_free(&cfg);
  char why[512];
  long long n;
  /* Plain http only to a loopback host: a LAN attacker could answer it. */
  CHECK(nl_config_validate(NL_CFG_UPDATE_API_URL, "http://127.0.0.1:8080", &n,
                           why, sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_API_URL, "http://[::1]:8080/api", &n,
                           why, sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_API_URL, "http://localhost", &n, why,
                           sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_API_URL, "http://10.0.0.5", &n, why,
                           sizeof why) != 0);
  CHECK_CONTAINS(why, "loopback");
  CHECK(nl_config_validate(NL_CFG_UPDATE_API_URL, "http://127.evil.example", &n,
                           why, sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_REPOSITORY, "owner/name", &n, why,
                           sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_REPOSITORY, "owner", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_REPOSITORY, "o/n/x", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_REPOSITORY, "../x", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(
            NL_CFG_UPDATE_PUBLIC_KEY,
            "RWQRolVE8fiW0jHwwwavtY6w62/JfbOBh0lVsk2/ajaqzi18mH9usr4R", &n, why,
            sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_PUBLIC_KEY, "not a key", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_UPDATE_CHANNEL, "nightly", &n, why,
                           sizeof why) == 0 &&
        n == 2);
  CHECK(nl_config_validate(NL_CFG_UPDATE_CHANNEL, "edge", &n, why,
                           sizeof why) != 0);
}

static void test_many_warnings(void) {
  nl_config cfg;
  char err[1024];
  char names[12][32];
  char *env[13];
  for (int i = 0; i < 12; i++) {
    snprintf(names[i], sizeof names[i], "NODELUA_TYPO_%d=1", i);
    env[i] = names[i];
  }
  env[12] = NULL;
  CHECK(load(&cfg, env, NULL, NULL, NULL, err, sizeof err) == 0);
  CHECK(cfg.warning_count == 12);
  if (cfg.warning_count == 12)
    CHECK_CONTAINS(cfg.warnings[11], "NODELUA_TYPO_11");
  nl_config_free(&cfg);
}

static void test_table(void) {
  CHECK(nl_config_find("RUST_LOG") == NL_CFG_LOG);
  CHECK(nl_config_find("NODELUA_LOG") == NL_CFG_LOG);
  CHECK(nl_config_find("NOPE") == -1);
  int secrets = 0;
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    const nl_config_var *v = nl_config_var_info((nl_config_id)i);
    char form[512];
    nl_config_expected((nl_config_id)i, form, sizeof form);
    CHECK(v->name != NULL && form[0] != '\0' && v->summary != NULL);
    /* A default is either a literal value or a description of how it is
     * computed; a literal default must pass its own validation. */
    CHECK(v->default_value != NULL || v->default_text != NULL);
    long long n;
    char why[512];
    if (v->default_value != NULL && v->kind != NL_KIND_DIR &&
        v->kind != NL_KIND_FILE && v->kind != NL_KIND_SECRET_FILE)
      CHECK(nl_config_validate((nl_config_id)i, v->default_value, &n, why,
                               sizeof why) == 0);
    secrets += v->secret;
  }
  CHECK(secrets == 3); /* the API key, the cluster key, the GitHub token */
  /* The form is written from the row: kind, range, unit and note. */
  char form[512];
  nl_config_expected(NL_CFG_REPORT_INTERVAL, form, sizeof form);
  CHECK_STR(form, "a whole number of seconds from 1 to 86400");
  nl_config_expected(NL_CFG_TRANSFER_PORT, form, sizeof form);
  CHECK_STR(form, "a whole number from 0 to 65535 (0: any free port)");
  nl_config_expected(NL_CFG_LOG, form, sizeof form);
  CHECK_STR(form, "one of error, warn, info, debug, trace");
  nl_config_expected(NL_CFG_LOG_FORMAT, form, sizeof form);
  CHECK_STR(form, "text or json");
  nl_config_expected(NL_CFG_CLUSTER_KEY, form, sizeof form);
  CHECK_STR(form, "empty, or 16 to 4096 printable characters without spaces");
  /* A choice's synonym is accepted but not listed. */
  long long level;
  char why[256];
  CHECK(nl_config_validate(NL_CFG_LOG, "Warning", &level, why, sizeof why) ==
            0 &&
        level == NL_LOG_WARN);
}

static void test_transfer_settings(void) {
  char why[512];
  long long n;
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY, "", &n, why, sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY, "short-key", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY, "sixteen-chars-ok", &n, why,
                           sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY, "has a space in it!", &n, why,
                           sizeof why) != 0);
  char path[600];
  snprintf(path, sizeof path, "%s/cluster.key", tmpdir);
  FILE *f = fopen(path, "w");
  fputs("0123456789abcdef0123\n", f);
  fclose(f);
  chmod(path, 0644);
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY_FILE, path, &n, why,
                           sizeof why) != 0);
  CHECK_CONTAINS(why, "chmod 600");
  chmod(path, 0600);
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY_FILE, path, &n, why,
                           sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_CLUSTER_KEY_FILE, "/nonexistent/key", &n, why,
                           sizeof why) != 0);
  unlink(path);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_STREAMS, "0", &n, why, sizeof why) !=
        0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_STREAMS, "64", &n, why,
                           sizeof why) == 0 &&
        n == 64);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_STREAMS, "65", &n, why,
                           sizeof why) != 0);
  /* The word an INTEGER setting also takes, read as 0; and said so. */
  CHECK(nl_config_validate(NL_CFG_TRANSFER_STREAMS, "auto", &n, why,
                           sizeof why) == 0 &&
        n == 0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_STREAMS, "AUTO", &n, why,
                           sizeof why) == 0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_STREAMS, "autos", &n, why,
                           sizeof why) != 0);
  CHECK_CONTAINS(why, "auto, or a whole number of streams from 1 to 64");
  CHECK(nl_config_validate(NL_CFG_TRANSFER_ENCRYPT, "yes", &n, why,
                           sizeof why) == 0 &&
        n == 1);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_ENCRYPT, "encrypted", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_DIR, "relative/dir", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_MAX_BYTES, "0", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_PARTIAL_TTL, "24", &n, why,
                           sizeof why) == 0 &&
        n == 24);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_PARTIAL_TTL, "0", &n, why,
                           sizeof why) != 0);
  CHECK(nl_config_validate(NL_CFG_TRANSFER_PARTIAL_TTL, "87601", &n, why,
                           sizeof why) != 0);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/nodelua-config-XXXXXX");
  if (mkdtemp(tmpdir) == NULL)
    return 1;
  test_defaults();
  test_transfer_settings();
  test_precedence();
  test_alias();
  test_validation();
  test_file_errors();
  test_secret_never_shown();
  test_unknown_warns();
  test_many_warnings();
  test_update_settings();
  test_table();
  const char *names[] = {"service.env", "dot.env", "extra.env", "alias.env",
                         "bad.env"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    unlink(path_in_tmp(names[i]));
  rmdir(tmpdir);
  return check_report("test_config");
}
