#!/usr/bin/python3
"""recipe.py README NAME: print the code block of README that follows the
marker line `<!-- tested: NAME -->`, without its fences, byte for byte.

The engine tests run README's recipes through this, so that what README
shows is what was run. Exits 1 (naming the problem) when the marker is
missing, appears twice, or is not followed by a fenced block.
"""
import sys


def extract(text: str, name: str) -> str:
    marker = f"<!-- tested: {name} -->"
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.strip() == marker]
    if len(hits) != 1:
        raise ValueError(f"marker {marker!r}: found {len(hits)} times, want 1")
    i = hits[0] + 1
    if i >= len(lines) or not lines[i].startswith("```"):
        raise ValueError(f"marker {marker!r} is not followed by a ``` fence")
    body = []
    for line in lines[i + 1:]:
        if line.startswith("```"):
            return "".join(b + "\n" for b in body)
        body.append(line)
    raise ValueError(f"the block after {marker!r} is not closed")


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: recipe.py README NAME", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    try:
        sys.stdout.write(extract(text, sys.argv[2]))
    except ValueError as e:
        print(f"recipe.py: {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
