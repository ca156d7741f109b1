#!/usr/bin/env python3
"""make-images.py - write the sample images in examples/images/.

Eight small, valid PNG files (8-bit RGB, gradients and patterns, 64x64 to
256x256, a few kB each), made with the standard library only (zlib and
struct), so that anyone can check or regenerate them:

    python3 examples/make-images.py            # writes examples/images/*.png
    python3 examples/make-images.py OUT_DIR

The output is deterministic: the same script writes the same bytes.
"""
import math
import os
import struct
import sys
import zlib


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width, height, pixel):
    """A PNG of width x height whose pixel (x, y) is pixel(x, y) = (r, g, b)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type 0 (None) for every row
        for x in range(width):
            r, g, b = pixel(x, y)
            rows += bytes((r & 255, g & 255, b & 255))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


def clamp(v):
    return max(0, min(255, int(v)))


def gradient(w, h):
    return lambda x, y: (x * 255 // (w - 1), y * 255 // (h - 1), 128)


def checkerboard(w, h, cell=16):
    def px(x, y):
        on = ((x // cell) + (y // cell)) % 2
        return (230, 230, 230) if on else (40, 60 + y * 150 // h, 90)
    return px


def rings(w, h):
    cx, cy = w / 2, h / 2
    def px(x, y):
        d = math.hypot(x - cx, y - cy)
        v = 128 + 127 * math.sin(d / 4)
        return (clamp(v), clamp(255 - v), clamp(d * 2))
    return px


def stripes(w, h):
    return lambda x, y: ((30, 120, 200) if (x + y) // 12 % 2 else (250, 200, 40))


def plasma(w, h):
    def px(x, y):
        v = (math.sin(x / 9.0) + math.sin(y / 7.0)
             + math.sin((x + y) / 11.0) + math.sin(math.hypot(x, y) / 8.0))
        return (clamp(128 + 32 * v), clamp(128 + 32 * math.sin(v * 2)),
                clamp(128 - 32 * v))
    return px


def xor_pattern(w, h):
    return lambda x, y: ((x ^ y) & 255, (x * 2) & 255, (y * 3) & 255)


def sunset(w, h):
    def px(x, y):
        sky = (clamp(250 - y * 120 / h), clamp(120 + y * 60 / h), clamp(90 + y * 80 / h))
        if math.hypot(x - w * 0.6, y - h * 0.55) < h * 0.18:
            return (255, 220, 120)
        if y > h * 0.7:
            return (20, 40 + (x * 7 + y * 3) % 20, 70)
        return sky
    return px


def dots(w, h, step=10):
    def px(x, y):
        dx, dy = x % step - step / 2, y % step - step / 2
        if dx * dx + dy * dy < (step / 3) ** 2:
            return (200, 30 + x * 200 // w, 60)
        return (245, 245, 235)
    return px


IMAGES = [
    ("checkerboard.png", 128, 128, checkerboard),
    ("dots.png", 96, 96, dots),
    ("gradient.png", 64, 64, gradient),
    ("plasma.png", 160, 120, plasma),
    ("rings.png", 128, 128, rings),
    ("stripes.png", 200, 100, stripes),
    ("sunset.png", 256, 160, sunset),
    ("xor.png", 96, 64, xor_pattern),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "images")
    os.makedirs(out, exist_ok=True)
    for name, w, h, make in IMAGES:
        data = png(w, h, make(w, h))
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name:18} {w:3}x{h:<3} {len(data):6} bytes")


if __name__ == "__main__":
    main()
