"""Every ```python block of README.md runs as written: so the README cannot rot.

Each block runs on its own (a fresh namespace, nothing from the blocks before it) in an empty
folder, as a reader who pastes it into a new file would run it. Blocks that compile C need a C
compiler and blocks that render pictures need Graphviz's `dot`; they are marked so (skipped with
the reason where those are missing; CI has both).
"""
import contextlib
import io
import pathlib
import re
import shutil

import pytest

README = (pathlib.Path(__file__).parent.parent / 'README.md').read_text(encoding='utf-8')
BLOCKS = re.findall(r'^```python\n(.*?)^```', README, re.S | re.M)
no_dot = pytest.mark.skipif(shutil.which('dot') is None,
                            reason="Graphviz's `dot` is not installed (apt-get install graphviz)")


def marks(block):
    """needs_cc for a block that builds C (Trainer's default backend is C); no_dot for pictures."""
    found = []
    if "backend='c'" in block or 'Trainer(' in block or 'codegen.jit(' in block:
        found.append(pytest.mark.needs_cc)
    if 'draw_dot(' in block or 'steps(' in block:
        found.append(no_dot)
    return found


def block_name(block):
    """The block's first line that says something, for the test id."""
    return next(line for line in block.splitlines() if line.strip() and not
                line.startswith(('import', 'from', '#')))[:40].strip()


@pytest.mark.parametrize('block', [pytest.param(block, marks=marks(block), id=block_name(block))
                                   for block in BLOCKS])
def test_readme_python_block_runs_as_written(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(block, 'README.md (a python block)', 'exec')
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, {'__name__': '__main__'})
    stray = [p.name for p in tmp_path.iterdir() if p.suffix in ('', '.gv', '.dot')]
    assert stray == [], 'DOT files left behind (render() without cleanup=True?)'


def test_the_readme_has_its_python_blocks():
    """The engine, drawing, codegen and Trainer blocks: if the pattern stopped matching, the
    test above would pass on nothing."""
    assert len(BLOCKS) >= 4
    assert any('draw_dot(' in block for block in BLOCKS)
    assert any('Trainer(' in block for block in BLOCKS)
