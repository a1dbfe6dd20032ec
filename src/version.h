/* The version of this build and where its releases are published. The
 * definitions are generated (src/version.c.in) and linked into each
 * executable, so a release build changes one object. */
#ifndef NODELUA_VERSION_H
#define NODELUA_VERSION_H

const char *nl_version(void);
const char *nl_update_repository(void);

#endif
