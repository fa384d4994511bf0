#!/usr/bin/env python3
"""Report dependency cycles between the source files of cudl.

A module is a source file with its header: src/data/idx.c and src/data/idx.h
(and a kernels/foo.cu with its kernels/foo.h) are one module, named by the
path without the extension. Module A depends on module B when a file of A

  * includes a file of B (#include "..."), or
  * uses a function or variable that a file of B defines with external
    linkage (a call, or its address in a table).

The second kind is what an include stands for: a shared header such as
src/data/data_internal.h declares functions of several .c files, so
"idx.c includes data_internal.h" hides "idx.c calls dataset.c". A cycle,
A -> B -> ... -> A, means no module of it can be read, tested or changed
apart from the others; the checker lists each cycle with the include or
symbol behind each of its edges and exits 1. Exits 0 when there is none.

What it reads: the .c, .h, .cu, .cuh, .cpp and .def files under src/,
kernels/, tools/ and benchmarks/ (public headers in include/ declare the
API and are not modules). It is a text scanner, not a compiler: a
definition the preprocessor writes (a macro that expands to a function) is
not seen, and #if branches are all read.

Usage:
  check-include-cycles.py [ROOT]   check the tree at ROOT (default: the
                                   repository this script is in)
  check-include-cycles.py --selftest
                                   check the checker on small trees made in
                                   a temporary directory (some with a cycle,
                                   some without)
Standard library only.
"""

import os
import re
import sys
import tempfile

