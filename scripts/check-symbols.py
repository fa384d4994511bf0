#!/usr/bin/env python3
"""Check cudl's symbol namespace: cudl_ names are the public API, cudl__
names are private, and nothing else leaks.

  --include DIR    the public headers (include/cudl): every function declared
                   there with CUDL_API is the public API
  --shared LIB     libcudl.so must export exactly the public API: no symbol
                   that is not declared CUDL_API (a private name that
                   programs could link against would be ABI), and every
                   declared function (a declaration without a definition
                   would fail only the program that calls it)
  --static LIB     every global symbol libcudl.a defines must be public or
                   start with cudl__, so that a program linking the static
                   library cannot clash with a private name
  --program EXE    a program of the project (the cudl tool) defines no cudl_
                   name that is not cudl__ (those are the library's)

Reads symbols with nm (binutils); exits 77 (ctest: skipped) when nm is not
installed, 1 when a check fails, listing each offending symbol. Standard
library only.

  check-symbols.py --selftest   check the checker on small libraries built
                                here with cc (skipped without cc)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
# Symbol kinds nm prints for definitions that are not namespace: weak and
# unique symbols are COMDAT copies (C++ inline functions and template
# instantiations from system headers) that the linker folds.
FOLDED = set("WVu")
# Names reserved to the implementation (C99 7.1.3): what the compiler, a
# sanitizer or the CUDA toolchain adds (__asan_*, __fatbinwrap_*, ...).
RESERVED = re.compile(r"_[_A-Z]")
CUDL_API_DECL = re.compile(r"\bCUDL_API\b([^;{]*?)\b([A-Za-z_]\w*)\s*\(",
                           re.S)


def public_api(include_dir):
    names = set()
    for name in sorted(os.listdir(include_dir)):
        if not name.endswith(".h"):
            continue
        with open(os.path.join(include_dir, name), encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.M)
        for m in CUDL_API_DECL.finditer(text):
            names.add(m.group(2))
    return names


def nm(args, path):
    """[(name, kind)] of the defined global symbols nm lists for path."""
    out = subprocess.run(["nm", "-P", "-g", "--defined-only"] + args + [path],
                         check=True, capture_output=True, text=True).stdout
    symbols = []
    for line in out.splitlines():
        fields = line.split()
        # Archive members print "lib.a[member.o]:"; symbols "name kind ...".
        if len(fields) >= 2 and len(fields[1]) == 1:
            symbols.append((fields[0].split("@")[0], fields[1]))
    return symbols


def demangle(names):
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names),
                         capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else \
        {n: n for n in names}


def base_name(demangled):
    """The function or variable a (demangled) symbol names, without its
    namespace, template arguments and parameters: "cudl__f" for
    "void cudl__f<float>(float*)"."""
    text = re.sub(r"\(.*", "", demangled)
    depth, plain = 0, []
    for ch in text:
        depth += ch == "<"
        if depth == 0:
            plain.append(ch)
        depth -= ch == ">" and depth > 0
    words = re.findall(r"[A-Za-z_][\w:.]*", "".join(plain))
    return words[-1] if words else demangled


def check_shared(lib, api):
    bad = []
    exported = {name for name, kind in nm(["-D"], lib)}
    for name in sorted(exported - api):
        bad.append("%s exports %s, which include/cudl/ does not declare"
                   % (lib, name))
    for name in sorted(api - exported):
        bad.append("%s does not export %s, which include/cudl/ declares"
                   % (lib, name))
    return bad


def namespace_violations(symbols, allowed):
    mangled = [n for n, k in symbols if n.startswith("_Z")]
    readable = demangle(mangled)
    bad = []
    for name, kind in symbols:
        if kind in FOLDED:
            continue
        shown = readable.get(name, name)
        if shown.startswith("(anonymous namespace)::"):
            continue  # nvcc gives these a name unique to the file
        base = base_name(shown)
        if not RESERVED.match(base) and not allowed(base):
            bad.append(shown)
    return sorted(set(bad))


def check_static(lib, api):
    def allowed(name):
        return name.startswith("cudl__") or name in api
    return ["%s defines %s: not public, so it should start with cudl__"
            % (lib, s) for s in namespace_violations(nm([], lib), allowed)]


def check_program(exe):
    def allowed(name):
        return not name.startswith("cudl_") or name.startswith("cudl__")
    return ["%s defines %s: cudl_ names are the library's public API; a "
            "private one starts with cudl__" % (exe, s)
            for s in namespace_violations(nm([], exe), allowed)]


def run(argv):
    opts = {}
    it = iter(argv)
    for arg in it:
        if arg not in ("--include", "--shared", "--static", "--program"):
            sys.stderr.write(__doc__)
            return 2
        opts.setdefault(arg, []).append(next(it, None))
    if None in sum(opts.values(), []) or "--include" not in opts:
        sys.stderr.write(__doc__)
        return 2
    if shutil.which("nm") is None:
        print("SKIP: nm (binutils) is not installed")
        return SKIP
    api = set()
    for d in opts["--include"]:
        api |= public_api(d)
    bad = []
    for lib in opts.get("--shared", []):
        bad += check_shared(lib, api)
    for lib in opts.get("--static", []):
        bad += check_static(lib, api)
    for exe in opts.get("--program", []):
        bad += check_program(exe)
    for line in bad:
        print(line)
    checked = sum(len(v) for k, v in opts.items() if k != "--include")
    if bad:
        print("%d symbol%s out of place" % (len(bad), "" if len(bad) == 1
                                             else "s"))
        return 1
    print("%d public functions; %d files checked, every symbol in its place"
          % (len(api), checked))
    return 0


def selftest():
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or shutil.which("nm") is None:
        print("SKIP: no C compiler or no nm")
        return SKIP
    header = ("#define CUDL_API __attribute__((visibility(\"default\")))\n"
              "CUDL_API int cudl_one(void);\n"
              "/* CUDL_API int cudl_commented(void); */\n"
              "CUDL_API const char *\ncudl_two(int x);\n")
    cases = [
        # (name, source, which check, expect failure)
        ("public and private names", "int cudl__helper(void) { return 1; }\n"
         "__attribute__((visibility(\"default\"))) int cudl_one(void)"
         " { return cudl__helper(); }\n"
         "__attribute__((visibility(\"default\"))) const char *cudl_two(int x)"
         " { return x ? \"\" : 0; }\n"
         "static int local(void) { return 0; }\n", "static", False),
        ("a private name without cudl__", "int helper(void) { return 1; }\n"
         "int cudl_one(void) { return helper(); }\n"
         "const char *cudl_two(int x) { return x ? \"\" : 0; }\n",
         "static", True),
        ("an exported private name",
         "__attribute__((visibility(\"default\"))) int cudl__leak(void)"
         " { return 1; }\n"
         "__attribute__((visibility(\"default\"))) int cudl_one(void)"
         " { return 1; }\n"
         "__attribute__((visibility(\"default\"))) const char *cudl_two(int x)"
         " { return x ? \"\" : 0; }\n", "shared", True),
        ("a declared function not exported",
         "__attribute__((visibility(\"default\"))) int cudl_one(void)"
         " { return 1; }\n", "shared", True),
        ("exactly the API exported",
         "int cudl__hidden(void) { return 1; }\n"
         "__attribute__((visibility(\"default\"))) int cudl_one(void)"
         " { return cudl__hidden(); }\n"
         "__attribute__((visibility(\"default\"))) const char *cudl_two(int x)"
         " { return x ? \"\" : 0; }\n", "shared", False),
        ("a program with a cudl_ name", "int cudl_cmd(void) { return 0; }\n"
         "int main(void) { return cudl_cmd(); }\n", "program", True),
        ("a program with cudl__ and its own names",
         "int cudl__cmd(void) { return 0; }\nint cli_run(void) { return 0; }\n"
         "int main(void) { return cudl__cmd() + cli_run(); }\n", "program",
         False),
    ]
    failures = 0
    for name, source, kind, expect_fail in cases:
        with tempfile.TemporaryDirectory() as d:
            inc = os.path.join(d, "include")
            os.makedirs(inc)
            with open(os.path.join(inc, "api.h"), "w") as f:
                f.write(header)
            src = os.path.join(d, "a.c")
            with open(src, "w") as f:
                f.write(source)
            out = os.path.join(d, "out")
            if kind == "shared":
                cmd = [cc, "-shared", "-fPIC", "-fvisibility=hidden", src,
                       "-o", out]
            elif kind == "static":
                cmd = [cc, "-c", src, "-o", out + ".o"]
            else:
                cmd = [cc, src, "-o", out]
            subprocess.run(cmd, check=True)
            if kind == "static":
                subprocess.run(["ar", "rcs", out, out + ".o"], check=True)
            with open(os.devnull, "w") as null:
                saved, sys.stdout = sys.stdout, null
                try:
                    status = run(["--include", inc, "--" + kind, out])
                finally:
                    sys.stdout = saved
        ok = (status == 1) == expect_fail and status in (0, 1)
        failures += not ok
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name,
                             "fails" if status == 1 else "passes"))
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
