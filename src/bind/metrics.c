/* nodelua.metrics: sample(groups) returns plain tables (docs/metrics.md);
 * scrape() what /metrics serves, read now by a collector of its own. One
 * pair of collectors per Lua state: the scheduled one keeps its previous
 * samples for rates, the scraping one never moves them. */
#include "runtime.h"

#include "core/metrics/metrics.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#define COLLECTOR_KEY "nodelua.metrics.collector"

/* m is sampled on the agent's schedule (reports, latest()); scraper is
 * sampled only by scrape(), so that a scrape moves no rate that a report
 * shows. */
typedef struct {
  nl_metrics *m;
  nl_metrics *scraper;
  nl_buf prom;
} collector;

static int collector_gc(lua_State *L) {
  collector *c = luaL_checkudata(L, 1, COLLECTOR_KEY);
  nl_metrics_close(c->m);
  nl_metrics_close(c->scraper);
  c->m = c->scraper = NULL;
  nl_buf_free(&c->prom);
  return 0;
}

static collector *get_collector(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, COLLECTOR_KEY "#instance");
  collector *c = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c != NULL)
    return c;
  /* Created closed, then the collector is opened. */
  c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  if (luaL_newmetatable(L, COLLECTOR_KEY)) {
    lua_pushcfunction(L, collector_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  c->m = nl_metrics_open();
  c->scraper = nl_metrics_open();
  if (c->m == NULL || c->scraper == NULL)
    luaL_error(L, "metrics: out of memory");
  /* HOST_PROC, HOST_SYS, HOST_ROOT, HOST_RUN: validated as existing
   * directories when the configuration was loaded. */
  const nl_config *cfg = nl_runtime_config(nl_runtime_get(L));
  if (cfg != NULL) {
    nl_host_paths paths = {nl_config_str(cfg, NL_CFG_HOST_PROC),
                           nl_config_str(cfg, NL_CFG_HOST_SYS),
                           nl_config_str(cfg, NL_CFG_HOST_ROOT),
                           nl_config_str(cfg, NL_CFG_HOST_RUN)};
    if (nl_metrics_set_host_paths(c->m, &paths) != 0 ||
        nl_metrics_set_host_paths(c->scraper, &paths) != 0 ||
        nl_metrics_set_textfile_dir(
            c->scraper, nl_config_str(cfg, NL_CFG_METRICS_TEXTFILE_DIR)) != 0)
      luaL_error(L, "metrics: HOST_PROC, HOST_SYS, HOST_ROOT, HOST_RUN and "
                    "METRICS_TEXTFILE_DIR must be absolute paths of at most "
                    "255 bytes");
    nl_metrics_enable_collectors(
        c->scraper, (nl_config_num(cfg, NL_CFG_METRICS_COLLECTOR_PROCESSES)
                         ? NL_COLLECT_PROCESSES
                         : 0) |
                        (nl_config_num(cfg, NL_CFG_METRICS_COLLECTOR_TCPSTAT)
                             ? NL_COLLECT_TCPSTAT
                             : 0));
  }
  lua_setfield(L, LUA_REGISTRYINDEX, COLLECTOR_KEY "#instance");
  return c;
}

static void set_number(lua_State *L, const char *key, double v) {
  if (isnan(v))
    return;
  lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, uint64_t v) {
  if (v == NL_ABSENT)
    return;
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, key);
}

static void set_string(lua_State *L, const char *key, const char *v) {
  if (v == NULL || v[0] == '\0')
    return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void set_boolean(lua_State *L, const char *key, bool v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, key);
}

static void push_cpu_times(lua_State *L, const nl_cpu_sample *cpu,
                           const nl_cpu_times *t, bool with_rate) {
  lua_createtable(L, 0, 5);
  if (t->index >= 0) {
    lua_pushinteger(L, t->index);
    lua_setfield(L, -2, "cpu");
  }
  lua_createtable(L, 0, NL_CPU_MODE_COUNT);
  for (int i = 0; i < NL_CPU_MODE_COUNT; i++) {
    if (cpu->modes & (1u << i))
      set_number(L, nl_cpu_mode_names[i], t->seconds[i]);
  }
  lua_setfield(L, -2, "seconds");
  if (with_rate && !isnan(t->usage_percent)) {
    lua_createtable(L, 0, NL_CPU_MODE_COUNT);
    for (int i = 0; i < NL_CPU_MODE_COUNT; i++) {
      if (cpu->modes & (1u << i))
        set_number(L, nl_cpu_mode_names[i], t->percent[i]);
    }
    lua_setfield(L, -2, "percent");
    set_number(L, "usage_percent", t->usage_percent);
  }
  set_number(L, "mhz", t->mhz);
}

