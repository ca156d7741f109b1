/*
 * media.c - image dimensions from the first bytes of a file, for the
 * data units of ENCORD_WIRE §9: an image group with clusterByResolution
 * becomes one data unit per resolution. Only the headers are read: PNG's
 * IHDR chunk, and JPEG's first start-of-frame segment.
 */
#include "bks_internal.h"

#include <string.h>

static unsigned be16(const unsigned char *p) {
  return ((unsigned)p[0] << 8) | p[1];
}

static unsigned long be32(const unsigned char *p) {
  return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) |
         ((unsigned long)p[2] << 8) | p[3];
}

/* PNG: the 8-byte signature, then IHDR (length 13) with width and height
 * as big-endian 32-bit numbers. */
static int png_size(const unsigned char *d, size_t n, unsigned *w,
                    unsigned *h) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G',
                                       '\r', '\n', 0x1a, '\n'};
  if (n < 24 || memcmp(d, sig, 8) != 0 || be32(d + 8) != 13 ||
      memcmp(d + 12, "IHDR", 4) != 0)
    return -1;
  unsigned long pw = be32(d + 16), ph = be32(d + 20);
  if (pw == 0 || ph == 0 || pw > 0x7fffffffUL || ph > 0x7fffffffUL)
    return -1;
  *w = (unsigned)pw;
  *h = (unsigned)ph;
  return 0;
}

/* JPEG: SOI, then segments (0xFF, marker, 16-bit length including
 * itself) up to the first SOFn (C0-CF except DHT C4, JPG C8, DAC CC):
 * precision, height, width. Fill bytes (0xFF runs) are skipped; markers
 * without a length (TEM, RST0-7) have none; SOS ends the headers. */
static int jpeg_size(const unsigned char *d, size_t n, unsigned *w,
                     unsigned *h) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8)
    return -1;
  size_t i = 2;
  for (;;) {
    if (i >= n || d[i] != 0xFF)
      return -1;
    while (i < n && d[i] == 0xFF)
      i++;
    if (i >= n)
      return -1;
    unsigned m = d[i++];
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7))
      continue;
    if (m == 0xD9 || m == 0xDA || i + 2 > n)
      return -1;
    unsigned len = be16(d + i);
    if (len < 2)
      return -1;
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (len < 7 || i + 7 > n)
        return -1;
      unsigned ph = be16(d + i + 3), pw = be16(d + i + 5);
      if (pw == 0 || ph == 0)
        return -1;
      *w = pw;
      *h = ph;
      return 0;
    }
    i += len;
  }
}

int bks_image_size(const unsigned char *d, size_t n, unsigned *w,
                   unsigned *h) {
  if (png_size(d, n, w, h) == 0)
    return 0;
  return jpeg_size(d, n, w, h);
}
