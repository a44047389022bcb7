"""The hooks every Runner gets in a process that imports the plugin.

``ChannelRecordHook`` (pruned shapes in every checkpoint, no half-loaded models) and ``RandomStateHook``
(exact resume) must act in every run that imports ``mmdet_adasap``: through this package's tools, through
mmdet's own ``tools/train.py`` / ``tools/test.py`` with a config whose ``custom_imports`` names the plugin, and
in the comparison harness. mmengine has no entry point for a plugin's always-on hooks, so :func:`install`
extends ``Runner.register_hooks`` (called by ``Runner.__init__``): after the config's default and custom hooks
are registered, each plugin hook the config does not already list is added with its default settings.
"""
import functools

from mmengine.runner import Runner

PLUGIN_HOOKS = ('ChannelRecordHook', 'RandomStateHook')


def add_plugin_hooks(runner) -> None:
    present = {type(h).__name__ for h in runner.hooks}
    for name in PLUGIN_HOOKS:
        if name not in present:
            runner.register_hook(dict(type=name))


def install() -> None:
    """Make ``Runner.register_hooks`` add the plugin hooks (once, however often the plugin is imported)."""
    original = Runner.register_hooks
    if getattr(original, 'adds_plugin_hooks', False):
        return

    @functools.wraps(original)
    def register_hooks(self, default_hooks=None, custom_hooks=None):
        original(self, default_hooks, custom_hooks)
        add_plugin_hooks(self)

    register_hooks.adds_plugin_hooks = True
    Runner.register_hooks = register_hooks
