/* Counts every heap allocation of the test process, to show that a path
 * allocates nothing per step (a metrics sample, a transfer's chunk).
 * glibc lets a program replace malloc, and its own internal calls then use
 * the replacement too. Under a sanitizer, which brings its own allocator,
 * or without glibc, nothing is counted and COUNTING_ALLOCATIONS stays
 * undefined: a test says SKIPPED for that part. Include once per test. */
#ifndef NODELUA_TEST_ALLOC_COUNT_H
#define NODELUA_TEST_ALLOC_COUNT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h> /* and with it __GLIBC__ */

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NL_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NL_TEST_SANITIZED 1
#endif

static atomic_long allocations __attribute__((unused));

#if defined(__GLIBC__) && !defined(NL_TEST_SANITIZED)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
void *malloc(size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
#define COUNTING_ALLOCATIONS 1
#endif

#endif
