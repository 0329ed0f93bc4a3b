"""Exclusive instructions per call of a callgrind dump, grouped by what they do.

usage: callgrind_groups.py DUMP CALLS [TOP]   (TOP: also list the TOP costliest functions)
"""
import re, sys, collections
def excl(path):
    names = {}; c = collections.Counter(); fn = None; skip = False
    for line in open(path, errors="replace"):
        if line.startswith("fn="):
            m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2): names[m.group(1)] = m.group(2)
            fn = names.get(m.group(1)); continue
        if line.startswith("cfn="):
            m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2): names[m.group(1)] = m.group(2)
            continue
        if line.startswith("calls="): skip = True; continue
        if line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2 and fn is not None:
                if skip: skip = False
                else: c[fn] += int(parts[1])
            continue
    return c
RULES = [("JSON (serde_json)", r"serde_json|serde_core|serde::|<serde"),
         ("allocation (malloc, free)", r"^(malloc|free|_int_malloc|_int_free|realloc|_int_realloc|calloc|malloc_consolidate|unlink_chunk|tcache|__rust_alloc|__rust_dealloc|__rust_realloc|__rustc::)"),
         ("memcpy, memmove, memcmp", r"^(__mem|mem|__strlen|strlen)"),
         ("SQLite (timers, not per call)", r"sqlite|rusqlite"),
         ("tracing", r"tracing"),
         ("hyper, httparse, http", r"hyper|httparse|^http::|<http::|http_body"),
         ("tokio, mio (scheduler, timers, I/O)", r"tokio|mio::"),
         ("hashing (SipHash)", r"sip::|hash_one|BuildHasher"),
         ("the gateway's own code", r"mcpgate"),
         ("futures, bytes", r"futures|bytes::"),
        ]
def group(name):
    for label, pat in RULES:
        if re.search(pat, name): return label
    return "other (std, kernel entry, libc)"
c = excl(sys.argv[1]); n = float(sys.argv[2])
g = collections.Counter()
for k, v in c.items(): g[group(k)] += v
tot = sum(g.values())
for k, v in g.most_common(): print(f"{v/n:8.0f}  {100*v/tot:5.1f}%  {k}")
print(f"{tot/n:8.0f}  total per call")
if len(sys.argv) > 3:
    for k, v in c.most_common(int(sys.argv[3])): print(f"{v/n:8.0f}  {k[:140]}")
