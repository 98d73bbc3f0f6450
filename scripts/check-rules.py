#!/usr/bin/env python3
"""Structure rules that keep the architecture true as it grows (STYLE.md, "checked").

1. includes go downward: base <- store, media <- jobs <- intake <- http <- main.c
2. each library is included only by its owning layer
3. no banned functions (sprintf, strcpy, atoi, system, ...)
4. getenv() only in src/base/config.c
Prints TAP with --tap (one line per rule); exits 1 when a rule is broken.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")

RANK = {"base": 0, "store": 1, "media": 1, "jobs": 2, "intake": 3, "http": 4, "main": 5}
OWNERS = [
    (re.compile(r"^microhttpd\.h$"), "http"),
    (re.compile(r"^jansson\.h$"), "http"),
    (re.compile(r"^(sqlite3\.h|libpq-fe\.h|curl/|libxml/)"), "store"),
    (re.compile(r"^(vips/|libexif/|libraw/|libavcodec/|libavutil/|glib|jpeglib\.h)"), "media"),
    (re.compile(r"^(sodium\.h|sodium/|openssl/)"), "base"),
]
BANNED = ["sprintf", "vsprintf", "strcpy", "strcat", "strncpy", "gets", "strtok", "atoi",
          "atol", "atoll", "system", "tmpnam", "mktemp"]
BANNED_RE = re.compile(r"(?<![\w.>])(" + "|".join(BANNED) + r")\s*\(")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def strip_comments_and_strings(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def layer_of(path):
    rel = os.path.relpath(path, SRC)
    return "main" if rel == "main.c" else rel.split(os.sep)[0]


def sources(top):
    for dirpath, _, files in os.walk(top):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(dirpath, f)


def check(tests_too=True):
    problems = {"includes go downward only": [], "each library included only by its owner": [],
                "no banned functions": [], "getenv only in src/base/config.c": []}
    for path in sources(SRC):
        layer = layer_of(path)
        rel = os.path.relpath(path, ROOT)
        text = open(path, encoding="utf-8", errors="replace").read()
        for kind, inc in INCLUDE_RE.findall(text):
            if kind == '"':
                target = inc.split("/")[0]
                if target in RANK and target != layer and RANK[target] >= RANK.get(layer, 0):
                    problems["includes go downward only"].append(f"{rel}: includes {inc}")
            else:
                for pat, owner in OWNERS:
                    if pat.search(inc) and layer != owner:
                        problems["each library included only by its owner"].append(
                            f"{rel}: includes <{inc}>, owned by src/{owner}/")
        code = strip_comments_and_strings(text)
        for m in BANNED_RE.finditer(code):
            line = code[:m.start()].count("\n") + 1
            problems["no banned functions"].append(f"{rel}:{line}: {m.group(1)}()")
        if rel != os.path.join("src", "base", "config.c") and re.search(r"\bgetenv\s*\(", code):
            problems["getenv only in src/base/config.c"].append(f"{rel}: calls getenv()")
    if tests_too:
        for path in sources(os.path.join(ROOT, "tests")):
            code = strip_comments_and_strings(open(path, encoding="utf-8", errors="replace").read())
            for m in BANNED_RE.finditer(code):
                line = code[:m.start()].count("\n") + 1
                problems["no banned functions"].append(
                    f"{os.path.relpath(path, ROOT)}:{line}: {m.group(1)}()")
    return problems


def main():
    tap = "--tap" in sys.argv
    problems = check()
    bad = 0
    for i, (rule, found) in enumerate(problems.items(), 1):
        if tap:
            print(f"{'not ok' if found else 'ok'} {i} - {rule}")
        for p in found:
            print(f"  {p}", file=sys.stderr if not tap else sys.stdout)
        bad += bool(found)
    if not tap and not bad:
        print("rules: all good")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
