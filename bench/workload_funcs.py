"""The tasks of bench/workloads.py: small real programs, module-level so that every executor
(threads, processes, interpreters) finds them by name. Pure Python and the standard library."""

import json
import math
import random
import re

# -- CPU-bound ----------------------------------------------------------------------------------


def count_primes(lo, hi):
    """Primes in [lo, hi) by trial division."""
    count = 0
    for n in range(max(lo, 2), hi):
        if n % 2 == 0:
            count += n == 2
            continue
        r = int(n**0.5)
        for d in range(3, r + 1, 2):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm(a):
    n = math.sqrt(_dot(a, a))
    return (a[0] / n, a[1] / n, a[2] / n)


_SPHERES = (
    ((0.0, -1.0, 3.0), 1.0, (255, 0, 0)),
    ((2.0, 0.0, 4.0), 1.0, (0, 0, 255)),
    ((-2.0, 0.0, 4.0), 1.0, (0, 255, 0)),
    ((0.0, -5001.0, 0.0), 5000.0, (255, 255, 0)),
)
_LIGHT = _norm((1.0, 4.0, -4.0))


def _trace(origin, d):
    best, hit = math.inf, None
    for center, radius, color in _SPHERES:
        co = _sub(origin, center)
        b = 2 * _dot(co, d)
        c = _dot(co, co) - radius * radius
        disc = b * b - 4 * c
        if disc < 0:
            continue
        t = (-b - math.sqrt(disc)) / 2
        if 1e-3 < t < best:
            best, hit = t, (center, color)
    if hit is None:
        return (20, 20, 40)
    p = (origin[0] + d[0] * best, origin[1] + d[1] * best, origin[2] + d[2] * best)
    n = _norm(_sub(p, hit[0]))
    shade = max(0.0, _dot(n, _LIGHT)) * 0.8 + 0.2
    return tuple(int(ch * shade) for ch in hit[1])


def render_rows(first, step, width, height):
    """Rows ``first``, ``first + step``, ... of a small ray-traced scene: the checksum of their
    pixels. Interleaved rows give every task a like share of sky and of spheres, so that tasks
    cost about the same."""
    total = 0
    for y in range(first, height, step):
        for x in range(width):
            d = _norm(((x - width / 2) / width, -(y - height / 2) / height, 1.0))
            r, g, b = _trace((0.0, 0.0, 0.0), d)
            total += r + 2 * g + 3 * b
    return total


def json_roundtrip(seed, n):
    """Build n records, serialize them to JSON and parse them back: a checksum."""
    rnd = random.Random(seed)
    records = [
        {
            "id": i,
            "name": f"user{rnd.randrange(10**6)}",
            "tags": [rnd.choice("abcdef") for _ in range(5)],
            "score": rnd.random(),
            "nested": {"a": i, "b": [i, i + 1, i + 2]},
        }
        for i in range(n)
    ]
    back = json.loads(json.dumps(records))
    return sum(r["nested"]["b"][2] for r in back) + len(back)


_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
_PATTERNS = (r"\b[a-e]\w+", r"(\w+)@(\w+)\.com", r"\d{3}-\d{4}", r"\b(\w)\w*\1\b")


def regex_scan(seed, n):
    """Generate n lines of text and run a few patterns over them: the count of matches."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rnd.choice(_WORDS) for _ in range(8)]
        words.append(f"{rnd.choice(_WORDS)}@{rnd.choice(_WORDS)}.com")
        words.append(f"{rnd.randrange(100, 999)}-{rnd.randrange(1000, 9999)}")
        lines.append(" ".join(words))
    text = "\n".join(lines)
    return sum(len(re.findall(p, text)) for p in _PATTERNS)


# -- data in and out ----------------------------------------------------------------------------


def size_of(data):
    return len(data)


def make_str(n):
    return "s" * n


def make_bytes(n):
    return b"b" * n


def make_dicts(n):
    return [{"id": i, "name": f"item{i}", "price": i * 0.5, "tags": ["a", "b"]} for i in range(n)]


def ident(x):
    return x


def cheap(x):
    return x + 1


def spin(seconds):
    """Busy for about ``seconds`` (the long task of the latency workload)."""
    import time

    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def stamp(_x):
    import time

    return time.perf_counter()
