#!/usr/bin/env python3
"""Builds the collection edge.migrate from this repository's layout.

The repository stays as Ansible runs it from a checkout (library/, module_utils/, filter_plugins/,
doc_fragments/, roles/, playbooks/). This maps it into a collection tree (build/collection/ holds
galaxy.yml, meta/runtime.yml, the changelog and the collection's README) and runs
`ansible-galaxy collection build`. In the copy:

- imports of ansible.module_utils.edge_* become ansible_collections.edge.migrate.plugins.module_utils.edge_*;
- `extends_documentation_fragment: [edge, edge.sync]` becomes edge.migrate.edge, edge.migrate.edge.sync;
- M(edge_x) in documentation and `seealso: - module: edge_x` become FQCNs;
- filters of filter_plugins/ used in roles and playbooks get their FQCN (edge.migrate.disk_plan):
  Ansible resolves short names of modules and roles through the collection a role or playbook is
  in, but not those of filters;
- tests/sanity/ignore-*.txt gets, for every module, validate-modules' GPLv3 header check, which
  does not apply to this Apache-2.0 collection.

    build/build_collection.py [--output-dir dist] [--tree DIR]

--tree writes the collection tree to DIR/ansible_collections/edge/migrate and keeps it (what
`make sanity` runs ansible-test in); without it the tree is temporary. Prints the tarball's path.
"""

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "build", "collection")
NAMESPACE, NAME = "edge", "migrate"
FQ = NAMESPACE + "." + NAME
UTILS_PACKAGE = "ansible_collections.%s.%s.plugins.module_utils" % (NAMESPACE, NAME)

# repository directory -> collection directory; the ones a checkout does not have are skipped
PLUGIN_DIRS = {
    "library": "plugins/modules",
    "module_utils": "plugins/module_utils",
    "filter_plugins": "plugins/filter",
    "doc_fragments": "plugins/doc_fragments",
    "action_plugins": "plugins/action",
    "callback_plugins": "plugins/callback",
    "lookup_plugins": "plugins/lookup",
    "test_plugins": "plugins/test",
}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")


def python_names(directory):
    path = os.path.join(ROOT, directory)
    if not os.path.isdir(path):
        return set()
    return {f[:-3] for f in os.listdir(path) if f.endswith(".py") and not f.startswith("__")}


def filter_names():
    """Names every filter plugin's FilterModule.filters() returns (read from the source, not imported)."""
    names = set()
    directory = os.path.join(ROOT, "filter_plugins")
    for file in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if not file.endswith(".py"):
            continue
        with open(os.path.join(directory, file)) as f:
            tree = ast.parse(f.read(), file)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                        names.update(k.value for k in ret.value.keys if isinstance(k, ast.Constant))
    return names


class Rewriter:
    def __init__(self):
        self.utils = python_names("module_utils")
        self.modules = python_names("library")
        self.fragments = python_names("doc_fragments")
        self.filters = filter_names()

    def python(self, text):
        utils = "|".join(sorted(self.utils, key=len, reverse=True))
        if utils:
            text = re.sub(r"\bansible\.module_utils\.(%s)\b" % utils, UTILS_PACKAGE + r".\1", text)
            text = re.sub(r"^(\s*)from ansible\.module_utils import ((?:%s)\b.*)$" % utils,
                          r"\1from %s import \2" % UTILS_PACKAGE, text, flags=re.M)
        return self.documentation(text)

    def documentation(self, text):
        modules = "|".join(sorted(self.modules, key=len, reverse=True))
        if modules:
            text = re.sub(r"\bM\((%s)\)" % modules, r"M(%s.\1)" % FQ, text)
            text = re.sub(r"^(\s*-\s*module:\s*)(%s)[ \t]*$" % modules, r"\1%s.\2" % FQ, text, flags=re.M)
        fragments = "|".join(sorted(self.fragments, key=len, reverse=True))
        if fragments:
            def block(match):
                return re.sub(r"^(\s*-\s*)((?:%s)(?:\.\w+)?)[ \t]*$" % fragments, r"\1%s.\2" % FQ, match.group(0),
                              flags=re.M)
            text = re.sub(r"^extends_documentation_fragment:\s*\n(?:\s*-\s*\S+\s*\n)+", block, text, flags=re.M)
            text = re.sub(r"^(extends_documentation_fragment:\s*)((?:%s)(?:\.\w+)?)[ \t]*$" % fragments,
                          r"\1%s.\2" % FQ, text, flags=re.M)
        return text

    def yaml(self, text):
        filters = "|".join(sorted(self.filters, key=len, reverse=True))
        if filters:
            text = re.sub(r"\|(\s*)(%s)\b(?!\.)" % filters, r"|\1%s.\2" % FQ, text)
            text = re.sub(r"\bmap\((\s*)(['\"])(%s)\2" % filters, r"map(\1\2%s.\3\2" % FQ, text)
        return text