static void push_cpu(lua_State *L, const nl_cpu_sample *cpu) {
  lua_createtable(L, 0, 9);
  set_string(L, "vendor", cpu->vendor);
  set_string(L, "brand", cpu->brand);
  if (cpu->physical_cores > 0)
    set_integer(L, "physical_cores", (uint64_t)cpu->physical_cores);
  set_integer(L, "logical_cores", (uint64_t)cpu->logical_cores);
  set_number(L, "base_mhz", cpu->base_mhz);
  set_number(L, "max_mhz", cpu->max_mhz);
  push_cpu_times(L, cpu, &cpu->total, cpu->has_rate);
  lua_setfield(L, -2, "total");
  lua_createtable(L, (int)cpu->core_count, 0);
  for (size_t i = 0; i < cpu->core_count; i++) {
    push_cpu_times(L, cpu, &cpu->cores[i], cpu->has_rate);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "cores");
}

static void push_memory(lua_State *L, const nl_memory_sample *mem) {
  lua_createtable(L, 0, 14);
  set_integer(L, "total", mem->total);
  set_integer(L, "available", mem->available);
  set_integer(L, "used", mem->used);
  set_integer(L, "free", mem->free);
  set_integer(L, "active", mem->active);
  set_integer(L, "inactive", mem->inactive);
  set_integer(L, "buffers", mem->buffers);
  set_integer(L, "cached", mem->cached);
  set_integer(L, "slab_reclaimable", mem->slab_reclaimable);
  set_integer(L, "wired", mem->wired);
  set_integer(L, "compressed", mem->compressed);
  set_integer(L, "swap_total", mem->swap_total);
  set_integer(L, "swap_used", mem->swap_used);
  set_integer(L, "swap_free", mem->swap_free);
}

static void push_counters(lua_State *L, const char *key,
                          const char *const *names, const uint64_t *values,
                          int count) {
  lua_createtable(L, 0, count);
  for (int i = 0; i < count; i++)
    set_integer(L, names[i], values[i]);
  lua_setfield(L, -2, key);
}

/* Rates only where there is one: absent after the first sample and after a
 * counter went backwards. */
static void push_rates(lua_State *L, const char *const *names,
                       const double *values, int count) {
  bool any = false;
  for (int i = 0; i < count; i++)
    any = any || !isnan(values[i]);
  if (!any)
    return;
  lua_createtable(L, 0, count);
  for (int i = 0; i < count; i++)
    set_number(L, names[i], values[i]);
  lua_setfield(L, -2, "rates");
}

/* A list of address strings laid out `stride` bytes apart; an empty list is
 * left out, since cjson would encode it as an object. */
static void push_addresses(lua_State *L, const char *key, const char *first,
                           size_t stride, int count) {
  if (count <= 0)
    return;
  lua_createtable(L, count, 0);
  for (int a = 0; a < count; a++) {
    lua_pushstring(L, first + (size_t)a * stride);
    lua_rawseti(L, -2, a + 1);
  }
  lua_setfield(L, -2, key);
}

/* prefix = {["10.0.0.1"] = 24, ...}: each address's subnet. */
static void push_prefixes(lua_State *L, const nl_netif *nif) {
  if (nif->ipv4_count + nif->ipv6_count <= 0)
    return;
  lua_createtable(L, 0, nif->ipv4_count + nif->ipv6_count);
  for (int a = 0; a < nif->ipv4_count; a++) {
    lua_pushinteger(L, nif->ipv4_prefix[a]);
    lua_setfield(L, -2, nif->ipv4[a]);
  }
  for (int a = 0; a < nif->ipv6_count; a++) {
    lua_pushinteger(L, nif->ipv6_prefix[a]);
    lua_setfield(L, -2, nif->ipv6[a]);
  }
  lua_setfield(L, -2, "prefix");
}

