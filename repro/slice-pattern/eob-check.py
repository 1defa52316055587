"""Finds the miscompile of README.md in a crate's optimized MIR.

rustc's MIR pass EarlyOtherwiseBranch turns two nested switches into one
comparison `_x = Ne(a, b)`; when `b` reads a slice element, `(*_p)[k of n]`,
that read now happens where the second switch's length check used to guard
it. For each such `Ne` this prints whether every path from the function's
entry to it passes a length check of `_p` proving len >= n ("guarded") or
not ("UNGUARDED": a read past the end of a shorter slice, the miscompile).
It follows `PtrMetadata` lengths and `Ge`/`Eq` tests of them; a length
taken from a Vec's field is not followed, so such a read is reported
UNGUARDED: a false alarm to read by hand. It looks at `Ne` statements only,
the shape the pass makes; it is a tripwire, not a proof.

Usage: cargo rustc --release --lib -- --emit=mir -o /tmp/crate.mir
       python3 eob-check.py /tmp/crate-*.mir
Exit status 1 when some read is unguarded.
"""
import re, sys
mir = open(sys.argv[1]).read()
funcs = re.split(r'\n(?=fn )', mir)
unguarded = 0
ne_re = re.compile(r'_\d+ = Ne\((.*)\);')
elem_re = re.compile(r'\(\*(_\d+)\)\[(\d+) of (\d+)\]')
for f in funcs:
    if not f.startswith('fn '): continue
    f = f.split('\n}\n', 1)[0] + '\n'  # the body, not its promoted constants
    blocks = {}
    for m in re.finditer(r'\n    (bb\d+)(?: \(cleanup\))?: \{\n(.*?)\n    \}', f, re.S):
        blocks[m.group(1)] = m.group(2)
    sites = []
    for b, body in blocks.items():
        for m in ne_re.finditer(body):
            els = elem_re.findall(m.group(1))
            if els: sites.append((b, m.group(0).strip(), els))
    if not sites: continue
    name = f.split('\n',1)[0][:150]
    # length locals: _L = PtrMetadata(copy _p)
    lenof = {m.group(1): m.group(2) for m in re.finditer(r'(_\d+) = PtrMetadata\(copy (_\d+)\)', f)}
    # boolean Ge/Eq locals: _b = Ge(copy _L, const m_usize)
    cmp = {}
    for m in re.finditer(r'(_\d+) = (Ge|Eq)\(copy (_\d+), const (\d+)_usize\)', f):
        cmp[m.group(1)] = (m.group(2), m.group(3), int(m.group(4)))
    succ = {}
    for b, body in blocks.items():
        edges = []
        sm = re.search(r'switchInt\((?:copy |move |const )?(.*?)\) -> \[(.*?)\];', body)
        if sm:
            local = sm.group(1)
            for arm in sm.group(2).split(', '):
                val, tgt = arm.split(': ')
                edges.append((tgt, local, val))
        else:
            for tgt in re.findall(r'(bb\d+)', body.split('\n')[-1]):
                edges.append((tgt, None, None))
        succ[b] = edges
    preds = {}
    for b, edges in succ.items():
        for tgt, local, val in edges:
            preds.setdefault(tgt, []).append((b, local, val))
    def proves(local, val, ptr, n):
        # edge taken with switch `local` == val (or otherwise) proves len(ptr) >= n?
        if local in lenof and lenof[local] == ptr and val not in ('otherwise',):
            return int(val) >= n
        if local in cmp:
            op, L, m = cmp[local]
            if lenof.get(L) == ptr:
                if op == 'Ge' and val != '0' : return m >= n
                if op == 'Eq' and val != '0': return m >= n
        return False
    for b, stmt, els in sites:
        bad = False
        for ptr in sorted({e[0] for e in els}):
            n = max(int(e[2]) for e in els if e[0] == ptr)
            # Is bb0 reachable backwards from b without crossing a proving edge?
            seen = set(); stack = [b]
            while stack and not bad:
                x = stack.pop()
                if x in seen: continue
                seen.add(x)
                if x == 'bb0': bad = True; break
                for p, local, val in preds.get(x, []):
                    if not proves(local, val, ptr, n):
                        stack.append(p)
        print(('UNGUARDED ' if bad else 'guarded   ') + f'{b}: {stmt}   in {name}')
        unguarded += bad
sys.exit(1 if unguarded else 0)
