"""Draw graphs: micrograd's README expression, a 2-input neuron and an MLP(2, [4, 4, 1]).

Writes DOT text for each picture (no Graphviz needed) and, when Graphviz's `dot` and the
`graphviz` package are installed, an SVG next to it. Open the SVGs in a browser.

Run: python examples/draw_graph.py [--out DIR]      (default: out/pictures)
"""
import argparse
import pathlib
import shutil

from micrograd import viz

PICTURES = {   # file name: (the graph, options of to_dot / draw_dot)
    'readme': (viz.readme_graph, {}),
    'neuron': (viz.neuron_graph, {}),
    'neuron_grad_colors': (viz.neuron_graph, {'grad_colors': True}),
    'mlp_clustered': (viz.mlp_graph, {'cluster': True}),
    'mlp_collapsed': (viz.mlp_graph, {'cluster': True, 'collapse': True}),
}


def can_render():
    try:
        import graphviz  # noqa: F401  (only asking whether it is there)
    except ImportError:
        return False
    return shutil.which('dot') is not None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('out/pictures'))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    render = can_render()
    for name, (make_graph, options) in PICTURES.items():
        root = make_graph()
        options = {**options, **viz.example_options(name, root)}   # the README's a, b: inputs
        (args.out / f'{name}.dot').write_text(viz.to_dot(root, **options), encoding='utf-8')
        if render:
            viz.draw_dot(root, format='svg', **options).render(args.out / name, cleanup=True)
        print(f'  {args.out / name}.{"svg" if render else "dot"}')
    if not render:
        print('wrote DOT text only: for pictures install Graphviz (apt-get install graphviz, '
              'brew install graphviz) and `pip install graphviz`')


if __name__ == '__main__':
    main()