SCAN_DIRS = ("src", "kernels", "tools", "benchmarks")
SOURCE_EXT = (".c", ".cu", ".cpp")
HEADER_EXT = (".h", ".cuh", ".hpp", ".def")
# Where "#include "x"" is looked for after the including file's directory:
# the include paths the build gives (src/ and the root, for "core/x.h" and
# "kernels/x.h").
INCLUDE_ROOTS = ("src", ".")
# Names defined in many programs on purpose.
IGNORED_NAMES = {"main"}
# Files whose functions stand in, inside another binary, for the library's
# functions of the same names: the CUDA backend module's forwarders
# (src/core/cuda_module.h). A name such a file defines that another module
# defines too is the other module's.
STAND_INS = {"src/cuda/cuda_core_calls.c"}
# Words before a parenthesis in a declaration that are not its name.
NOT_NAMES = {
    "__launch_bounds__", "__attribute__", "__declspec", "alignas",
    "__align__", "if", "while", "for", "switch", "return", "sizeof",
    "defined", "decltype",
}
IDENT = re.compile(r"[A-Za-z_]\w*")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def strip_code(text):
    """Blank out comments and the insides of string and character literals,
    keeping newlines (so line numbers stay) and the quotes."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_preprocessor(code):
    """(code without preprocessor lines, {macro name: its body}).
    Continuation lines are joined first; line structure is kept."""
    lines = code.split("\n")
    plain, macros = [], {}
    in_directive, directive = False, []
    for line in lines:
        if in_directive or line.lstrip().startswith("#"):
            directive.append(line)
            in_directive = line.endswith("\\")
            plain.append("")
            if not in_directive:
                text = " ".join(l.rstrip("\\") for l in directive)
                m = re.match(r"\s*#\s*define\s+(\w+)(\([^)]*\))?(.*)", text)
                if m:
                    macros[m.group(1)] = macros.get(m.group(1), "") + \
                        " " + m.group(3)
                directive = []
        else:
            plain.append(line)
    return "\n".join(plain), macros


def declared_name(head):
    """The name a declaration head declares: the identifier before its
    parameter list, or None when the head is not a function."""
    depth, start = 0, None
    groups = []
    for k, ch in enumerate(head):
        if ch == "(":
            if depth == 0:
                start = k
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and start is not None:
                groups.append(start)
    for start in groups:
        m = re.search(r"([A-Za-z_]\w*)\s*$", head[:start])
        if m and m.group(1) not in NOT_NAMES:
            return m.group(1)
    return None


def scan_top_level(code):
    """The names the file defines at file scope: {name: (kind, line)} with
    external linkage, the set of its file-local (static) names, and the
    identifiers in the body of each function ({name: set})."""
    defined, local, bodies = {}, set(), {}
    depth = 0
    head_start = 0
    # Each open brace: "block", or "scope" for extern "C" {} and a named
    # namespace (transparent), "internal" for an anonymous namespace.
    stack = []
    internal_scopes = 0
    body = None  # (function name or None, start) of the open top block
    i, n = 0, len(code)

    def note(name, kind, pos, static):
        if not name:
            return
        if static:
            local.add(name)
        elif name not in IGNORED_NAMES:
            m = re.search(r"\b%s\b" % re.escape(name), code[pos:])
            at = pos + (m.start() if m else 0)
            defined.setdefault(name, (kind, code.count("\n", 0, at) + 1))

    def variable_name(text):
        m = re.search(r"([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*=", text)
        return m.group(1) if m else None

    while i < n:
        ch = code[i]
        if ch == "{":
            if depth == 0:
                head = re.sub(r"\{.*\}", " ", code[head_start:i], flags=re.S)
                words = IDENT.findall(head)
                if (words[:1] == ["extern"] and head.strip().endswith('""')) \
                        or words[:1] == ["namespace"]:
                    anonymous = words == ["namespace"]
                    stack.append("internal" if anonymous else "scope")
                    internal_scopes += anonymous
                    head_start = i + 1
                    i += 1
                    continue
                static = bool({"static", "typedef"} & set(words)) or \
                    internal_scopes > 0
                if "=" in head:  # an initialised variable (a table)
                    name = variable_name(head)
                    note(name, "variable", head_start, static)
                    body = (name, i)
                elif {"struct", "union", "enum"} & set(words) and \
                        ")" not in head:
                    body = "type"  # the declaration goes on after it
                else:
                    name = declared_name(head)
                    note(name, "function", head_start, static)
                    body = (name, i)
            depth += 1
            stack.append("block")
        elif ch == "}":
            kind = stack.pop() if stack else "block"
            if kind in ("scope", "internal"):
                internal_scopes -= kind == "internal"
                head_start = i + 1
            else:
                depth -= 1
                if depth == 0:
                    if body == "type":  # struct s {...} name = ...;
                        body = None
                        i += 1
                        continue
                    if body is not None and body[0]:
                        bodies.setdefault(body[0], set()).update(
                            IDENT.findall(code[body[1]:i]))
                    body = None
                    head_start = i + 1
        elif ch == ";" and depth == 0:
            stmt = code[head_start:i]
            words = set(IDENT.findall(stmt))
            static = bool({"static", "typedef"} & words) or \
                internal_scopes > 0
            had_body = "{" in stmt
            if had_body:  # struct s {...} declarators;
                stmt = stmt[stmt.rindex("}") + 1:]
            if "=" in stmt and "extern" not in words:
                note(variable_name(stmt), "variable", head_start, static)
            elif "(" not in stmt and not (words & {
                    "typedef", "extern", "using", "template"}):
                names = IDENT.findall(stmt)  # the last is the declarator
                if names and (had_body or (len(names) >= 2 and not (
                        words & {"struct", "union", "enum"}))):
                    note(names[-1], "variable", head_start, static)
            head_start = i + 1
        i += 1
    return defined, local, bodies


def module_of(rel):
    return os.path.splitext(rel)[0]


def collect(root):
    files = []
    for top in SCAN_DIRS:
        base = os.path.join(root, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames
                                 if not d.startswith((".", "build")))
            for name in sorted(filenames):
                if name.endswith(SOURCE_EXT + HEADER_EXT):
                    path = os.path.join(dirpath, name)
                    files.append(os.path.relpath(path, root))
    return files


def resolve(root, rel, target, known):
    candidates = [os.path.join(os.path.dirname(rel), target)]
    candidates += [os.path.join(r, target) for r in INCLUDE_ROOTS]
    for c in candidates:
        c = os.path.normpath(c)
        if c in known:
            return c
    return None


def build_graph(root):
    """{(module, module): the reason for the first edge found}."""
    files = collect(root)
    known = set(files)
    edges = {}
    definers = {}  # name -> {module: "file:line"}
    includes = {}  # file -> files it includes directly
    expansions = {}  # file -> {macro or inline function: identifiers}
    tokens = {}  # source file -> identifiers, minus its own static names

    def add_edge(a, b, reason):
        if a != b:
            edges.setdefault((a, b), reason)

    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8",
                  errors="replace") as f:
            text = f.read()
        mod = module_of(rel)
        includes[rel] = []
        for m in INCLUDE.finditer(text):
            target = resolve(root, rel, m.group(1), known)
            if target:
                includes[rel].append(target)
                add_edge(mod, module_of(target),
                         '%s includes "%s"' % (rel, m.group(1)))
        code, macros = split_preprocessor(strip_code(text))
        defined, local, bodies = scan_top_level(code)
        for name, (kind, line) in defined.items():
            definers.setdefault(name, {}).setdefault(mod,
                                                     "%s:%d" % (rel, line))
        if rel.endswith(HEADER_EXT):
            # A header uses what its macros and inline functions use, and
            # only where a file expands or calls them.
            found = {k: set(IDENT.findall(v)) for k, v in macros.items()}
            for name, used in bodies.items():
                found.setdefault(name, set()).update(used)
            expansions[rel] = found
        else:
            used = set(IDENT.findall(code))
            for body in macros.values():
                used.update(IDENT.findall(body))
            tokens[rel] = used - local

    stand_in_modules = {module_of(rel) for rel in STAND_INS}
    for name, where in definers.items():
        if len(where) > 1:
            for mod in stand_in_modules & set(where):
                del where[mod]

    def reachable_headers(rel):
        seen, todo = set(), list(includes[rel])
        while todo:
            h = todo.pop()
            if h not in seen:
                seen.add(h)
                todo.extend(includes.get(h, []))
        return seen

    for rel, used in sorted(tokens.items()):
        mod = module_of(rel)
        table = {}
        for h in reachable_headers(rel):
            for name, inner in expansions.get(h, {}).items():
                table.setdefault(name, set()).update(inner)
        via = {name: None for name in used}
        todo = [name for name in used if name in table]
        while todo:
            name = todo.pop()
            for inner in table[name]:
                if inner not in via:
                    via[inner] = name
                    if inner in table:
                        todo.append(inner)
        for name in sorted(via):
            for target, where in sorted(definers.get(name, {}).items()):
                if mod in definers[name]:
                    continue
                how = "uses" if via[name] is None else \
                    "expands %s, which uses" % via[name]
                add_edge(mod, target, "%s %s %s (defined at %s)" %
                         (rel, how, name, where))
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def check(root):
    edges = build_graph(root)
    found = cycles(edges)
    if not found:
        print("no dependency cycle between the modules of %s" %
              ", ".join(d + "/" for d in SCAN_DIRS))
        return 0
    for comp in found:
        print("cycle: %s" % " <-> ".join(comp))
        members = set(comp)
        for (a, b), reason in sorted(edges.items()):
            if a in members and b in members:
                print("  %s -> %s: %s" % (a, b, reason))
    print("%d cycle%s: give the shared part a module of its own that depends "
          "on none of them" % (len(found), "" if len(found) == 1 else "s"))
    return 1


SELFTEST = [
    # (name, {path: text}, expect a cycle)
    ("layered", {
        "src/a/a.h": "int a_f(void);\n",
        "src/a/a.c": '#include "a/a.h"\nint a_f(void) { return 1; }\n',
        "src/b/b.c": '#include "a/a.h"\nint b_f(void) { return a_f(); }\n',
    }, False),
    ("include each other's header", {
        "src/x/a.h": "void a_f(void);\n",
        "src/x/b.h": "void b_f(void);\n",
        "src/x/a.c": '#include "x/b.h"\nvoid a_f(void) {}\n',
        "src/x/b.c": '#include "a.h"\nvoid b_f(void) {}\n',
    }, True),
    ("call each other through a shared header", {
        "src/d/shared.h": "void one(void);\nvoid two(void);\n",
        "src/d/one.c": '#include "d/shared.h"\nvoid one(void) { two(); }\n',
        "src/d/two.c": '#include "d/shared.h"\n'
                       "static void helper(void) {}\n"
                       "void two(void) { helper(); one(); }\n",
    }, True),
    ("a table of function pointers", {
        "tools/t.h": "typedef int (*fn)(void);\n",
        "tools/p.c": '#include "t.h"\nextern const fn table[];\n'
                     "int p(void) { return table[0](); }\n",
        "tools/q.c": '#include "t.h"\nint p(void);\n'
                     "static int q(void) { return 0; }\n"
                     "const fn table[] = { q, p };\n",
    }, True),
    ("static names and comments are not uses", {
        "src/e/one.c": "static int two(void) { return 0; }\n"
                       "static const struct spec { int a; } three[] = {{1}};\n"
                       "static struct { int b; } four;\n"
                       "/* calls three() */ int one(void) { return two(); }\n",
        "src/e/two.c": "int one(void);\nint two(void) { return one(); }\n"
                       "int three(void) { return 3; }\nint four;\n"
                       'const char *s = "three()";\n',
    }, False),
    ("kernels extern C and a macro that calls", {
        "kernels/k.cu": '#include "k.h"\n'
                        'extern "C" int launch(void) { return 0; }\n'
                        'extern "C" {\nint other(void) { CALL_BACK(); }\n}\n',
        "kernels/k.h": "#define CALL_BACK() host_back()\n",
        "src/cuda/h.c": '#include "kernels/k.h"\n'
                        "int host_back(void) { return launch(); }\n",
    }, True),
    ("a macro no file expands uses nothing", {
        "kernels/k.h": "#define CALL_BACK() host_back()\n",
        "kernels/k.cu": '#include "k.h"\nint launch(void) { return 0; }\n',
        "src/cuda/h.c": '#include "kernels/k.h"\n'
                        "int host_back(void) { return launch(); }\n",
    }, False),
    ("a header's own prototypes use nothing", {
        "src/f/api.h": "int f_one(void);\nint f_two(void);\n"
                       "static inline int f_sum(void) { return 2; }\n",
        "src/f/one.c": '#include "f/api.h"\nint f_one(void) { return 1; }\n',
        "src/f/two.c": '#include "f/api.h"\n'
                       "int f_two(void) { return f_one() + 1; }\n",
    }, False),
]


def selftest():
    failures = 0
    for name, tree, expect in SELFTEST:
        with tempfile.TemporaryDirectory() as root:
            for rel, text in tree.items():
                path = os.path.join(root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
            got = bool(cycles(build_graph(root)))
        ok = got == expect
        failures += not ok
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name,
                             "cycle" if got else "no cycle"))
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        sys.stderr.write(__doc__)
        return 2
    root = argv[1] if len(argv) == 2 else \
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return check(root)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
