"""Package layout only (everything else is in pyproject.toml).

The design card keeps producers/, consumers/ and schemas/ at the top level; they are
installed as subpackages of newswire, so that nothing with a generic name lands in
site-packages. setuptools cannot find packages across such a mapping by itself, hence
this file.
"""

from setuptools import find_packages, setup

ROOTS = {
    "newswire": "newswire",
    "newswire.producers": "producers",
    "newswire.consumers": "consumers",
    "newswire.schemas": "schemas",
}

packages = [name for name in ROOTS]
for name, path in ROOTS.items():
    packages += [f"{name}.{sub}" for sub in find_packages(path)]

setup(packages=packages, package_dir=ROOTS)
