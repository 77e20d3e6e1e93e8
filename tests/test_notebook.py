"""examples/tour.ipynb: stored without outputs, in the lecture's order, and it runs.

The notebook is executed top to bottom in a fresh Jupyter kernel (nbclient), so it cannot rot;
then what Jupyter would show is checked: micrograd's numbers, pictures as SVG, the stepper as
HTML, the generated code equal to the engine bit for bit.
"""
import pathlib
import shutil

import nbclient
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOUR = ROOT / 'examples' / 'tour.ipynb'
LECTURE_ORDER = ['expression', 'picture', 'backprop', 'neuron', 'MLP', 'Training',
                 'generated code']


def read():
    return nbformat.read(str(TOUR), as_version=4)


def test_the_tour_is_stored_without_outputs():
    for cell in read().cells:
        if cell.cell_type == 'code':
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_the_tour_follows_the_lectures_order():
    headings = [cell.source.splitlines()[0] for cell in read().cells
                if cell.cell_type == 'markdown' and cell.source.startswith('## ')]
    assert len(headings) == len(LECTURE_ORDER)
    for heading, topic in zip(headings, LECTURE_ORDER):
        assert topic in heading, (heading, topic)


@pytest.mark.skipif(shutil.which('dot') is None,
                    reason="Graphviz's `dot` is not installed (apt-get install graphviz)")
def test_the_tour_runs_and_shows_what_it_says():
    notebook = read()
    nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                            resources={'metadata': {'path': str(ROOT)}}).execute()
    shown = [output for cell in notebook.cells if cell.cell_type == 'code'
             for output in cell.outputs]
    printed = ''.join(output.text for output in shown if output.output_type == 'stream')
    assert printed.split()[:3] == ['24.7041', '138.8338', '645.5773']
    assert 'bit for bit equal to the engine: True' in printed
    data = [output.data for output in shown if 'data' in output]
    assert sum('<svg' in d.get('image/svg+xml', '') for d in data) == 3   # the draw_dot cells
    assert sum(d.get('text/html', '').startswith('<iframe srcdoc=') for d in data) == 2
