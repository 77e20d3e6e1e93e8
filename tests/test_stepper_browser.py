"""The stepper page in a real browser: headless Chromium, driven over the DevTools protocol.

What a learner does: open the page, press the arrow keys, read the numbers. Chromium missing is a
failure that says what to install, never a skip (tests/browser.py explains the driver).
Screenshots are kept in pytest's tmp_path (printed with -s) so a person can look at them.
"""
import shutil

import pytest

from micrograd import viz
from micrograd.engine import topo_order
from micrograd.stepper import Steps

from browser import INSTALL, Browser, find_chromium

pytestmark = pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz's `dot` is not "
                                "installed (apt-get install graphviz)")

# The README expression, and MLP(2, [4, 4, 1]) clustered per layer and collapsed per neuron.
PAGES = {'readme': ('readme', {}), 'mlp-clustered': ('mlp', {'cluster': True}),
         'mlp-collapsed': ('mlp', {'collapse': True})}


@pytest.fixture(scope='module')
def browser():
    if find_chromium() is None:
        pytest.fail(INSTALL, pytrace=False)
    try:
        import websocket  # noqa: F401
    except ImportError:
        pytest.fail(INSTALL, pytrace=False)
    chromium = Browser()
    yield chromium
    chromium.close()


def open_page(browser, tmp_path, page):
    graph, options = PAGES[page]
    path = Steps(viz.GRAPHS[graph](), **options).save(tmp_path / f'{page}.html')
    browser.open(path)
    return path


def counter(browser):
    return browser.evaluate("document.getElementById('counter').textContent")


def table(browser):
    """The side table as shown: [(name, data, grad)] in the page's row order."""
    return browser.evaluate("""Array.from(document.querySelectorAll('#values tr'),
        tr => Array.from(tr.children, td => td.textContent))""")


@pytest.mark.parametrize('page', sorted(PAGES))
def test_page_loads_without_console_errors(browser, tmp_path, page):
    open_page(browser, tmp_path, page)
    assert browser.evaluate('document.querySelectorAll("#graph svg g.node").length') > 0
    assert counter(browser).startswith('step 0 / ')
    browser.press('End')
    browser.press('Home')
    assert browser.errors() == []


def test_arrow_keys_step_forward_and_back(browser, tmp_path):
    open_page(browser, tmp_path, 'readme')
    last = 2 * len(topo_order([viz.readme_graph()]))
    browser.press('ArrowRight', 3)
    assert counter(browser) == f'step 3 / {last} \u00b7 forward pass'
    browser.press('ArrowLeft')
    assert counter(browser) == f'step 2 / {last} \u00b7 forward pass'
    browser.press('End')
    assert counter(browser) == f'step {last} / {last} \u00b7 backward pass'
    browser.press('ArrowRight')                    # past the end: stays at the end
    assert counter(browser).startswith(f'step {last} / ')
    assert browser.evaluate("document.getElementById('slider').value") == str(last)


@pytest.mark.parametrize('page', sorted(PAGES))
def test_last_step_shows_the_engines_gradients_bit_for_bit(browser, tmp_path, page):
    """Every row at the last step against a fresh graph's backward(), as Python prints it."""
    open_page(browser, tmp_path, page)
    order = topo_order([viz.GRAPHS[PAGES[page][0]]()])
    before = table(browser)
    assert all(grad == '' for _, _, grad in before)     # nothing filled in before backward
    half = len(order)
    browser.press('ArrowRight', half)                  # end of the forward pass
    assert [data for _, data, _ in table(browser)] == [repr(node.data) for node in order]
    browser.press('End')
    assert [grad for _, _, grad in table(browser)] == [repr(node.grad) for node in order]


def test_pictures_boxes_fill_in_as_the_steps_go(browser, tmp_path):
    open_page(browser, tmp_path, 'readme')
    root_box = """Array.from(document.querySelectorAll('#graph g.node'))
        .find(g => g.querySelector('title').textContent === 'v%d').textContent""" \
        % (len(topo_order([viz.readme_graph()])) - 1)
    assert 'grad ?' in browser.evaluate(root_box)
    browser.press('End')
    assert 'grad 1.0000' in browser.evaluate(root_box)


def test_a_later_step_looks_different_from_the_first(browser, tmp_path):
    open_page(browser, tmp_path, 'mlp-clustered')
    first = browser.screenshot(tmp_path / 'step-0.png')
    browser.press('End')
    browser.press('ArrowLeft', 5)
    later = browser.screenshot(tmp_path / 'step-later.png')
    print('screenshots:', first, later)
    assert open(first, 'rb').read() != open(later, 'rb').read()
    highlighted = browser.evaluate("document.querySelectorAll('#graph g.current').length")
    assert highlighted >= 1


def test_a_label_with_markup_stays_text(browser, tmp_path):
    from micrograd.engine import Value
    x = Value(1.0, label='<img src=x onerror="console.error(1)"></script>')
    out = (x * 2.0).tanh()
    browser.open(Steps(out).save(tmp_path / 'label.html'))
    assert table(browser)[0][0] == x.label
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.errors() == []
