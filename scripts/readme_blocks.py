#!/usr/bin/env python3
"""Splits a README's shell blocks into files for scripts/smoke.sh.

Every ```sh (also bash, shell) and ```console block must be preceded, on
the line right before its fence, by one annotation:

    <!-- smoke: run -->                 run; any non-zero exit fails
    <!-- smoke: run; exit 64 -->        run in a subshell; must exit 64
    <!-- smoke: run; pending (why) -->  documents what is not built yet: a
                                        failure is reported, not fatal
    <!-- smoke: skip (why) -->          not run, for the reason given

(`exit N` and `pending (why)` combine: `run; exit 64; pending (why)`.)
A console block's `$ ` lines (with `\\` continuations) are its commands;
its other lines are the output they must print.

Writes OUT/NN.sh (and OUT/NN.expected for console blocks) and
OUT/manifest.tsv: number, README line, language, run|skip, expected exit,
pending (0|1), reason. Exits 1 naming the line of any block without a
valid annotation, or of an annotation without a block.

    scripts/readme_blocks.py README.md OUT
"""

import os
import re
import sys

SHELL = {"sh", "bash", "shell", "console"}
ANNOTATION = re.compile(r"^<!--\s*smoke:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
REASON = re.compile(r"^\((?P<why>.+)\)$")


def parenthesised(text):
    """(the text inside a leading balanced "(...)", the rest) or None."""
    if not text.startswith("("):
        return None
    depth = 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0:
            inside = text[1:i].strip()
            return (inside, text[i + 1:]) if inside else None
    return None


def parse_annotation(body):
    """(mode, exit, pending, reason) or a string saying what is wrong."""
    if body.startswith("skip"):
        parsed = parenthesised(body[4:].strip())
        if not parsed or parsed[1].strip():
            return "`skip` needs a reason in parentheses and nothing after it: <!-- smoke: skip (why) -->"
        return ("skip", 0, False, parsed[0])
    if not re.match(r"run\b", body):
        return f"unknown annotation {body!r}: run, run; exit N, run; pending (why) or skip (why)"
    exit_code, pending, reason = 0, False, ""
    rest = body[3:].strip()
    while rest:
        if not rest.startswith(";"):
            return f"options after `run` are separated by `;`: {rest!r}"
        rest = rest[1:].strip()
        m = re.match(r"exit ([0-9]{1,3})\b", rest)
        if m:
            exit_code, rest = int(m.group(1)), rest[m.end():].strip()
        elif rest.startswith("pending"):
            parsed = parenthesised(rest[7:].strip())
            if not parsed:
                return "`pending` needs a reason in parentheses: run; pending (why)"
            pending, reason, rest = True, parsed[0], parsed[1].strip()
        else:
            return f"unknown option {rest!r} (exit N, pending (why))"
    return ("run", exit_code, pending, reason)


def console_parts(lines):
    """The commands of a console block, and the output it shows."""
    commands, expected, continued = [], [], False
    for line in lines:
        if continued:
            commands.append(line)
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(line[2:])
            continued = line.endswith("\\")
        else:
            expected.append(line)
    return commands, expected


def main():
    readme, out = sys.argv[1], sys.argv[2]
    with open(readme, encoding="utf-8") as f:
        lines = f.read().split("\n")
    os.makedirs(out, exist_ok=True)
    errors, manifest = [], []
    pending_annotation = None  # (line number, parsed) awaiting its block
    i = 0
    while i < len(lines):
        line = lines[i]
        m = ANNOTATION.match(line)
        if m:
            if pending_annotation:
                errors.append(f"{readme}:{pending_annotation[0]}: annotation without a block after it")
            pending_annotation = (i + 1, parse_annotation(m.group("body")))
            i += 1
            continue
        fence = FENCE.match(line)
        if not fence:
            if pending_annotation and line.strip():
                errors.append(f"{readme}:{pending_annotation[0]}: annotation must be on the line right before a block")
                pending_annotation = None
            i += 1
            continue
        lang, start = fence.group("lang"), i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = lines[start:end]
        fence_line = i + 1
        i = end + 1
        annotation, pending_annotation = pending_annotation, None
        if lang not in SHELL:
            if annotation:
                errors.append(f"{readme}:{annotation[0]}: annotation before a {lang or 'plain'} block (only sh and console blocks run)")
            continue
        if annotation is None:
            errors.append(f"{readme}:{fence_line}: ```{lang} block without a <!-- smoke: ... --> annotation on the line before it")
            continue
        parsed = annotation[1]
        if isinstance(parsed, str):
            errors.append(f"{readme}:{annotation[0]}: {parsed}")
            continue
        mode, exit_code, pending, reason = parsed
        number = len(manifest) + 1
        name = os.path.join(out, f"{number:02d}")
        if lang == "console":
            commands, expected = console_parts(body)
            if mode == "run" and not commands:
                errors.append(f"{readme}:{fence_line}: console block without a `$ ` command")
            with open(name + ".expected", "w", encoding="utf-8") as f:
                f.write("\n".join(expected) + "\n")
            script = commands
        else:
            script = body
        with open(name + ".sh", "w", encoding="utf-8") as f:
            f.write("\n".join(script) + "\n")
        manifest.append((number, fence_line, lang, mode, exit_code, int(pending), reason))
    if pending_annotation:
        errors.append(f"{readme}:{pending_annotation[0]}: annotation without a block after it")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    with open(os.path.join(out, "manifest.tsv"), "w", encoding="utf-8") as f:
        for row in manifest:
            f.write("\t".join(str(v).replace("\t", " ") for v in row) + "\n")


if __name__ == "__main__":
    main()