static void push_network(lua_State *L, const nl_network_sample *net) {
  lua_createtable(L, (int)net->count, 0);
  for (size_t i = 0; i < net->count; i++) {
    const nl_netif *nif = &net->ifs[i];
    lua_createtable(L, 0, 11);
    set_string(L, "name", nif->name);
    set_string(L, "kind", nl_link_kind_name(nif->kind));
    set_string(L, "mac", nif->mac);
    push_addresses(L, "ipv4", nif->ipv4[0], sizeof nif->ipv4[0],
                   nif->ipv4_count);
    push_addresses(L, "ipv6", nif->ipv6[0], sizeof nif->ipv6[0],
                   nif->ipv6_count);
    push_prefixes(L, nif);
    if (nif->speed_mbps > 0)
      set_integer(L, "speed_mbps", (uint64_t)nif->speed_mbps);
    set_boolean(L, "up", nif->up);
    if (nif->mtu > 0)
      set_integer(L, "mtu", (uint64_t)nif->mtu);
    push_counters(L, "counters", nl_net_counter_names, nif->counters,
                  NL_NET_COUNTER_COUNT);
    push_rates(L, nl_net_counter_names, nif->rates, NL_NET_COUNTER_COUNT);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void push_storage(lua_State *L, const nl_storage_sample *st) {
  lua_createtable(L, 0, 2);
  lua_createtable(L, (int)st->fs_count, 0);
  lua_Integer n = 0;
  for (size_t i = 0; i < st->fs_count; i++) {
    const nl_filesystem *fs = &st->fs[i];
    /* One that could not be measured, or has no blocks (a pseudo
     * filesystem), is on /metrics as node_exporter shows it, but is not
     * storage a report can say anything about. */
    if (fs->device_error || fs->size == 0)
      continue;
    lua_createtable(L, 0, 10);
    set_string(L, "device", fs->device);
    set_string(L, "mount", fs->mount);
    set_string(L, "fstype", fs->fstype);
    set_integer(L, "size", fs->size);
    set_integer(L, "used", fs->used);
    set_integer(L, "available", fs->available);
    set_integer(L, "free", fs->free);
    set_integer(L, "inodes_total", fs->inodes_total);
    set_integer(L, "inodes_free", fs->inodes_free);
    set_boolean(L, "readonly", fs->readonly);
    lua_rawseti(L, -2, ++n);
  }
  lua_setfield(L, -2, "filesystems");
  lua_createtable(L, (int)st->disk_count, 0);
  for (size_t i = 0; i < st->disk_count; i++) {
    const nl_disk *d = &st->disks[i];
    lua_createtable(L, 0, 3);
    set_string(L, "name", d->name);
    push_counters(L, "counters", nl_disk_counter_names, d->counters,
                  NL_DISK_COUNTER_COUNT);
    push_rates(L, nl_disk_counter_names, d->rates, NL_DISK_COUNTER_COUNT);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "disks");
}

static void push_system(lua_State *L, const nl_system_sample *sys) {
  lua_createtable(L, 0, 10);
  set_string(L, "hostname", sys->hostname);
  set_string(L, "sysname", sys->sysname);
  set_string(L, "os_name", sys->os_name);
  set_string(L, "os_version", sys->os_version);
  set_string(L, "kernel", sys->kernel);
  set_string(L, "kernel_version", sys->kernel_version);
  set_string(L, "arch", sys->arch);
  set_string(L, "model", sys->model);
  set_boolean(L, "apple_silicon", sys->apple_silicon);
  set_number(L, "boot_time", sys->boot_time);
  set_number(L, "uptime", sys->uptime);
}

static void push_thermal(lua_State *L, const nl_thermal_sample *th) {
  lua_createtable(L, 0, 1);
  lua_createtable(L, (int)th->count, 0);
  for (size_t i = 0; i < th->count; i++) {
    lua_createtable(L, 0, 3);
    set_string(L, "name", th->sensors[i].name);
    set_string(L, "source", th->sensors[i].source);
    set_number(L, "celsius", th->sensors[i].celsius);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "sensors");
}

static unsigned check_groups(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg))
    return NL_METRICS_ALL;
  unsigned groups = 0;
  if (lua_type(L, arg) == LUA_TSTRING) {
    groups = nl_metrics_group_parse(lua_tostring(L, arg));
    if (groups == 0)
      luaL_argerror(
          L, arg,
          lua_pushfstring(L, "unknown group '%s'", lua_tostring(L, arg)));
    return groups;
  }
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, arg, i);
    const char *name = lua_tostring(L, -1);
    unsigned g = name ? nl_metrics_group_parse(name) : 0;
    if (g == 0)
      luaL_argerror(L, arg,
                    lua_pushfstring(L, "unknown group '%s'",
                                    name ? name : luaL_typename(L, -1)));
    groups |= g;
    lua_pop(L, 1);
  }
  return groups;
}

/* The latest samples of the groups asked for, as tables: a field per
 * group that the OS could give. */
