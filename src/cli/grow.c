/*
 * grow.c - room in a growing array (grow.h).
 */
#include "grow.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

bool cli_grow(void **p, size_t *cap, size_t need, size_t size, size_t first) {
  if (need <= *cap)
    return true;
  size_t n = *cap ? *cap : first ? first : 1;
  while (n < need && n <= SIZE_MAX / 2)
    n *= 2;
  if (n < need || (size && n > SIZE_MAX / size)) {
    errno = ENOMEM;
    return false;
  }
  void *q = realloc(*p, n * size);
  if (!q)
    return false;
  *p = q;
  *cap = n;
  return true;
}
