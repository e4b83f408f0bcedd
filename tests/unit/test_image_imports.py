"""Each component imports only what its image installs: the modules a wrapper imports in its body load, in a
fresh interpreter, with the packages its image family lacks made unimportable (base and spark images have no
torch; the torch image no kserve)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

from components._kfp import COMPONENTS

ABSENT = {"base": ["torch", "kserve"], "spark": ["torch", "kserve"], "torch": ["kserve"]}


def family(name: str) -> str:
    image = COMPONENTS[name].component_spec.implementation.container.image
    return image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]


def body_imports(name: str) -> list[str]:
    source = inspect.getsource(COMPONENTS[name].python_func)
    return sorted(set(re.findall(r"^\s+from (components[\w.]*) import", source, re.M)))


@pytest.mark.parametrize("name", sorted(n for n in COMPONENTS if family(n) in ABSENT))
def test_the_components_modules_load_without_what_its_image_lacks(name: str) -> None:
    modules, absent = body_imports(name), ABSENT[family(name)]
    assert modules, f"{name} imports nothing from components in its body"
    script = (f"import sys\nfor m in {absent!r}:\n    sys.modules[m] = None\n"
              + "".join(f"import {m}\n" for m in modules))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{name} ({family(name)} image) cannot load {modules}:\n{out.stderr[-1500:]}"