static int push_latest(lua_State *L, collector *c, unsigned groups) {
  const nl_metrics_snapshot *s = nl_metrics_get(c->m);
  unsigned got = groups & s->present;
  lua_createtable(L, 0, 8);
  if (got & NL_METRICS_CPU) {
    push_cpu(L, &s->cpu);
    lua_setfield(L, -2, "cpu");
  }
  if (got & NL_METRICS_LOAD) {
    lua_createtable(L, 0, 3);
    set_number(L, "load1", s->load.load1);
    set_number(L, "load5", s->load.load5);
    set_number(L, "load15", s->load.load15);
    lua_setfield(L, -2, "load");
  }
  if (got & NL_METRICS_MEMORY) {
    push_memory(L, &s->memory);
    lua_setfield(L, -2, "memory");
  }
  if (got & NL_METRICS_NETWORK) {
    push_network(L, &s->network);
    lua_setfield(L, -2, "network");
  }
  if (got & NL_METRICS_STORAGE) {
    push_storage(L, &s->storage);
    lua_setfield(L, -2, "storage");
  }
  if (got & NL_METRICS_SYSTEM) {
    push_system(L, &s->system);
    lua_setfield(L, -2, "system");
  }
  if (got & NL_METRICS_THERMAL) {
    push_thermal(L, &s->thermal);
    lua_setfield(L, -2, "thermal");
  }
  if (got & NL_METRICS_SELF) {
    lua_createtable(L, 0, 3);
    set_integer(L, "rss_bytes", s->self.rss_bytes);
    set_number(L, "cpu_seconds", s->self.cpu_seconds);
    set_number(L, "start_time", s->self.start_time);
    lua_setfield(L, -2, "self");
  }
  return 1;
}

static void update(lua_State *L, collector *c, unsigned groups) {
  if (nl_metrics_sample(c->m, groups) != 0)
    luaL_error(L, "metrics: out of memory");
}

/* sample([groups]): samples, then returns the tables. groups is nil (all),
 * a name, or a list of names. */
static int l_sample(lua_State *L) {
  unsigned groups = check_groups(L, 1);
  collector *c = get_collector(L);
  update(L, c, groups);
  return push_latest(L, c, groups);
}

/* update([groups]): samples without making tables, for a caller that reads
 * them less often than it samples (the agent: latest() at report time). */
static int l_update(lua_State *L) {
  unsigned groups = check_groups(L, 1);
  update(L, get_collector(L), groups);
  return 0;
}

/* latest([groups]): the tables of the last samples, sampling nothing. */
static int l_latest(lua_State *L) {
  unsigned groups = check_groups(L, 1);
  return push_latest(L, get_collector(L), groups);
}

/* scrape(): what /metrics serves, every figure read now. */
static int l_scrape(lua_State *L) {
  collector *c = get_collector(L);
  if (nl_metrics_scrape(c->scraper, &c->prom) != 0)
    return luaL_error(L, "metrics: out of memory");
  lua_pushlstring(L, c->prom.data ? c->prom.data : "", c->prom.len);
  return 1;
}

static const char *opt_path(lua_State *L, const char *key) {
  lua_getfield(L, 1, key);
  const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the table */
  return v;
}

/* host_paths{proc=, sys=, root=, run=}: where the machine's files are
 * (HOST_PROC, ...); nil or "" keeps a default. Both collectors follow. */
static int l_host_paths(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  nl_host_paths paths = {opt_path(L, "proc"), opt_path(L, "sys"),
                         opt_path(L, "root"), opt_path(L, "run")};
  collector *c = get_collector(L);
  int rc = nl_metrics_set_host_paths(c->m, &paths);
  if (rc == 0)
    rc = nl_metrics_set_host_paths(c->scraper, &paths);
  if (rc == -EINVAL)
    return luaL_error(L, "metrics: host paths must be absolute");
  if (rc != 0)
    return luaL_error(L, "metrics: a host path is too long");
  return 0;
}

static int l_exclude_fstypes(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  collector *c = get_collector(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  const char **types = lua_newuserdatauv(L, sizeof *types * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    types[i - 1] = lua_tostring(L, -1);
    luaL_argcheck(L, types[i - 1] != NULL, 1, "a list of type names");
    lua_pop(L, 1); /* the string stays alive in the table */
  }
  if (nl_metrics_set_excluded_fstypes(c->m, types, (size_t)n) != 0 ||
      nl_metrics_set_excluded_fstypes(c->scraper, types, (size_t)n) != 0)
    return luaL_error(L, "metrics: out of memory");
  return 0;
}

static int l_excluded_fstypes(lua_State *L) {
  collector *c = get_collector(L);
  const char *const *types;
  size_t n = nl_metrics_excluded_fstypes(c->m, &types);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, types[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_groups(lua_State *L) {
  lua_newtable(L);
  for (unsigned i = 0; i < 8; i++) {
    lua_pushstring(L, nl_metrics_group_name(1u << i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static const luaL_Reg metrics_functions[] = {
    {"sample", l_sample},
    {"update", l_update},
    {"latest", l_latest},
    {"scrape", l_scrape},
    {"host_paths", l_host_paths},
    {"exclude_fstypes", l_exclude_fstypes},
    {"excluded_fstypes", l_excluded_fstypes},
    {"groups", l_groups},
    {NULL, NULL},
};

int luaopen_nodelua_metrics(lua_State *L) {
  luaL_newlib(L, metrics_functions);
  return 1;
}
