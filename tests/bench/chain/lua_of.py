#!/usr/bin/env python3
# Prints the Lua text of a C string constant (a script) as the compiler
# sees it: lua_of.py SOURCE NAME, run from the source tree's root.
import ast, re, subprocess, sys

src, name = sys.argv[1], sys.argv[2]
out = subprocess.run(["cc", "-E", "-D_GNU_SOURCE", "-Icommon", src],
                     capture_output=True, text=True, check=True).stdout
body = out[out.index(name + "[] ="):]
body = body[:body.index(";\n")]
lits = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
sys.stdout.write("".join(ast.literal_eval('"' + l + '"') for l in lits))
