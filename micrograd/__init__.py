"""micrograd: a tiny scalar autodiff engine whose op table also drives a code generator."""
from micrograd.engine import Value, topo_order
from micrograd.gradcheck import gradcheck

__all__ = ['Value', 'topo_order', 'gradcheck']
