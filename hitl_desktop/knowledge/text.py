"""Small text helpers shared by the knowledge index and the offline engine's NLU.

Both correct typos by edit distance (the index against the articles'
vocabulary, the NLU against its intent lexicon); one implementation keeps
them agreeing on what "one typo away" means. Pure functions, no imports of
SQLite, so the NLU can use them without loading the index.
"""

from __future__ import annotations


def edit_distance_le(a: str, b: str, limit: int) -> bool:
    """True when the optimal-string-alignment distance of a and b is at most ``limit``.

    Stops as soon as a whole row exceeds the limit, so far-apart words cost a
    row or two rather than the full table.
    """
    if abs(len(a) - len(b)) > limit:
        return False
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return False
        prev2, prev = prev, cur
    return prev[-1] <= limit
