/* Logging: levelled, timestamped lines on stderr (or a file), as text or as
 * one JSON object per line. Every line is scrubbed of registered secrets
 * before it is written, so no caller can leak a key by accident. */
#ifndef NODELUA_LOG_H
#define NODELUA_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
  NL_LOG_ERROR = 0,
  NL_LOG_WARN = 1,
  NL_LOG_INFO = 2,
  NL_LOG_DEBUG = 3,
  NL_LOG_TRACE = 4
} nl_log_level;

typedef enum { NL_LOG_TEXT = 0, NL_LOG_JSON = 1 } nl_log_format;

#define NL_LOG_REDACTED "[REDACTED]"

/* Parses "error", "warn" (or "warning"), "info", "debug", "trace", in any
 * case. Returns 0 or -EINVAL. */
int nl_log_level_parse(const char *name, nl_log_level *out);
const char *nl_log_level_name(nl_log_level level);
int nl_log_format_parse(const char *name, nl_log_format *out);

void nl_log_set_level(nl_log_level level);
nl_log_level nl_log_get_level(void);
void nl_log_set_format(nl_log_format format);
int nl_log_enabled(nl_log_level level);

/* Sends further lines to the file at path (appended, created 0600), or back
 * to stderr when path is NULL. Returns 0 or a negative errno. */
int nl_log_set_file(const char *path);

/* Registers a value that must never be written. Values shorter than
 * NL_LOG_MIN_SECRET are ignored: redacting "a" would garble every line. */
#define NL_LOG_MIN_SECRET 4
int nl_log_add_secret(const char *value);
void nl_log_clear_secrets(void);

/* Copies src into dst (of size dstlen, always terminated) with every
 * registered secret replaced by NL_LOG_REDACTED. Returns the length. */
size_t nl_log_redact(const char *src, char *dst, size_t dstlen);

/* Formats one complete line (with trailing newline) into buf. Exposed so that
 * tests can check the exact shape without capturing stderr. */
size_t nl_log_format_line(char *buf, size_t buflen, nl_log_level level,
                          const char *component, const char *message);

void nl_log_write(nl_log_level level, const char *component, const char *fmt,
                  ...) __attribute__((format(printf, 3, 4)));
void nl_log_vwrite(nl_log_level level, const char *component, const char *fmt,
                   va_list ap) __attribute__((format(printf, 3, 0)));

#define nl_log_error(c, ...) nl_log_write(NL_LOG_ERROR, c, __VA_ARGS__)
#define nl_log_warn(c, ...) nl_log_write(NL_LOG_WARN, c, __VA_ARGS__)
#define nl_log_info(c, ...) nl_log_write(NL_LOG_INFO, c, __VA_ARGS__)
#define nl_log_debug(c, ...) nl_log_write(NL_LOG_DEBUG, c, __VA_ARGS__)
#define nl_log_trace(c, ...) nl_log_write(NL_LOG_TRACE, c, __VA_ARGS__)

#endif
