"""micrograd's own README example runs unchanged and prints micrograd's numbers."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
EXAMPLE = ROOT / 'examples' / 'readme_example.py'


def test_readme_example_prints_micrograds_numbers():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.split() == ['24.7041', '138.8338', '645.5773']
