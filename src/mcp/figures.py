"""Figures for `pysh mcp`: installed once in a session the MCP server uses, as the module
`_pythond_mcp` (not in the namespace). It never imports matplotlib: it waits for the session to
import matplotlib.pyplot (an import hook) and only then wraps `plt.show`.

A figure shown with a non-GUI backend (`plt.show()`), or left as a cell's last value, is saved
as a full PNG and a preview PNG (longest side <= PREVIEW px) in FIG_DIR, and announced in the
cell's output by an OSC sequence (`ESC ] 5379 ; pythond-figure ; {json} BEL`) that terminals
ignore and the MCP server turns into an image. No image bytes travel in the output."""
import importlib.abc
import itertools
import json
import os
import sys

PREVIEW = 800
NON_GUI = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
_count = itertools.count(1)
_state = {"dir": None}


def _emit(fig):
    d = _state["dir"]
    os.makedirs(d, exist_ok=True)
    n = "%d-%d" % (os.getpid(), next(_count))
    path = os.path.join(d, "figure-%s.png" % n)
    preview = os.path.join(d, "figure-%s.preview.png" % n)
    fig.savefig(path, format="png")
    w, h = fig.get_size_inches() * fig.dpi
    scale = min(1.0, float(PREVIEW) / max(w, h, 1))
    fig.savefig(preview, format="png", dpi=fig.dpi * scale)
    info = {"path": path, "preview": preview, "width": int(round(w)), "height": int(round(h))}
    sys.stdout.write("\x1b]5379;pythond-figure;%s\x07" % json.dumps(info))


def _is_figure(v):
    return type(v).__name__ == "Figure" and type(v).__module__ == "matplotlib.figure"


def _patch_pyplot(plt):
    if getattr(plt.show, "_pythond_mcp", False):
        return
    orig = plt.show

    def show(*args, **kwargs):
        import matplotlib
        if matplotlib.get_backend().lower() not in NON_GUI:
            return orig(*args, **kwargs)
        for num in list(plt.get_fignums()):
            fig = plt.figure(num)
            _emit(fig)
            plt.close(fig)

    show._pythond_mcp = True
    show.__doc__ = orig.__doc__
    plt.show = show


class _Hook(importlib.abc.MetaPathFinder):
    """Patches matplotlib.pyplot right after the session imports it."""

    def find_spec(self, name, path, target=None):
        if name != "matplotlib.pyplot":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                loader = spec.loader
                orig_exec = loader.exec_module

                def exec_module(module, _orig=orig_exec):
                    _orig(module)
                    _patch_pyplot(module)

                spec.loader = _Loader(loader, exec_module)
                return spec
        return None


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, exec_module):
        self._inner = inner
        self.exec_module = exec_module

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _wrap_show_value():
    """A cell whose last value is a figure shows the figure instead of its repr."""
    ex = sys.modules.get("_pythond.execute")
    if ex is None or getattr(ex._show, "_pythond_mcp", False):
        return
    orig = ex._show

    def _show(value, ns):
        if _is_figure(value):
            ns["_"] = value
            _emit(value)
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close(value)
            return
        orig(value, ns)

    _show._pythond_mcp = True
    ex._show = _show


def install(fig_dir):
    _state["dir"] = fig_dir
    if "matplotlib.pyplot" in sys.modules:
        _patch_pyplot(sys.modules["matplotlib.pyplot"])
    elif not any(isinstance(f, _Hook) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook())
    _wrap_show_value()
