#include "ratelimit.h"

#include <stdio.h>
#include <string.h>

/* The slot of key; else an empty one; else the one let through longest
 * ago. Caller holds the lock. */
static nl_ratelimit_slot *slot_for(nl_ratelimit *r, const char *key,
                                   bool *found) {
  nl_ratelimit_slot *spare = NULL;
  for (int i = 0; i < NL_RATELIMIT_SLOTS; i++) {
    nl_ratelimit_slot *s = &r->slots[i];
    if (s->key[0] != '\0' && strcmp(s->key, key) == 0) {
      *found = true;
      return s;
    }
    if (spare == NULL || (spare->key[0] != '\0' &&
                          (s->key[0] == '\0' || s->since < spare->since)))
      spare = s;
  }
  *found = false;
  return spare;
}

bool nl_ratelimit_allow(nl_ratelimit *r, const char *key, time_t now,
                        unsigned *held_back) {
  pthread_mutex_lock(&r->lock);
  bool found;
  nl_ratelimit_slot *slot = slot_for(r, key, &found);
  bool allow = !found || now - slot->since >= r->period_seconds;
  if (!allow) {
    slot->suppressed++;
  } else {
    if (!found) {
      snprintf(slot->key, sizeof slot->key, "%s", key);
      slot->suppressed = 0;
    }
    *held_back = slot->suppressed;
    slot->suppressed = 0;
    slot->since = now;
  }
  pthread_mutex_unlock(&r->lock);
  return allow;
}
