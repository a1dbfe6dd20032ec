/* The settings table written for people: `nodelua --help` and README's
 * configuration table (`nodelua config --markdown`). Both are rendered from
 * the rows in config.c, so a range or default is written once. */
#include "config.h"

#include <string.h>

/* Writes s with Markdown's table separator escaped. */
static void put_cell(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|')
      fputc('\\', out);
    fputc(*s, out);
  }
}

static void put_default(FILE *out, const nl_config_var *v) {
  if (v->default_text != NULL) {
    put_cell(out, v->default_text);
  } else {
    fputc('`', out);
    put_cell(out, v->default_value);
    fputc('`', out);
  }
}

void nl_config_print_markdown(FILE *out) {
  char form[512];
  fputs("| variable | default | form | meaning |\n", out);
  fputs("|---|---|---|---|\n", out);
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    const nl_config_var *v = nl_config_var_info((nl_config_id)i);
    nl_config_expected((nl_config_id)i, form, sizeof form);
    fprintf(out, "| `%s`", v->name);
    if (v->alias != NULL)
      fprintf(out, " (alias `%s`)", v->alias);
    fputs(" | ", out);
    put_default(out, v);
    fputs(" | ", out);
    put_cell(out, form);
    if (v->secret)
      fputs("; **secret**", out);
    fputs(" | ", out);
    put_cell(out, v->summary);
    fputs(" |\n", out);
  }
}

void nl_config_print_help(FILE *out) {
  char form[512];
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    const nl_config_var *v = nl_config_var_info((nl_config_id)i);
    nl_config_expected((nl_config_id)i, form, sizeof form);
    fprintf(out, "  %-24s %s\n", v->name, v->summary);
    if (v->alias != NULL)
      fprintf(out, "  %-24s   also read as: %s\n", "", v->alias);
    fprintf(out, "  %-24s   form: %s\n", "", form);
    if (v->secret)
      fprintf(out, "  %-24s   (secret: its value is never shown)\n", "");
    else
      fprintf(out, "  %-24s   default: %s\n", "",
              v->default_text ? v->default_text : v->default_value);
  }
}