def copy_tree(src, dest, rewrite):
    """Copies src to dest, passing the text of files whose name ends with a key of rewrite through it."""
    shutil.copytree(src, dest, ignore=IGNORED)
    for directory, _dirs, files in os.walk(dest):
        for file in files:
            path = os.path.join(directory, file)
            for suffix, function in rewrite.items():
                if file.endswith(suffix):
                    with open(path) as f:
                        text = f.read()
                    new = function(text)
                    if new != text:
                        with open(path, "w") as f:
                            f.write(new)


def map_tree(collection):
    """Writes the collection's files into the directory `collection`."""
    rw = Rewriter()
    shutil.copytree(TEMPLATE, collection, ignore=IGNORED)
    shutil.copy(os.path.join(ROOT, "LICENSE"), collection)
    for source, target in PLUGIN_DIRS.items():
        if os.path.isdir(os.path.join(ROOT, source)):
            copy_tree(os.path.join(ROOT, source), os.path.join(collection, target), {".py": rw.python})
    yaml_rewrite = {".yml": rw.yaml, ".yaml": rw.yaml}
    copy_tree(os.path.join(ROOT, "roles"), os.path.join(collection, "roles"), yaml_rewrite)
    copy_tree(os.path.join(ROOT, "playbooks"), os.path.join(collection, "playbooks"), yaml_rewrite)
    write_sanity_ignores(collection)
    # Plugins are not programs: ansible-test's shebang test refuses executable plugin files.
    for directory, _dirs, files in os.walk(os.path.join(collection, "plugins")):
        for file in files:
            os.chmod(os.path.join(directory, file), 0o644)


def write_sanity_ignores(collection):
    """tests/sanity/ignore-*.txt, plus for every module and callback the GPL header check, which does not
    apply to this Apache-2.0 collection (ansible-test's validate-modules asks them for a GPLv3 header)."""
    source = os.path.join(ROOT, "tests", "sanity")
    names = [f for f in os.listdir(source) if re.match(r"^ignore-[0-9.]+\.txt$", f)] if os.path.isdir(source) else []
    target = os.path.join(collection, "tests", "sanity")
    os.makedirs(target, exist_ok=True)
    plugins = os.path.join(collection, "plugins")
    modules = sorted(os.path.join(kind, name) for kind in ("modules", "callback")
                     if os.path.isdir(os.path.join(plugins, kind)) for name in os.listdir(os.path.join(plugins, kind)))
    for name in names or ["ignore-2.19.txt"]:
        lines = []
        if os.path.exists(os.path.join(source, name)):
            with open(os.path.join(source, name)) as f:
                lines = f.read().splitlines()
        lines += ["plugins/%s validate-modules:missing-gplv3-license  # Apache-2.0 (galaxy.yml)" % m
                  for m in modules if m.endswith(".py")]
        with open(os.path.join(target, name), "w") as f:
            f.write("\n".join(lines) + "\n")


def build(output_dir, tree=None):
    """Maps the repository into a collection tree and builds it; returns the tarball's path."""
    keep = tree is not None
    tree = os.path.abspath(tree) if keep else tempfile.mkdtemp(prefix="edge-migrate-collection-")
    collection = os.path.join(tree, "ansible_collections", NAMESPACE, NAME)
    try:
        if os.path.exists(collection):
            shutil.rmtree(collection)
        os.makedirs(os.path.dirname(collection), exist_ok=True)
        map_tree(collection)
        os.makedirs(output_dir, exist_ok=True)
        galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
        proc = subprocess.run([galaxy if os.path.exists(galaxy) else "ansible-galaxy", "collection", "build",
                               "--force", "--output-path", os.path.abspath(output_dir), collection],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit("ansible-galaxy collection build failed:\n" + proc.stdout + proc.stderr)
        match = re.search(r"Created collection for \S+ at (\S+)", proc.stdout)
        if not match:
            raise SystemExit("ansible-galaxy collection build said nothing of a tarball:\n" + proc.stdout)
        return match.group(1)
    finally:
        if not keep:
            shutil.rmtree(tree, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "dist"))
    parser.add_argument("--tree", help="write the collection tree under this directory and keep it")
    args = parser.parse_args()
    print(build(args.output_dir, args.tree))


if __name__ == "__main__":
    main()
