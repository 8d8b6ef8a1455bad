#!/usr/bin/env python3
"""Lists Swift functions, initializers and closures-as-properties longer than a limit
(default 80 lines), and source files longer than 400 lines: the sizes docs/architecture.md
asks for. Approximate: counts from a `func`/`init` line to its matching closing brace,
ignoring braces inside string literals and comments."""
import re, sys, pathlib

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
roots = sys.argv[2:] or ["Sources"]
start = re.compile(r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|static|class|mutating|nonmutating|override|final|convenience|required|consuming|borrowing|nonisolated)\s+)*(?:func\s+[^\s(<]+|init[?!]?)\s*[(<]')

def strip(line):
    out, i, in_str = [], 0, False
    while i < len(line):
        c = line[i]
        if not in_str and line.startswith('//', i): break
        if c == '\\' and in_str: i += 2; continue
        if c == '"': in_str = not in_str
        elif not in_str: out.append(c)
        i += 1
    return ''.join(out)

found = False
for root in roots:
    for path in sorted(pathlib.Path(root).rglob('*.swift')):
        lines = path.read_text(errors='replace').split('\n')
        if len(lines) > 400:
            print(f"{path}: {len(lines)} lines (file)"); found = True
        for n, line in enumerate(lines):
            if not start.match(line): continue
            depth, opened = 0, False
            for m in range(n, len(lines)):
                text = strip(lines[m])
                depth += text.count('{') - text.count('}')
                if '{' in text: opened = True
                if opened and depth <= 0:
                    length = m - n + 1
                    if length > limit:
                        print(f"{path}:{n+1}: {length} lines: {line.strip()[:90]}"); found = True
                    break
sys.exit(1 if found else 0)
